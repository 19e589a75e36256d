// SPDX-License-Identifier: MIT
/*
 * rpc-cli end to end: every command runs as the real binary (harness_cli)
 * against the real daemon, and the test checks its exit status, what it
 * printed, and what landed in the tenant's database. Covered: keygen and
 * token issue (a fresh key pair, loaded by the daemon on SIGHUP, signs a
 * token it accepts), CSV and NDJSON submits with the awkward cases of each
 * format, chunking into jobs of 1000, bad input stopping before anything is
 * sent, job get as text, JSON and per-record results, job cancel, the
 * columns commands, the 401/403 answers, and --help on every command.
 *
 * Each test gets its own daemon (one worker, so that a held tenant lock
 * keeps later jobs QUEUED, as in lifecycle_test.c) and temp folder from the
 * fixture; the files the CLI reads are written into that folder.
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <jansson.h>
#include <sqlite3.h>

#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ALLP (BU_PERM_READ | BU_PERM_MANAGE)

struct fixture {
    struct harness h;
    char          *tok; // DataSpace.Manage + DataSpace.Read for "acme"
};

static int
setup(void **state)
{
    static const char *const args[] = { "--workers", "1", NULL };
    struct fixture          *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    harness_start(&f->h, args);
    f->tok = harness_token(&f->h, "acme", ALLP, 3600);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    int             status = harness_stop(&f->h);

    free(f->tok);
    free(f);
    return status == 0 ? 0 : -1;
}

// write_file writes text to DIR/name and returns the path (static storage,
// one of four rotating buffers).
static const char *
write_file(struct harness *h, const char *name, const char *text)
{
    static char paths[4][400];
    static int  next;
    char       *path = paths[next++ % 4];

    snprintf(path, sizeof(paths[0]), "%s/%s", h->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    return path;
}

// read_file returns the contents of path (free it), or NULL when missing.
static char *
read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return NULL;
    }
    char  *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

// count_lines counts the '\n' in s.
static size_t
count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

// job_ids splits harness_cli_out into job ids (each checked to be a UUID's 36
// characters) in ids[max][37]; returns how many.
static size_t
job_ids(char ids[][37], size_t max)
{
    size_t      n = 0;
    const char *p = harness_cli_out;

    while (*p != '\0') {
        size_t len = strcspn(p, "\n");
        if (len != 36 || n >= max) {
            fail_msg("not one job id a line:\n%s", harness_cli_out);
        }
        memcpy(ids[n], p, 36);
        ids[n][36] = '\0';
        n++;
        p += len + (p[len] == '\n');
    }
    return n;
}

// submit_file submits the file at path with rpc-cli (extra arguments after
// it, END-terminated), expects exactly one job id, waits until the job is
// final and returns it (free with bulkupsert__v1__job__free_unpacked); the
// id is copied to id.
static Bulkupsert__V1__Job *
submit_file(struct fixture *f, const char *path, char id[37], ...)
{
    const char *args[16] = { "submit", path };
    size_t      n = 2;
    const char *a;
    va_list     ap;

    va_start(ap, id);
    while ((a = va_arg(ap, const char *)) != NULL) {
        assert_true(n < sizeof(args) / sizeof(args[0]) - 1);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    int rv = harness_cli(&f->h, f->tok, args, harness_cli_out, sizeof(harness_cli_out),
        harness_cli_err, sizeof(harness_cli_err));
    if (rv != 0) {
        fail_msg("submit %s: exit %d\n%s", path, rv, harness_cli_err);
    }
    char ids[1][37];
    assert_int_equal(job_ids(ids, 1), 1);
    memcpy(id, ids[0], 37);
    bulkupsert_client   *c = harness_client(&f->h, f->tok);
    Bulkupsert__V1__Job *job = harness_wait_job(c, id);
    bulkupsert_client_close(c);
    return job;
}

// text_of returns the single text value sql yields in acme's database
// (static storage; "<missing>" when there is none).
static const char *
text_of(struct fixture *f, const char *sql)
{
    static char buf[512];
    if (harness_text(&f->h, "acme", sql, buf, sizeof(buf)) != 0) {
        snprintf(buf, sizeof(buf), "<missing>");
    }
    return buf;
}

// json_parse_out parses harness_cli_out as one JSON value (fails the test if not).
static json_t *
json_parse_out(void)
{
    json_error_t jerr;
    json_t      *v = json_loads(harness_cli_out, 0, &jerr);
    if (v == NULL) {
        fail_msg(
            "not JSON (%s at line %d):\n%s", jerr.text, jerr.line, harness_cli_out);
    }
    return v;
}

// ---------------------------------------------------------------------------
// keygen and token issue

static void
test_keygen_and_token_issue(void **state)
{
    struct fixture *f = *state;
    struct harness *h = &f->h;
    char            secret[400];
    char            ring2[400];
    struct stat     sb;

    snprintf(secret, sizeof(secret), "%s/ops.key", h->dir);
    snprintf(ring2, sizeof(ring2), "%s/ring2", h->dir);
    char *ring_before = read_file(h->keyring);
    assert_non_null(ring_before);

    // A new key pair: the secret in a 0600 file, the public key appended
    // to the daemon's keyring after a comment, the kid on stdout.
    CLI(0, h, NULL, "keygen", "--secret", secret, "--keyring", h->keyring);
    assert_int_equal(strncmp(harness_cli_out, "k4.pid.", 7), 0);
    assert_int_equal(strlen(harness_cli_out), 7 + 44 + 1); // 33 bytes in base64url
    char kid[64];
    snprintf(kid, sizeof(kid), "%.*s", (int) strcspn(harness_cli_out, "\n"), harness_cli_out);
    assert_int_equal(stat(secret, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *sec = read_file(secret);
    assert_int_equal(strncmp(sec, "k4.secret.", 10), 0);
    assert_int_equal(count_lines(sec), 1);
    char *ring = read_file(h->keyring);
    assert_int_equal(strncmp(ring, ring_before, strlen(ring_before)), 0);
    const char *added = ring + strlen(ring_before);
    char        comment[128];
    snprintf(comment, sizeof(comment), "# kid %s added ", kid);
    assert_int_equal(strncmp(added, comment, strlen(comment)), 0);
    assert_has(added, "\nk4.public.");
    assert_int_equal(count_lines(added), 2);

    // Never over an existing secret: exit 2, nothing touched.
    CLI(2, h, NULL, "keygen", "--secret", secret, "--keyring", ring2);
    assert_has(harness_cli_err, "already exists");
    assert_string_equal(harness_cli_out, "");
    char *sec2 = read_file(secret);
    assert_string_equal(sec2, sec);
    assert_int_equal(stat(ring2, &sb), -1);

    // A token signed with the new key; once the daemon has re-read its
    // keyring (SIGHUP), it is accepted.
    CLI(0, h, NULL, "token", "issue", "--secret", secret, "--tenant", "acme",
        "--perm", "DataSpace.Read,DataSpace.Manage", "--ttl", "1h", "--sub",
        "ops");
    assert_int_equal(strncmp(harness_cli_out, "v4.public.", 10), 0);
    assert_int_equal(count_lines(harness_cli_out), 1);
    char *tok = strndup(harness_cli_out, strcspn(harness_cli_out, "\n"));
    assert_int_equal(harness_signal(h, SIGHUP), 0);
    int rv = -1;
    for (int i = 0; i < 100 * harness_slow() && rv != 0; i++) {
        const char *args[] = { "columns", "list", NULL };
        rv = harness_cli(
            h, tok, args, harness_cli_out, sizeof(harness_cli_out), harness_cli_err, sizeof(harness_cli_err));
        if (rv != 0) {
            assert_has(harness_cli_err, "UNAUTHENTICATED");
            harness_sleep_ms(50);
        }
    }
    assert_int_equal(rv, 0);
    assert_has(harness_cli_out, "contact_key");

    // --json: the same data as one JSON object each.
    char secret3[400];
    snprintf(secret3, sizeof(secret3), "%s/ops3.key", h->dir);
    CLI(0, h, NULL, "keygen", "--secret", secret3, "--keyring", ring2,
        "--json");
    assert_int_equal(count_lines(harness_cli_out), 1);
    assert_has(harness_cli_out, "{\"kid\": \"k4.pid.");
    assert_has(harness_cli_out, "\"public_key\": \"k4.public.");
    assert_has(harness_cli_out, "\"keyring\": \"");
    CLI(0, h, NULL, "token", "issue", "--secret", secret, "--tenant", "acme",
        "--perm", "DataSpace.Read", "--sub", "ops", "--json");
    assert_int_equal(count_lines(harness_cli_out), 1);
    assert_has(harness_cli_out, "{\"token\": \"v4.public.");
    assert_has(harness_cli_out, "\"tenant\": \"acme\"");
    assert_has(harness_cli_out, "\"permissions\": [\"DataSpace.Read\"]");
    assert_has(harness_cli_out, "\"expires_at\": \"20");

    // Refused before signing: exit 2 with the reason, nothing on stdout.
    CLI(2, h, NULL, "token", "issue", "--secret", secret, "--tenant", "acme!x",
        "--perm", "DataSpace.Read");
    assert_has(harness_cli_err, "tenant 'acme!x' is refused");
    assert_has(harness_cli_err, "'!' at position 5 is not allowed");
    assert_string_equal(harness_cli_out, "");
    CLI(2, h, NULL, "token", "issue", "--secret", secret, "--tenant", "Acme",
        "--perm", "DataSpace.Read");
    assert_has(harness_cli_err, "must start with a lowercase letter or a digit");
    CLI(2, h, NULL, "token", "issue", "--secret", secret, "--tenant", "acme",
        "--perm", "DataSpace.Read,DataSpace.Write");
    assert_has(harness_cli_err, "unknown permission 'DataSpace.Write'");
    assert_string_equal(harness_cli_out, "");
    CLI(2, h, NULL, "token", "issue", "--secret", secret, "--tenant", "acme");
    assert_has(harness_cli_err, "missing --perm");
    CLI(2, h, NULL, "token", "issue", "--secret", secret, "--tenant", "acme",
        "--perm", "DataSpace.Read", "--ttl", "forever");
    assert_has(harness_cli_err, "--ttl 'forever'");
    // The keyring line is public, not a secret.
    char *pub = strstr(ring, "\nk4.public.") + 1;
    pub[strcspn(pub, "\n")] = '\0';
    const char *pubfile = write_file(h, "pub.key", pub);
    CLI(2, h, NULL, "token", "issue", "--secret", pubfile, "--tenant", "acme",
        "--perm", "DataSpace.Read");
    assert_has(harness_cli_err, "holds a public key");

    free(tok);
    free(sec2);
    free(ring);
    free(sec);
    free(ring_before);
}


// token revoke: the token works, its jti goes on DATA/revoked, and once the
// daemon re-reads the list (SIGHUP) it answers 401 "token revoked" while
// another token of the same key still works. --json of token issue names
// the jti; a token given on stdin is revoked the same way.
static void
test_token_revoke(void **state)
{
    struct fixture *f = *state;
    struct harness *h = &f->h;
    char            revoked[400];

    snprintf(revoked, sizeof(revoked), "%s/revoked", h->data);
    CLI(0, h, NULL, "token", "issue", "--secret", h->secret, "--tenant",
        "acme", "--perm", "DataSpace.Read", "--json");
    json_t     *issued = json_parse_out();
    const char *jti = json_string_value(json_object_get(issued, "jti"));
    assert_non_null(jti);
    assert_int_equal(strlen(jti), 32);
    char *tok = strdup(
        json_string_value(json_object_get(issued, "token")));
    char *jti_copy = strdup(jti);
    json_decref(issued);
    CLI(0, h, tok, "columns", "list");

    CLI(0, h, NULL, "token", "revoke", "--revoked", revoked, tok);
    assert_int_equal(strncmp(harness_cli_out, jti_copy, 32), 0);
    char *list = read_file(revoked);
    assert_has(list, "# revoked ");
    assert_has(list, ": tenant acme, sub rpc-cli, expires 20");
    assert_has(list, jti_copy);
    free(list);
    // Not yet re-read: still accepted.
    CLI(0, h, tok, "columns", "list");
    assert_int_equal(harness_signal(h, SIGHUP), 0);
    int rv = 0;
    for (int i = 0; i < 100 * harness_slow() && rv == 0; i++) {
        const char *args[] = { "columns", "list", NULL };
        rv = harness_cli(h, tok, args, harness_cli_out,
            sizeof(harness_cli_out), harness_cli_err, sizeof(harness_cli_err));
        if (rv == 0) {
            harness_sleep_ms(50);
        }
    }
    assert_int_equal(rv, 1);
    assert_has(harness_cli_err, "UNAUTHENTICATED (http 401)");
    assert_has(harness_cli_err, "token revoked");
    CLI(0, h, f->tok, "columns", "list");

    // By --jti, and a token with no jti to read.
    CLI(0, h, NULL, "token", "revoke", "--revoked", revoked, "--jti",
        "by-hand-1", "--json");
    assert_has(harness_cli_out, "{\"jti\": \"by-hand-1\", \"revoked\": ");
    CLI(2, h, NULL, "token", "revoke", "--revoked", revoked, "--jti", "a b");
    assert_has(harness_cli_err, "is not a token id");
    CLI(2, h, NULL, "token", "revoke", "--revoked", revoked,
        "v4.public.not-a-token");
    assert_has(harness_cli_err, "not a v4.public token");
    CLI(2, h, NULL, "token", "revoke", "--jti", "x");
    assert_has(harness_cli_err, "missing --revoked FILE");

    // bulkupsertd --check-keys reads both files as a SIGHUP would.
    char cmd[1400], out[1024];
    snprintf(cmd, sizeof(cmd),
        "%s --check-keys --keyring '%s' --revoked '%s' 2>&1", BU_DAEMON_PATH,
        h->keyring, revoked);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_has(out, ": 1 keys\n");
    assert_has(out, ": 2 token ids\n");
    FILE *rf = fopen(revoked, "a");
    assert_non_null(rf);
    fputs("v4.public.pasted-by-mistake\n", rf);
    fclose(rf);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    assert_has(out, "line 5 refused: a token or key, not a jti");

    // Revokes that run at once each append a whole entry.
    char many[400];
    snprintf(many, sizeof(many), "%s/many", h->dir);
    snprintf(cmd, sizeof(cmd),
        "for i in $(seq 1 40); do '%s' token revoke --revoked '%s' --jti "
        "c-$i >/dev/null & done; wait",
        BU_CLI_PATH, many);
    assert_int_equal(system(cmd), 0);
    char *all = read_file(many);
    assert_non_null(all);
    int ids = 0, comments = 0;
    for (char *line = strtok(all, "\n"); line != NULL;
        line = strtok(NULL, "\n")) {
        if (strncmp(line, "# revoked ", 10) == 0
            && strchr(line + 10, '#') == NULL) {
            comments++;
        } else {
            int k = 0;
            char tail = 0;
            assert_int_equal(sscanf(line, "c-%d%c", &k, &tail), 1);
            ids++;
        }
    }
    assert_int_equal(ids, 40);
    assert_int_equal(comments, 40);
    free(all);
    free(jti_copy);
    free(tok);
}

// ---------------------------------------------------------------------------
// submit

static void
test_submit_csv_quoting(void **state)
{
    struct fixture *f = *state;
    char            id[37];

    // A header row, then quoted fields with commas, doubled quotes, a line
    // break, multi-byte UTF-8, and a quoted empty field (the empty string)
    // next to unquoted empty ones (not provided: NULL for gender, which has
    // no default).
    // clang-format off
    static const char csv[] =
        "contact_key,name,surname,email,gender\r\n"
        "q1,\"Smith, John\",\"He said \"\"hi\"\"\",q1@example.com,\r\n"
        "q2,\"Line one\nline two\",M\xc3\xbcller,q2@example.com,f\r\n"
        "q3,Jos\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac,Doe,,\"\"\r\n";
    // clang-format on
    const char          *path = write_file(&f->h, "quoted.csv", csv);
    Bulkupsert__V1__Job *job = submit_file(f, path, id, END);
    assert_int_equal(
        job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_int_equal(job->counts->total, 3);
    assert_int_equal(job->counts->inserted, 3);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    assert_int_equal(
        harness_count(&f->h, "acme", "SELECT count(*) FROM master_contact"),
        3);
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='q1'"),
        "Smith, John");
    assert_string_equal(text_of(f,
                            "SELECT surname FROM master_contact"
                            " WHERE contact_key='q1'"),
        "He said \"hi\"");
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='q2'"),
        "Line one\nline two");
    assert_string_equal(text_of(f,
                            "SELECT surname FROM master_contact"
                            " WHERE contact_key='q2'"),
        "M\xc3\xbcller");
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='q3'"),
        "Jos\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
    // Counted in characters, not bytes.
    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT length(name) FROM master_contact"
                         " WHERE contact_key='q3'"),
        7);
    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT gender IS NULL FROM master_contact"
                         " WHERE contact_key='q1'"),
        1);
    assert_string_equal(text_of(f,
                            "SELECT '[' || gender || ']' FROM"
                            " master_contact WHERE contact_key='q3'"),
        "[]");
}

static void
test_submit_ndjson_values(void **state)
{
    struct fixture *f = *state;
    char            id[37];

    // Strings, booleans, null, numbers as text, and keys missing from some
    // lines (not provided: the default on insert).
    // clang-format off
    static const char ndjson[] =
        "{\"contact_key\":\"n1\",\"name\":\"Ann\","
        "\"email_permission\":false,\"gender\":null}\n"
        "\n"
        "{\"contact_key\":\"n2\",\"email_permission\":true}\n"
        "{\"contact_key\":\"n3\",\"name\":\"\xc3\x87" "elik\","
        "\"birth_date\":\"2000-02-29\",\"surname\":42}\n";
    // clang-format on
    const char          *path = write_file(&f->h, "people.ndjson", ndjson);
    Bulkupsert__V1__Job *job = submit_file(f, path, id, END);
    assert_int_equal(
        job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_int_equal(job->counts->inserted, 3);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT email_permission FROM master_contact"
                         " WHERE contact_key='n1'"),
        0);
    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT gender IS NULL FROM master_contact"
                         " WHERE contact_key='n1'"),
        1);
    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT email_permission FROM master_contact"
                         " WHERE contact_key='n2'"),
        1);
    assert_string_equal(text_of(f,
                            "SELECT '[' || name || ']' FROM master_contact"
                            " WHERE contact_key='n2'"),
        "[]"); // missing key: the default
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='n3'"),
        "\xc3\x87"
        "elik");
    assert_string_equal(text_of(f,
                            "SELECT birth_date || '/' || surname FROM"
                            " master_contact WHERE contact_key='n3'"),
        "2000-02-29/42");

    // On update a missing key leaves the stored value alone.
    path = write_file(&f->h, "update.jsonl",
        "{\"contact_key\":\"n1\",\"surname\":\"Zed\"}\n"
        "{\"contact_key\":\"n3\",\"name\":\"Cem\"}\n");
    job = submit_file(f, path, id, END);
    assert_int_equal(job->counts->updated, 2);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    assert_string_equal(text_of(f,
                            "SELECT name || '/' || surname FROM"
                            " master_contact WHERE contact_key='n1'"),
        "Ann/Zed");
    assert_string_equal(text_of(f,
                            "SELECT name || '/' || surname FROM"
                            " master_contact WHERE contact_key='n3'"),
        "Cem/42");

    // Numbers are sent as their source text, not as a double re-printed;
    // spaces around them and escaped keys do not matter.
    path = write_file(&f->h, "numbers.ndjson",
        "{\"contact_key\":\"m1\",\"name\":1e2,\"surname\":1.0}\n"
        "{\"contact_key\":\"m2\", \"name\" : -0 ,\"surn\\u0061me\":"
        "3.141592653589793238}\n"
        "{\"contact_key\":\"m3\",\"name\":-1.5E-3,\"surname\":"
        "123456789012345678}\n");
    job = submit_file(f, path, id, END);
    assert_int_equal(job->counts->inserted, 3);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    assert_string_equal(text_of(f,
                            "SELECT name || '/' || surname FROM"
                            " master_contact WHERE contact_key='m1'"),
        "1e2/1.0");
    assert_string_equal(text_of(f,
                            "SELECT name || '/' || surname FROM"
                            " master_contact WHERE contact_key='m2'"),
        "-0/3.141592653589793238");
    assert_string_equal(text_of(f,
                            "SELECT name || '/' || surname FROM"
                            " master_contact WHERE contact_key='m3'"),
        "-1.5E-3/123456789012345678");

    // A line that is not an object stops the command, naming the line.
    path
        = write_file(&f->h, "bad.ndjson", "{\"contact_key\":\"n9\"}\n[1,2]\n");
    CLI(2, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "bad.ndjson:2: expected a JSON object");
    assert_string_equal(harness_cli_out, "");

    // A nested value is refused, whatever it holds: the number scan never
    // reads a key inside it as a key of the record, nor reads past the
    // line (the long line 1 leaves bytes behind line 2 in the buffer).
    path = write_file(&f->h, "nested.ndjson",
        "{\"contact_key\":\"x1\",\"name\":{\"a\":1,\"name\":2}}\n");
    CLI(2, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "nested.ndjson:1: key \"name\" holds an object");
    assert_string_equal(harness_cli_out, "");
    path = write_file(&f->h, "array.ndjson",
        "{\"contact_key\":\"k1\",\"name\":"
        "\"111111111111111111111111111\"}\n"
        "{\"contact_key\":\"k\",\"n\":[\"a,\"]}\n");
    CLI(2, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "array.ndjson:2: key \"n\" holds an array");
    assert_string_equal(harness_cli_out, "");
    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT count(*) FROM master_contact"
                         " WHERE contact_key IN ('x1', 'k1', 'k')"),
        0);
}

static void
test_submit_chunks_of_1000(void **state)
{
    struct fixture *f = *state;
    char            path[400];
    char            ids[4][37];

    snprintf(path, sizeof(path), "%s/big.csv", f->h.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "contact_key,name,email\n");
    for (int i = 0; i < 2500; i++) {
        fprintf(fp, "b%05d,Name %d,b%d@example.com\n", i, i, i);
    }
    assert_int_equal(fclose(fp), 0);

    CLI(0, &f->h, f->tok, "submit", path);
    assert_int_equal(job_ids(ids, 4), 3);
    assert_string_not_equal(ids[0], ids[1]);
    assert_string_not_equal(ids[1], ids[2]);
    bulkupsert_client *c = harness_client(&f->h, f->tok);
    const uint32_t     totals[3] = { 1000, 1000, 500 };
    for (int i = 0; i < 3; i++) {
        Bulkupsert__V1__Job *job = harness_wait_job(c, ids[i]);
        assert_int_equal(
            job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
        assert_int_equal(job->counts->total, totals[i]);
        assert_int_equal(job->counts->inserted, totals[i]);
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    bulkupsert_client_close(c);
    assert_int_equal(
        harness_count(&f->h, "acme", "SELECT count(*) FROM master_contact"),
        2500);
    assert_string_equal(text_of(f,
                            "SELECT name FROM master_contact"
                            " WHERE contact_key='b02499'"),
        "Name 2499");
}

static void
test_submit_ragged_row_sends_nothing(void **state)
{
    struct fixture *f = *state;
    char            path[400];

    // 1500 rows; line 1203 (in the second request) has a field too few.
    // The reader is one request ahead, so not even the first is sent.
    snprintf(path, sizeof(path), "%s/ragged.csv", f->h.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "contact_key,name,email\n");
    for (int line = 2; line <= 1501; line++) {
        if (line == 1203) {
            fprintf(fp, "r%d,only two\n", line);
        } else {
            fprintf(fp, "r%d,Name,r%d@example.com\n", line, line);
        }
    }
    assert_int_equal(fclose(fp), 0);

    CLI(2, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "ragged.csv:1203:");
    assert_has(harness_cli_err, "2 fields, but the header row has 3 columns");
    assert_string_equal(harness_cli_out, "");
    assert_int_equal(
        harness_queue_count(&f->h, "SELECT count(*) FROM jobs"), 0);
    assert_true(
        harness_count(&f->h, "acme", "SELECT count(*) FROM master_contact")
        <= 0);

    // An unclosed quote and a missing file are input errors too.
    const char *bad = write_file(
        &f->h, "open.csv", "contact_key,name\nx1,\"never closed\n");
    CLI(2, &f->h, f->tok, "submit", bad);
    assert_has(harness_cli_err, "open.csv:2: a quoted field");
    snprintf(path, sizeof(path), "%s/missing.csv", f->h.dir);
    CLI(2, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "missing.csv: No such file");
    // A directory opens, but is no file of records.
    CLI(2, &f->h, f->tok, "submit", f->h.dir);
    assert_has(harness_cli_err, "is a directory, not a file of records");
    CLI(2, &f->h, f->tok, "import", f->h.dir, "--progress", "none");
    assert_has(harness_cli_err, "is a directory, not a file of records");
    assert_int_equal(
        harness_queue_count(&f->h, "SELECT count(*) FROM jobs"), 0);
}

// ---------------------------------------------------------------------------
// job get and job cancel

static void
test_job_get_text_and_json(void **state)
{
    struct fixture *f = *state;
    char            id[37];
    char            want[80];

    const char *path = write_file(
        &f->h, "three.csv", "contact_key,name\ng1,A\ng2,B\ng3,C\n");
    Bulkupsert__V1__Job *job = submit_file(f, path, id, END);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    CLI(0, &f->h, f->tok, "job", "get", id);
    snprintf(want, sizeof(want), "job_id       %s\n", id);
    assert_has(harness_cli_out, want);
    assert_has(harness_cli_out, "state        COMPLETED\n");
    assert_has(harness_cli_out, "accepted_at  20");
    assert_has(harness_cli_out, "counts\n  total       3\n  inserted    3\n");
    assert_has(harness_cli_out, "  failed      0\n");
    assert_lacks(harness_cli_out, "\033["); // no colours into a pipe
    assert_string_equal(harness_cli_err, "");

    // Connection options after the command work as well as before it.
    CLI(0, &f->h, NULL, "job", "get", id, "--json", "--token", f->tok);
    json_t *j = json_parse_out();
    assert_string_equal(json_string_value(json_object_get(j, "job_id")), id);
    assert_string_equal(
        json_string_value(json_object_get(j, "state")), "COMPLETED");
    const char *acc = json_string_value(json_object_get(j, "accepted_at"));
    assert_non_null(acc);
    assert_int_equal(strlen(acc), 24); // 2024-01-02T03:04:05.678Z
    assert_int_equal(acc[23], 'Z');
    assert_true(json_is_null(json_object_get(j, "error")));
    json_t *counts = json_object_get(j, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "total")), 3);
    assert_int_equal(
        json_integer_value(json_object_get(counts, "inserted")), 3);
    assert_null(json_object_get(j, "records"));
    json_decref(j);

    // Unknown and malformed ids: the server's 404, exit 1.
    CLI(1, &f->h, f->tok, "job", "get",
        "01234567-89ab-7def-8123-456789abcdef");
    assert_has(harness_cli_err, "rpc-cli: NOT_FOUND (http 404): ");
    assert_string_equal(harness_cli_out, "");
    CLI(2, &f->h, f->tok, "job", "get");
    assert_has(harness_cli_err, "missing JOB_ID");
    CLI(2, &f->h, f->tok, "job", "get", id, "--errors-only");
    assert_has(harness_cli_err, "--errors-only needs --records");
}

// Control characters in data, names and arguments reach a terminal
// escaped (\xNN) in text output, and unchanged in --json.
static void
test_text_output_escapes_controls(void **state)
{
    struct fixture *f = *state;
    char            id[37];

    // The key is valid JSON: ESC ] 0 ; ... BEL retitles a terminal, and
    // ESC [ 2 J clears it. The email makes the record fail.
    const char *path = write_file(&f->h, "ctl.ndjson",
        "{\"contact_key\":\"k\\u001b]0;pwned\\u0007\\u001b[2J\","
        "\"email\":\"nope\"}\n");
    Bulkupsert__V1__Job *job
        = submit_file(f, path, id, "--no-fail-on-error", END);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    CLI(0, &f->h, f->tok, "job", "get", id, "--records");
    assert_lacks(harness_cli_out, "\033");
    assert_lacks(harness_cli_out, "\007");
    assert_has(harness_cli_out, "(key k\\x1b]0;pwned\\x07\\x1b[2J): FAILED");
    CLI(0, &f->h, f->tok, "job", "get", id, "--records", "--json");
    assert_has(harness_cli_out, "k\\u001B]0;pwned\\u0007\\u001B[2J");

    // A CSV header name the server echoes in its refusal.
    const char *bad = write_file(&f->h, "ctl.csv", "contact_key,x\033[2Jy\nk1,v\n");
    CLI(1, &f->h, f->tok, "submit", bad);
    assert_lacks(harness_cli_err, "\033");
    assert_has(harness_cli_err, "x\\x1b[2Jy");

    // A job id argument with ESC and a line break.
    CLI(1, &f->h, f->tok, "job", "get", "a\033[2Jb\nc");
    assert_lacks(harness_cli_err, "\033");
    assert_has(harness_cli_err, "a\\x1b[2Jb\\x0ac");
    CLI(2, &f->h, f->tok, "job", "get", id, "x\033[2J");
    assert_lacks(harness_cli_err, "\033");
    assert_has(harness_cli_err, "'x\\x1b[2J'");
}

static void
test_job_get_records(void **state)
{
    struct fixture *f = *state;
    char            id[37];

    // Record 0 has an impossible date, 1 a malformed email, 2 an upper-case
    // email (a warning), 3 is superseded by 4, and 5 is fine.
    const char *csv = "contact_key,email,birth_date\n"
                      "e0,e0@example.com,2023-02-29\n"
                      "e1,not-an-email,\n"
                      "e2,E2@Example.COM,\n"
                      "e3,old@example.com,\n"
                      "e3,new@example.com,\n"
                      "e5,e5@example.com,2024-02-29\n";
    const char *path = write_file(&f->h, "mixed.csv", csv);

    // With fail_on_error (the default) the request is refused as a whole,
    // every invalid record named with its line.
    CLI(1, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "(http 400)");
    assert_has(harness_cli_err, "record 0 (key e0) column birth_date: ");
    assert_has(harness_cli_err, "(line 2)");
    assert_has(harness_cli_err, "record 1 (key e1) column email: ");
    assert_has(harness_cli_err, "(line 3)");
    assert_string_equal(harness_cli_out, "");

    Bulkupsert__V1__Job *job
        = submit_file(f, path, id, "--no-fail-on-error", END);
    assert_int_equal(job->state,
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS);
    assert_int_equal(job->counts->failed, 2);
    assert_int_equal(job->counts->superseded, 1);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    CLI(0, &f->h, f->tok, "job", "get", id, "--records");
    assert_has(harness_cli_out, "state        COMPLETED_WITH_ERRORS\n");
    assert_has(harness_cli_out,
        "records\nrecord 0 (key e0): FAILED\n"
        "  column birth_date: ");
    assert_has(harness_cli_out, "record 1 (key e1): FAILED\n  column email: ");
    assert_has(harness_cli_out, "record 2 (key e2): INSERTED\n  warning: ");
    assert_has(harness_cli_out, "record 3 (key e3): SUPERSEDED by record 4\n");
    assert_has(harness_cli_out, "record 4 (key e3): INSERTED\n");
    assert_has(harness_cli_out, "record 5 (key e5): INSERTED\n");

    // --errors-only keeps 0, 1 and 2; JSON has every field.
    CLI(0, &f->h, f->tok, "job", "get", id, "--records", "--errors-only",
        "--json");
    json_t *j = json_parse_out();
    json_t *recs = json_object_get(j, "records");
    assert_int_equal(json_array_size(recs), 3);
    json_t *r0 = json_array_get(recs, 0);
    assert_int_equal(json_integer_value(json_object_get(r0, "index")), 0);
    assert_string_equal(
        json_string_value(json_object_get(r0, "contact_key")), "e0");
    assert_string_equal(
        json_string_value(json_object_get(r0, "outcome")), "FAILED");
    json_t *e0 = json_array_get(json_object_get(r0, "errors"), 0);
    assert_string_equal(
        json_string_value(json_object_get(e0, "column")), "birth_date");
    assert_has(json_string_value(json_object_get(e0, "reason")), "2023-02-29");
    json_t *r1 = json_array_get(recs, 1);
    assert_int_equal(json_integer_value(json_object_get(r1, "index")), 1);
    json_t *e1 = json_array_get(json_object_get(r1, "errors"), 0);
    assert_string_equal(
        json_string_value(json_object_get(e1, "column")), "email");
    json_t *r2 = json_array_get(recs, 2);
    assert_int_equal(json_integer_value(json_object_get(r2, "index")), 2);
    assert_int_equal(json_array_size(json_object_get(r2, "errors")), 0);
    assert_int_equal(json_array_size(json_object_get(r2, "warnings")), 1);
    json_decref(j);

    // Small pages: every record still comes, once and in order, with
    // superseded_by where it applies.
    CLI(0, &f->h, f->tok, "job", "get", id, "--records", "--page-size", "2",
        "--json");
    j = json_parse_out();
    recs = json_object_get(j, "records");
    assert_int_equal(json_array_size(recs), 6);
    for (size_t i = 0; i < 6; i++) {
        json_t *r = json_array_get(recs, i);
        assert_int_equal(json_integer_value(json_object_get(r, "index")), i);
        json_t *sb = json_object_get(r, "superseded_by");
        if (i == 3) {
            assert_int_equal(json_integer_value(sb), 4);
        } else {
            assert_null(sb);
        }
    }
    json_decref(j);
    CLI(0, &f->h, f->tok, "job", "get", id, "--records", "--page-size", "1");
    assert_int_equal(count_lines(strstr(harness_cli_out, "records\n")),
        1 + 6 + 2 + 1); // header, records, errors, warning
}

static void
wait_running(struct fixture *f, const char *id)
{
    bulkupsert_client            *c = harness_client(&f->h, f->tok);
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;

    gr.job_id = (char *) id;
    for (int i = 0; i < 3000 * harness_slow(); i++) {
        Bulkupsert__V1__Job     *job = NULL;
        struct bulkupsert_status st = { 0 };
        assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st), 0);
        bulkupsert_status_clear(&st);
        int state = job->state;
        bulkupsert__v1__job__free_unpacked(job, NULL);
        if (state == BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING) {
            bulkupsert_client_close(c);
            return;
        }
        harness_sleep_ms(10);
    }
    fail_msg("job %s never ran", id);
}

static void
test_job_cancel(void **state)
{
    struct fixture *f = *state;
    char            done[37];
    char            ids[1][37];
    char            running[37];
    char            queued[37];

    const char *one = write_file(&f->h, "one.csv", "contact_key,name\nc1,A\n");
    Bulkupsert__V1__Job *job = submit_file(f, one, done, END);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    // A finished job cannot be cancelled.
    CLI(1, &f->h, f->tok, "job", "cancel", done);
    assert_has(harness_cli_err, "rpc-cli: FAILED_PRECONDITION (http 400): ");
    assert_has(harness_cli_err, "only a QUEUED job can be cancelled");
    assert_string_equal(harness_cli_out, "");
    CLI(1, &f->h, f->tok, "job", "cancel", done, "--json");
    assert_has(harness_cli_err, "FAILED_PRECONDITION");
    CLI(1, &f->h, f->tok, "job", "cancel",
        "01234567-89ab-7def-8123-456789abcdef");
    assert_has(harness_cli_err, "NOT_FOUND (http 404)");

    // Hold the worker on one job; the next one stays QUEUED and cancels.
    sqlite3    *lock = harness_lock_db(&f->h, "tenants/acme.db");
    const char *two = write_file(&f->h, "two.csv", "contact_key,name\nc1,B\n");
    const char *three
        = write_file(&f->h, "three.csv", "contact_key,name\nc1,C\n");
    CLI(0, &f->h, f->tok, "submit", two);
    assert_int_equal(job_ids(ids, 1), 1);
    memcpy(running, ids[0], 37);
    wait_running(f, running);
    CLI(0, &f->h, f->tok, "submit", three);
    assert_int_equal(job_ids(ids, 1), 1);
    memcpy(queued, ids[0], 37);

    CLI(0, &f->h, f->tok, "job", "cancel", queued);
    assert_has(harness_cli_out, "state        CANCELLED\n");
    assert_has(harness_cli_out, queued);
    CLI(1, &f->h, f->tok, "job", "cancel", running, "--json");
    assert_has(harness_cli_err, "is RUNNING; only a QUEUED job can be cancelled");
    CLI(1, &f->h, f->tok, "job", "cancel", queued, "--json");
    assert_has(harness_cli_err, "is CANCELLED");
    harness_unlock_db(lock);

    bulkupsert_client *c = harness_client(&f->h, f->tok);
    job = harness_wait_job(c, running);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    bulkupsert_client_close(c);
    CLI(0, &f->h, f->tok, "job", "get", queued, "--json");
    json_t *j = json_parse_out();
    assert_string_equal(
        json_string_value(json_object_get(j, "state")), "CANCELLED");
    json_decref(j);
    // The cancelled job was never applied.
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='c1'"),
        "B");
}

// ---------------------------------------------------------------------------
// columns

// column_json returns the object of column name in a `columns list --json`
// output (borrowed from list), or NULL.
static json_t *
column_json(json_t *list, const char *name)
{
    json_t *cols = json_object_get(list, "columns");
    for (size_t i = 0; i < json_array_size(cols); i++) {
        json_t     *c = json_array_get(cols, i);
        const char *n = json_string_value(json_object_get(c, "name"));
        if (n != NULL && strcmp(n, name) == 0) {
            return c;
        }
    }
    return NULL;
}

static void
test_columns_round_trip(void **state)
{
    struct fixture *f = *state;
    char            id[37];

    CLI(0, &f->h, f->tok, "columns", "list");
    assert_has(harness_cli_out, "NAME");
    assert_has(harness_cli_out, "IMPORT\n");
    assert_has(harness_cli_out, "\ncontact_key ");
    assert_has(harness_cli_out, "enum(A,P)");
    assert_has(harness_cli_out, "\nrow width ");
    assert_lacks(harness_cli_out, "tier");
    CLI(0, &f->h, f->tok, "columns", "list", "--json");
    json_t *j = json_parse_out();
    json_t *ck = column_json(j, "contact_key");
    assert_non_null(ck);
    assert_false(json_is_true(json_object_get(ck, "custom")));
    json_t *st = column_json(j, "contact_status");
    assert_string_equal(
        json_string_value(json_object_get(st, "type")), "enum");
    assert_int_equal(
        json_array_size(json_object_get(st, "allowed_values")), 2);
    json_int_t width = json_integer_value(json_object_get(j, "row_width"));
    assert_true(width > 0);
    assert_true(
        json_integer_value(json_object_get(j, "max_row_width")) >= width);
    json_decref(j);

    // Add it disabled: shown, and refused in a submit.
    CLI(0, &f->h, f->tok, "columns", "add", "tier", "--max-length", "12",
        "--disabled");
    assert_has(harness_cli_out, "name            tier\n");
    assert_has(harness_cli_out, "type            text\n");
    assert_has(harness_cli_out, "max_length      12\n");
    assert_has(harness_cli_out, "custom          yes\n");
    assert_has(harness_cli_out, "import_enabled  no\n");
    const char *path = write_file(
        &f->h, "tier.csv", "contact_key,name,tier\nt1,Tia,gold\nt2,Tom,\n");
    CLI(1, &f->h, f->tok, "submit", path);
    assert_has(harness_cli_err, "tier");
    assert_string_equal(harness_cli_out, "");

    CLI(0, &f->h, f->tok, "columns", "enable", "tier", "--json");
    j = json_parse_out();
    assert_string_equal(json_string_value(json_object_get(j, "name")), "tier");
    assert_true(json_is_true(json_object_get(j, "import_enabled")));
    assert_true(json_is_true(json_object_get(j, "custom")));
    assert_int_equal(json_integer_value(json_object_get(j, "max_length")), 12);
    json_decref(j);

    Bulkupsert__V1__Job *job = submit_file(f, path, id, END);
    assert_int_equal(
        job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_int_equal(job->counts->inserted, 2);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    assert_string_equal(
        text_of(f, "SELECT tier FROM master_contact WHERE contact_key='t1'"),
        "gold");
    assert_int_equal(harness_count(&f->h, "acme",
                         "SELECT tier IS NULL FROM master_contact"
                         " WHERE contact_key='t2'"),
        1);

    CLI(0, &f->h, f->tok, "columns", "list", "--json");
    j = json_parse_out();
    json_t *tier = column_json(j, "tier");
    assert_non_null(tier);
    assert_true(json_is_true(json_object_get(tier, "import_enabled")));
    assert_true(json_is_null(json_object_get(tier, "default")));
    assert_int_equal(
        json_integer_value(json_object_get(j, "row_width")), width + 12);
    json_decref(j);

    CLI(0, &f->h, f->tok, "columns", "disable", "tier");
    assert_has(harness_cli_out, "import_enabled  no\n");
    CLI(0, &f->h, f->tok, "columns", "list");
    assert_has(harness_cli_out, "\ntier ");
    // NAME TYPE MAX NULLABLE DEFAULT CUSTOM IMPORT
    const char *row = strstr(harness_cli_out, "\ntier ") + 1;
    char        line[256];
    char       *words[8];
    size_t      nwords = 0;
    snprintf(line, sizeof(line), "%.*s", (int) strcspn(row, "\n"), row);
    for (char *w = strtok(line, " "); w != NULL && nwords < 8;
         w = strtok(NULL, " ")) {
        words[nwords++] = w;
    }
    assert_int_equal(nwords, 7);
    assert_string_equal(words[1], "text");
    assert_string_equal(words[2], "12");
    assert_string_equal(words[3], "yes");
    assert_string_equal(words[4], "-");
    assert_string_equal(words[5], "yes");
    assert_string_equal(words[6], "no");
    // The stored values stay.
    assert_string_equal(
        text_of(f, "SELECT tier FROM master_contact WHERE contact_key='t1'"),
        "gold");

    // What the server refuses (exit 1) and what never reaches it (exit 2).
    CLI(1, &f->h, f->tok, "columns", "add", "tier");
    assert_has(harness_cli_err, "rpc-cli: ALREADY_EXISTS (http ");
    CLI(1, &f->h, f->tok, "columns", "add", "9lives");
    assert_has(harness_cli_err, "INVALID_ARGUMENT (http 400)");
    CLI(1, &f->h, f->tok, "columns", "disable", "nosuch");
    assert_has(harness_cli_err, "NOT_FOUND");
    CLI(1, &f->h, f->tok, "columns", "disable", "contact_key");
    assert_has(harness_cli_err, "contact_key is always import-enabled");
    CLI(2, &f->h, f->tok, "columns", "add", "big", "--max-length", "4001");
    assert_has(harness_cli_err, "--max-length '4001' is not a number from 1 to 4000");
    CLI(2, &f->h, f->tok, "columns", "add");
    assert_has(harness_cli_err, "missing NAME");
    CLI(2, &f->h, f->tok, "columns", "enable", "a", "b");
    assert_has(harness_cli_err, "unexpected argument 'b'");
}

// ---------------------------------------------------------------------------
// Authentication, permissions, usage

static void
test_auth_errors(void **state)
{
    struct fixture *f = *state;
    const char     *path
        = write_file(&f->h, "auth.csv", "contact_key,name\na1,A\n");

    // No token: refused before any call, exit 2.
    CLI(2, &f->h, NULL, "submit", path);
    assert_has(harness_cli_err, "no access token");
    CLI(2, &f->h, NULL, "columns", "list");
    assert_has(harness_cli_err, "no access token");

    // A bad or expired token: the server's 401, exit 1.
    CLI(1, &f->h, "v4.public.garbage", "submit", path);
    assert_has(harness_cli_err, "rpc-cli: UNAUTHENTICATED (http 401): ");
    char *expired = harness_token(&f->h, "acme", ALLP, -60);
    CLI(1, &f->h, expired, "columns", "list");
    assert_has(harness_cli_err, "UNAUTHENTICATED (http 401)");
    assert_has(harness_cli_err, "expired");
    free(expired);
    // --token wins over BULKUPSERT_TOKEN.
    CLI(1, &f->h, f->tok, "--token", "v4.public.garbage", "columns", "list");
    assert_has(harness_cli_err, "UNAUTHENTICATED");

    // A token without the permission: 403 (Forbidden), exit 1.
    char *ro = harness_token(&f->h, "acme", BU_PERM_READ, 3600);
    CLI(1, &f->h, ro, "submit", path);
    assert_has(harness_cli_err, "rpc-cli: PERMISSION_DENIED (http 403): ");
    assert_has(harness_cli_err, "DataSpace.Manage");
    assert_string_equal(harness_cli_out, "");
    CLI(1, &f->h, ro, "columns", "add", "x1");
    assert_has(harness_cli_err, "PERMISSION_DENIED (http 403)");
    CLI(1, &f->h, ro, "job", "cancel", "01234567-89ab-7def-8123-456789abcdef");
    assert_has(harness_cli_err, "PERMISSION_DENIED (http 403)");
    CLI(0, &f->h, ro, "columns", "list");
    free(ro);
    char *wo = harness_token(&f->h, "acme", BU_PERM_MANAGE, 3600);
    CLI(1, &f->h, wo, "columns", "list");
    assert_has(harness_cli_err, "PERMISSION_DENIED (http 403)");
    assert_has(harness_cli_err, "DataSpace.Read");
    free(wo);
    assert_int_equal(
        harness_queue_count(&f->h, "SELECT count(*) FROM jobs"), 0);

    // Nobody listening: a transport error, exit 1.
    char url[400];
    snprintf(url, sizeof(url), "ipc://%s/nobody.sock", f->h.dir);
    CLI(1, &f->h, f->tok, "--url", url, "--timeout", "2000", "columns",
        "list");
    assert_has(harness_cli_err, "rpc-cli: ");
    CLI(2, &f->h, f->tok, "--url", "http://example.com", "columns", "list");
    assert_has(harness_cli_err, "is not a server address");
}

static void
test_help_and_usage(void **state)
{
    struct fixture          *f = *state;
    static const char *const cmds[][4] = {
        { "--help" },
        { "help" },
        { "submit", "--help" },
        { "job", "--help" },
        { "job", "get", "--help" },
        { "job", "cancel", "-h" },
        { "columns", "--help" },
        { "columns", "list", "--help" },
        { "columns", "add", "--help" },
        { "columns", "enable", "--help" },
        { "columns", "disable", "--help" },
        { "keygen", "--help" },
        { "token", "--help" },
        { "token", "issue", "--help" },
    };

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int rv = harness_cli(&f->h, NULL, cmds[i], harness_cli_out, sizeof(harness_cli_out),
            harness_cli_err, sizeof(harness_cli_err));
        if (rv != 0 || strstr(harness_cli_out, "Example") == NULL
            || strncmp(harness_cli_out, "Usage: rpc-cli", 14) != 0
            || harness_cli_err[0] != '\0') {
            fail_msg("%s %s --help: exit %d\nstdout:\n%s\nstderr:\n%s",
                cmds[i][0], cmds[i][1] != NULL ? cmds[i][1] : "", rv, harness_cli_out,
                harness_cli_err);
        }
    }
    CLI(0, &f->h, NULL, "--version");
    assert_int_equal(strncmp(harness_cli_out, "rpc-cli ", 8), 0);
    assert_in_range(harness_cli_out[8], '0', '9');

    CLI(2, &f->h, NULL, END);
    assert_has(harness_cli_err, "missing COMMAND");
    CLI(2, &f->h, NULL, "frobnicate");
    assert_has(harness_cli_err, "unknown command 'frobnicate'");
    assert_has(harness_cli_err, "--help");
    assert_string_equal(harness_cli_out, "");
    CLI(2, &f->h, NULL, "job", "frob");
    assert_has(harness_cli_err, "unknown subcommand 'frob'");
    CLI(2, &f->h, NULL, "columns");
    assert_has(harness_cli_err, "missing subcommand");
    CLI(2, &f->h, NULL, "columns", "drop", "x");
    assert_has(harness_cli_err, "unknown subcommand 'drop'");
    CLI(2, &f->h, f->tok, "submit", "x.csv", "--frob");
    assert_has(harness_cli_err, "unknown option '--frob'");
    CLI(2, &f->h, f->tok, "job", "get", "x", "--page-size");
    assert_has(harness_cli_err, "needs a value");
    CLI(2, &f->h, f->tok, "job", "cancel", "x", "--records");
    assert_has(harness_cli_err, "unknown option '--records'");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_keygen_and_token_issue, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_csv_quoting, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_ndjson_values, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_chunks_of_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_ragged_row_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_job_get_text_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_get_records, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_text_output_escapes_controls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_columns_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
