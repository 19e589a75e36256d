// SPDX-License-Identifier: MIT
/*
 * `rpc-cli import` end to end: the real binary (harness_cli) against the
 * real daemon. Covered: a CSV of 3500 records with RFC 4180 quoting in
 * every form (commas, doubled quotes, line breaks inside quotes, quoted
 * empty fields) and repeated keys, --wait's summary and --json; NDJSON;
 * progress as plain lines on a pipe; --errors for records FAILED, NOT_FOUND
 * and rejected with their request, mapped to input lines; --resume after a
 * clean stop and after a crash between the server's answer and the state
 * save (no job queued twice), a finished import sending nothing, a changed
 * file or different options refused; 429 retried through the client
 * library until the import completes; a connection broken after the
 * request was taken, resent with its idempotency key (against a fake
 * server); and `submit --json`.
 *
 * Interruptions are made deterministic with rpc-cli's test hooks:
 * BULKUPSERT_IMPORT_STOP_AFTER=K stops as SIGINT would after K requests,
 * BULKUPSERT_IMPORT_CRASH_AFTER=K dies as kill -9 would right after the
 * K-th request is accepted, before the state file records it. The 429 is
 * made deterministic by holding the tenant's write lock (as in
 * lifecycle_test.c) with a queue limit of one job: while the first job
 * cannot finish, the second request must be refused.
 */
#define _DEFAULT_SOURCE
// posix_openpt, grantpt, unlockpt and ptsname (the bar-width test).
#define _XOPEN_SOURCE 600
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ALLP (BU_PERM_READ | BU_PERM_MANAGE)

struct fixture {
    struct harness h;
    char          *tok; // DataSpace.Manage + DataSpace.Read for "acme"
};

static int
setup_args(void **state, const char *const *args)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    harness_start(&f->h, args);
    f->tok = harness_token(&f->h, "acme", ALLP, 3600);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    static const char *const args[] = { "--workers", "1", NULL };
    return setup_args(state, args);
}

// One worker and at most one unfinished job per tenant: a second request
// is refused (429) while the first job has not finished.
static int
setup_tight(void **state)
{
    static const char *const args[]
        = { "--workers", "1", "--tenant-max-queued", "1", NULL };
    return setup_args(state, args);
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

// path_in returns DIR/name (static storage, one of four rotating buffers).
static const char *
path_in(struct harness *h, const char *name)
{
    static char paths[4][400];
    static int  next;
    char       *path = paths[next++ % 4];

    snprintf(path, sizeof(paths[0]), "%s/%s", h->dir, name);
    return path;
}

static const char *
write_file(struct harness *h, const char *name, const char *text)
{
    const char *path = path_in(h, name);
    FILE       *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
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
    char  *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

// json_out parses harness_cli_out as one JSON object (fails the test if not).
static json_t *
json_out(void)
{
    json_error_t jerr;
    json_t      *v = json_loads(harness_cli_out, 0, &jerr);
    if (v == NULL || !json_is_object(v)) {
        fail_msg("not one JSON object (%s):\n%s", jerr.text, harness_cli_out);
    }
    return v;
}

static long long
jint(json_t *obj, const char *path)
{
    // "a.b" looks one level down.
    char        key[64];
    const char *dot = strchr(path, '.');
    if (dot != NULL) {
        snprintf(key, sizeof(key), "%.*s", (int) (dot - path), path);
        return jint(json_object_get(obj, key), dot + 1);
    }
    json_t *v = json_object_get(obj, path);
    if (!json_is_integer(v)) {
        fail_msg("\"%s\" is not an integer in:\n%s", path, harness_cli_out);
    }
    return json_integer_value(v);
}

static long long
count(struct fixture *f, const char *sql)
{
    return harness_count(&f->h, "acme", sql);
}

static long long
queued_jobs(struct fixture *f)
{
    return harness_queue_count(&f->h, "SELECT count(*) FROM jobs");
}

static const char *
text_of(struct fixture *f, const char *sql)
{
    static char buf[512];
    if (harness_text(&f->h, "acme", sql, buf, sizeof(buf)) != 0) {
        fail_msg("no row for: %s", sql);
    }
    return buf;
}

// Checks that every line of err is a plain progress line or a message of
// rpc-cli, and that there is no carriage return or escape sequence.
static void
assert_plain_progress(const char *err)
{
    if (strchr(err, '\r') != NULL || strchr(err, '\033') != NULL) {
        fail_msg("a carriage return or escape on a pipe:\n%s", err);
    }
    for (const char *p = err; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, "import: sent ", 13) != 0
            && strncmp(p, "rpc-cli", 7) != 0) {
            fail_msg("not a progress line: %.*s", (int) len, p);
        }
        p += len + (p[len] == '\n');
    }
}

// ---------------------------------------------------------------------------

// Writes a CSV of n records (keys c0000...) with every quoting case, whose
// last ndup records repeat the keys just before them (names "Dup KEY").
// Returns the path.
static const char *
write_quoted_csv(struct harness *h, const char *name, int n, int ndup)
{
    const char *path = path_in(h, name);
    FILE       *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs("contact_key,name,surname,email,gender\r\n", fp);
    for (int i = 0; i < n - ndup; i++) {
        switch (i % 5) {
        case 1: // an embedded comma
            fprintf(fp, "c%04d,\"Smith, John %d\",S,c%d@example.com,m\r\n", i,
                i, i);
            break;
        case 2: // doubled quotes
            fprintf(fp,
                "c%04d,N,\"He said \"\"hi\"\" %d\",c%d@example.com,\r\n", i, i,
                i);
            break;
        case 3: // a line break inside quotes
            fprintf(fp,
                "c%04d,\"Line one\nline two %d\",S,c%d@example.com,f\r\n", i,
                i, i);
            break;
        case 4: // a quoted empty field, and an unquoted empty one
            fprintf(fp, "c%04d,N%d,S,,\"\"\r\n", i, i);
            break;
        default:
            fprintf(fp, "c%04d,N%d,S%d,c%d@example.com,x\r\n", i, i, i, i);
        }
    }
    for (int i = n - 2 * ndup; i < n - ndup; i++) {
        fprintf(fp, "c%04d,Dup c%04d,S,c%d@example.com,x\r\n", i, i, i);
    }
    assert_int_equal(fclose(fp), 0);
    return path;
}

static void
test_import_csv_wait_json(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_quoted_csv(&f->h, "q.csv", 3500, 10);

    CLI(0, &f->h, f->tok, "import", path, "--wait", "--json", END);
    json_t *j = json_out();
    assert_int_equal(jint(j, "requests"), 4);
    assert_int_equal(jint(j, "records"), 3500);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 4);
    assert_int_equal(jint(j, "summary.jobs"), 4);
    assert_int_equal(jint(j, "summary.records"), 3500);
    assert_int_equal(jint(j, "summary.inserted"), 3490);
    assert_int_equal(jint(j, "summary.superseded"), 10);
    assert_int_equal(jint(j, "summary.updated"), 0);
    assert_int_equal(jint(j, "summary.failed"), 0);
    assert_int_equal(jint(j, "summary.not_found"), 0);
    assert_int_equal(jint(j, "summary.rejected"), 0);
    assert_int_equal(jint(j, "summary.jobs_failed"), 0);
    assert_int_equal(
        json_array_size(json_object_get(j, "rejected_requests")), 0);
    assert_true(json_is_null(json_object_get(j, "state_file")));
    json_decref(j);

    assert_int_equal(count(f, "SELECT count(*) FROM master_contact"), 3490);
    assert_int_equal(queued_jobs(f), 4);
    assert_string_equal(
        text_of(
            f, "SELECT name FROM master_contact WHERE contact_key='c0001'"),
        "Smith, John 1");
    assert_string_equal(text_of(f,
                            "SELECT surname FROM master_contact"
                            " WHERE contact_key='c0002'"),
        "He said \"hi\" 2");
    assert_string_equal(
        text_of(
            f, "SELECT name FROM master_contact WHERE contact_key='c3413'"),
        "Line one\nline two 3413");
    assert_string_equal(text_of(f,
                            "SELECT '[' || gender || ']' FROM master_contact"
                            " WHERE contact_key='c0004'"),
        "[]");
    // The later record with the same key won.
    assert_string_equal(
        text_of(
            f, "SELECT name FROM master_contact WHERE contact_key='c3485'"),
        "Dup c3485");

    // The same file again: every record is there already.
    CLI(0, &f->h, f->tok, "import", path, "--wait", "--progress", "none", END);
    assert_has(harness_cli_out, "unchanged       3490");
    assert_has(harness_cli_out, "superseded      10");
    assert_int_equal(strlen(harness_cli_err), 0);
}

static void
test_import_ndjson(void **state)
{
    struct fixture *f = *state;
    const char     *path = path_in(&f->h, "n.ndjson");
    FILE           *fp = fopen(path, "w");

    assert_non_null(fp);
    for (int i = 0; i < 1500; i++) {
        fprintf(fp,
            "{\"contact_key\": \"n%d\", \"name\": \"N \\\"%d\\\"\", "
            "\"email_permission\": %s, \"gender\": null}\n",
            i, i, i % 2 ? "true" : "false");
        if (i == 700) {
            fputs("\n", fp); // blank lines are skipped
        }
    }
    assert_int_equal(fclose(fp), 0);

    CLI(0, &f->h, f->tok, "import", path, "--batch", "700", "--wait", END);
    assert_has(harness_cli_out, "requests        3 (0 answered in an earlier run)");
    assert_has(harness_cli_out, "records         1500");
    assert_has(harness_cli_out, "jobs            3");
    assert_has(harness_cli_out, "inserted        1500");
    assert_has(harness_cli_out, "failed          0");
    assert_int_equal(count(f, "SELECT count(*) FROM master_contact"), 1500);
    assert_int_equal(queued_jobs(f), 3);
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='n7'"),
        "N \"7\"");
    assert_int_equal(count(f,
                         "SELECT count(*) FROM master_contact"
                         " WHERE email_permission = 0"),
        750);
}

static void
test_import_progress_lines_on_pipe(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_quoted_csv(&f->h, "p.csv", 2000, 0);

    // Standard error is a file here: lines, even if TERM says a terminal.
    setenv("TERM", "xterm-256color", 1);
    CLI(0, &f->h, f->tok, "import", path, "--wait", END);
    unsetenv("TERM");
    assert_plain_progress(harness_cli_err);
    // The end of sending and the end of waiting, with exact totals.
    assert_has(harness_cli_err, "import: sent 2000/2000 records in 2 jobs, ");
    assert_has(harness_cli_err, "import: sent 2000/2000 records in 2 jobs, 2 done, ");
    assert_has(harness_cli_err, " rec/s, eta 0s\n");

    // --progress lines says what auto does on a pipe; none is silent.
    CLI(0, &f->h, f->tok, "import", path, "--progress", "lines", END);
    assert_plain_progress(harness_cli_err);
    CLI(0, &f->h, f->tok, "import", path, "--progress", "none", END);
    assert_int_equal(strlen(harness_cli_err), 0);
    CLI(2, &f->h, f->tok, "import", path, "--progress", "fancy", END);
}

// Checks that the errors file holds exactly want (rows without the job id
// column's value, which each row must have as a 36-character id, unless
// the row ends in "," for none).
static void
assert_errors_file(const char *path, const char *const *want, size_t n)
{
    char *text = read_file(path);
    assert_non_null(text);
    const char *p = text;
    const char  hdr[] = "line,contact_key,column,reason,job_id\r\n";
    if (strncmp(p, hdr, sizeof(hdr) - 1) != 0) {
        fail_msg("no header row in:\n%s", text);
    }
    p += sizeof(hdr) - 1;
    for (size_t i = 0; i < n; i++) {
        size_t wl = strlen(want[i]);
        if (strncmp(p, want[i], wl) != 0) {
            fail_msg(
                "row %zu: expected \"%s...\" in:\n%s", i + 1, want[i], text);
        }
        p += wl;
        size_t idlen = strcspn(p, "\r");
        if (want[i][wl - 1] == ',' && idlen != 0 && idlen != 36) {
            fail_msg("row %zu: bad job id in:\n%s", i + 1, text);
        }
        p += idlen;
        if (strncmp(p, "\r\n", 2) != 0) {
            fail_msg("row %zu: no CRLF after it in:\n%s", i + 1, text);
        }
        p += 2;
    }
    if (*p != '\0') {
        fail_msg("more rows than expected:\n%s", p);
    }
    free(text);
}

static void
test_import_errors_file(void **state)
{
    struct fixture *f = *state;
    // A copy: path_in's buffers are reused by the write_file calls below.
    char err[400];
    snprintf(err, sizeof(err), "%s", path_in(&f->h, "err.csv"));

    // Records FAILED (kept going with --no-fail-on-error): request 1 holds
    // lines 2, 3-4 (a quoted line break) and 5, so its lines are not
    // consecutive; request 2 holds lines 6 and 7.
    const char *p1 = write_file(&f->h, "e1.csv",
        "contact_key,name,email\n"
        "e1,A,e1@example.com\n"
        "e2,\"multi\nline\",e2@example.com\n"
        "e3,Bad,not-an-email\n"
        "e4,D,e4@example.com\n"
        "e5,\"E, e\",also bad\n");
    CLI(3, &f->h, f->tok, "import", p1, "--batch", "3", "--no-fail-on-error",
        "--errors", err, "--json", END);
    static const char *const want1[] = {
        "5,e3,email,not an email address",
        "7,e5,email,not an email address",
    };
    assert_errors_file(err, want1, 2);
    json_t *j = json_out();
    assert_int_equal(jint(j, "summary.inserted"), 3);
    assert_int_equal(jint(j, "summary.failed"), 2);
    assert_int_equal(jint(j, "error_rows"), 2);
    json_decref(j);
    assert_int_equal(count(f, "SELECT count(*) FROM master_contact"), 3);

    // Records NOT_FOUND (--no-insert).
    const char *p2 = write_file(&f->h, "e2.csv",
        "contact_key,name\n"
        "e1,A2\n"
        "zz9,Nobody\n");
    CLI(3, &f->h, f->tok, "import", p2, "--no-insert", "--errors", err, END);
    static const char *const want2[] = { "3,zz9,,not found" };
    assert_errors_file(err, want2, 1);
    assert_has(harness_cli_out, "updated         1");
    assert_has(harness_cli_out, "not_found       1");
    assert_has(harness_cli_out, "errors_file     ");

    // A request rejected for one invalid record (the default
    // fail_on_error): the import goes on, and the errors file names the
    // request and the record at fault.
    const char *p3 = write_file(&f->h, "e3.csv",
        "contact_key,email\n"
        "r1,r1@example.com\n"
        "r2,r2@example.com\n"
        "r3,bad\n"
        "r4,r4@example.com\n"
        "r5,r5@example.com\n");
    CLI(3, &f->h, f->tok, "import", p3, "--batch", "2", "--errors", err, END);
    static const char *const want3[] = {
        "4,,,\"request 2 (lines 4 to 5, 2 records) was rejected",
        "4,r3,email,not an email address",
    };
    assert_errors_file(err, want3, 2);
    assert_has(harness_cli_out, "rejected        1 request, 2 records");
    assert_has(harness_cli_out, "inserted        3");
    assert_int_equal(count(f,
                         "SELECT count(*) FROM master_contact"
                         " WHERE contact_key LIKE 'r%'"),
        3);
    assert_int_equal(queued_jobs(f), 2 + 1 + 2);

    // Without --errors the rejection is printed with its input line, and
    // the exit code still says that records did not land.
    CLI(3, &f->h, f->tok, "import", p3, "--batch", "2", END);
    assert_has(harness_cli_err, "(key r3) column email: ");
    assert_has(harness_cli_err, "(line 4)");

    // Every record landed: an errors file with its header only, exit 0.
    const char *p4 = write_file(&f->h, "e4.csv", "contact_key,name\ne1,A3\n");
    CLI(0, &f->h, f->tok, "import", p4, "--errors", err, "--progress", "none",
        END);
    assert_errors_file(err, NULL, 0);
}

static void
test_import_bad_input(void **state)
{
    struct fixture *f = *state;
    const char     *path = path_in(&f->h, "bad.csv");
    const char     *st = path_in(&f->h, "bad.state");
    FILE           *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs("contact_key,name\n", fp);
    for (int i = 0; i < 250; i++) {
        fprintf(fp, "b%d,N%d\n", i, i);
        if (i == 220) {
            fputs("x,y,z\n", fp); // line 223
        }
    }
    assert_int_equal(fclose(fp), 0);

    // The requests before the one holding the bad line are sent.
    CLI(2, &f->h, f->tok, "import", path, "--batch", "100", "--resume", st,
        END);
    assert_has(harness_cli_err, "bad.csv:223: the record has 3 fields");
    assert_has(harness_cli_err, "the 2 requests before it were answered");
    assert_int_equal(queued_jobs(f), 2);
    char *state_text = read_file(st);
    assert_non_null(state_text);
    assert_has(state_text, "\"requests\": 2,");
    assert_has(state_text, "\"finished\": false");
    free(state_text);

    // A bad NDJSON line, in the first request: nothing is sent.
    const char *nd = write_file(
        &f->h, "bad.ndjson", "{\"contact_key\": \"j1\"}\n[1, 2]\n");
    CLI(2, &f->h, f->tok, "import", nd, END);
    assert_has(harness_cli_err, "bad.ndjson:2: expected a JSON object");
    assert_int_equal(queued_jobs(f), 2);
}

static void
test_import_resume(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_quoted_csv(&f->h, "r.csv", 1000, 0);
    const char     *st = path_in(&f->h, "r.state");

    // Stopped cleanly after two requests of 200.
    setenv("BULKUPSERT_IMPORT_STOP_AFTER", "2", 1);
    CLI(130, &f->h, f->tok, "import", path, "--batch", "200", "--resume", st,
        END);
    unsetenv("BULKUPSERT_IMPORT_STOP_AFTER");
    assert_has(harness_cli_err, "interrupted after 2 requests");
    assert_int_equal(queued_jobs(f), 2);

    // Different options are refused before anything is sent.
    CLI(2, &f->h, f->tok, "import", path, "--batch", "300", "--resume", st,
        END);
    assert_has(harness_cli_err, "resume it with the same options");
    CLI(2, &f->h, f->tok, "import", path, "--batch", "200",
        "--no-fail-on-error", "--resume", st, END);

    // Dies right after request 3 is accepted, before the state says so.
    setenv("BULKUPSERT_IMPORT_CRASH_AFTER", "1", 1);
    CLI(137, &f->h, f->tok, "import", path, "--batch", "200", "--resume", st,
        END);
    unsetenv("BULKUPSERT_IMPORT_CRASH_AFTER");
    assert_int_equal(queued_jobs(f), 3);

    // Resumed: requests 1 and 2 are skipped, request 3 comes back as the
    // job it made (its idempotency key), 4 and 5 are new.
    CLI(0, &f->h, f->tok, "import", path, "--batch", "200", "--resume", st,
        "--wait", "--json", END);
    assert_has(harness_cli_err, "request 3 had been accepted before");
    json_t *j = json_out();
    assert_int_equal(jint(j, "requests"), 5);
    assert_int_equal(jint(j, "requests_skipped"), 2);
    assert_int_equal(jint(j, "duplicates"), 1);
    assert_int_equal(jint(j, "records"), 1000);
    assert_int_equal(jint(j, "summary.inserted"), 1000);
    json_t *jobs = json_object_get(j, "jobs");
    assert_int_equal(json_array_size(jobs), 5);
    for (size_t a = 0; a < 5; a++) {
        for (size_t b = a + 1; b < 5; b++) {
            assert_string_not_equal(json_string_value(json_array_get(jobs, a)),
                json_string_value(json_array_get(jobs, b)));
        }
    }
    json_decref(j);
    assert_int_equal(queued_jobs(f), 5); // no request made a second job
    assert_int_equal(count(f, "SELECT count(*) FROM master_contact"), 1000);
    char *state_text = read_file(st);
    assert_non_null(state_text);
    assert_has(state_text, "\"finished\": true");
    free(state_text);

    // A finished import sends nothing, and can still report; its progress
    // counts nothing sent by this run and reads the jobs it names.
    CLI(0, &f->h, f->tok, "import", path, "--batch", "200", "--resume", st,
        "--wait", "--progress", "lines", END);
    assert_has(harness_cli_err, "says this import finished; nothing is sent");
    assert_has(
        harness_cli_err, "import: sent 1000/1000 records in 5 jobs, 5 done, 0 rec/s");
    assert_has(harness_cli_out, "requests        5 (5 answered in an earlier run)");
    assert_has(harness_cli_out, "inserted        1000");
    assert_int_equal(queued_jobs(f), 5);

    // A changed file is refused.
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("zz1,Late,S,zz1@example.com,x\r\n", fp);
    assert_int_equal(fclose(fp), 0);
    CLI(2, &f->h, f->tok, "import", path, "--batch", "200", "--resume", st,
        END);
    assert_has(harness_cli_err, "has changed since the import began");
    assert_int_equal(queued_jobs(f), 5);

    // Standard input cannot be resumed.
    CLI(2, &f->h, f->tok, "import", "-", "--resume", st, END);
}

// A request rejected in a run that was then stopped: the resumed run's
// errors file still lists its invalid records, with their input lines.
static void
test_import_resume_keeps_rejections(void **state)
{
    struct fixture *f = *state;
    const char     *st = path_in(&f->h, "rj.state");
    const char     *err = path_in(&f->h, "rj.err.csv");
    const char     *path = write_file(&f->h, "rj.csv",
            "contact_key,email\n"
                "r1,r1@example.com\n"
                "r2,r2@example.com\n"
                "r3,bad\n"
                "r4,\"also\nbad\"\n"
                "r5,r5@example.com\n"
                "r6,r6@example.com\n");

    setenv("BULKUPSERT_IMPORT_STOP_AFTER", "2", 1);
    CLI(130, &f->h, f->tok, "import", path, "--batch", "2", "--resume", st,
        "--progress", "none", END);
    unsetenv("BULKUPSERT_IMPORT_STOP_AFTER");
    assert_has(harness_cli_err, "request 2 (records on lines 4 to 5) was rejected");
    char *text = read_file(st);
    assert_non_null(text);
    assert_has(text, "\"contact_key\": \"r3\"");
    free(text);

    CLI(3, &f->h, f->tok, "import", path, "--batch", "2", "--resume", st,
        "--errors", err, "--progress", "none", END);
    static const char *const want[] = {
        "4,,,\"request 2 (lines 4 to 5, 2 records) was rejected in an "
        "earlier run",
        "4,r3,email,not an email address",
        "5,r4,email,not an email address",
    };
    assert_errors_file(err, want, 3);
    assert_has(harness_cli_out, "requests        3 (2 answered in an earlier run)");
    assert_int_equal(queued_jobs(f), 2);
}

// Line numbers for every line end: LF, CRLF and a lone CR (old Mac
// exports), including one inside a quoted field, and a last line without
// one.
static void
test_import_line_ends(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_file(&f->h, "le.csv",
            "contact_key,name\r\n" // 1
            "k1,A\r"               // 2
            "k2,\"B\r\nb\"\n"      // 3-4
            "k3,C\n"               // 5
            "k4,D");               // 6

    CLI(0, &f->h, f->tok, "submit", path, "--batch", "1", "--json", END);
    static const long first[] = { 2, 3, 5, 6 };
    char             *p = harness_cli_out;
    for (int i = 0; i < 4; i++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_error_t jerr;
        json_t      *j = json_loads(p, 0, &jerr);
        assert_non_null(j);
        assert_int_equal(
            json_integer_value(json_object_get(j, "first_line")), first[i]);
        json_decref(j);
        p = nl + 1;
    }
    CLI(0, &f->h, f->tok, "import", path, "--wait", "--progress", "none", END);
    assert_string_equal(
        text_of(f, "SELECT name FROM master_contact WHERE contact_key='k2'"),
        "B\r\nb");

    // A file with lone CRs only: the bad record is on line 4, not line 1.
    const char *cr = write_file(
        &f->h, "cr.csv", "contact_key,name\rc1,A\rc2,B\rc3,C,extra\rc4,D\r");
    CLI(2, &f->h, f->tok, "import", cr, END);
    assert_has(harness_cli_err, "cr.csv:4: the record has 3 fields");
}

// An unclosed quote does not pull the rest of a large file into memory:
// the record is refused once it passes 1 MiB, naming the line it starts.
static void
test_import_unclosed_quote(void **state)
{
    struct fixture *f = *state;
    const char     *path = path_in(&f->h, "uq.csv");
    FILE           *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs("contact_key,name\n", fp);
    for (int i = 0; i < 10; i++) {
        fprintf(fp, "u%d,N%d\n", i, i);
    }
    fputs("u10,\"never closed\n", fp); // line 12
    for (int i = 0; i < 100000; i++) {
        fprintf(fp, "v%d,a name that fills the line up to forty\n", i);
    }
    assert_int_equal(fclose(fp), 0);
    CLI(2, &f->h, f->tok, "import", path, "--progress", "none", END);
    assert_has(harness_cli_err,
        "uq.csv: record starting at line 12 exceeds 1 MiB (unclosed quote?)");
    assert_int_equal(queued_jobs(f), 0);

    // An NDJSON line over 1 MiB, likewise.
    const char *nd = path_in(&f->h, "long.ndjson");
    fp = fopen(nd, "w");
    assert_non_null(fp);
    fputs("{\"contact_key\": \"n1\"}\n{\"contact_key\": \"n2\", \"name\": \"",
        fp);
    for (int i = 0; i < 2 * 1024 * 1024; i++) {
        fputc('x', fp);
    }
    fputs("\"}\n", fp);
    assert_int_equal(fclose(fp), 0);
    CLI(2, &f->h, f->tok, "import", nd, "--progress", "none", END);
    assert_has(
        harness_cli_err, "long.ndjson: record starting at line 2 exceeds 1 MiB");
    assert_int_equal(queued_jobs(f), 0);
}

// A value no column could hold is bad input, named by line and column,
// and the request holding it is not sent (it could only be refused, or be
// too large for the server to read at all).
static void
test_import_value_too_long(void **state)
{
    struct fixture *f = *state;
    const char     *path = path_in(&f->h, "big.csv");
    FILE           *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs("contact_key,name\nb1,A\nb2,", fp);
    for (int i = 0; i < 70000; i++) {
        fputc('x', fp);
    }
    fputs("\nb3,C\n", fp);
    assert_int_equal(fclose(fp), 0);
    CLI(2, &f->h, f->tok, "import", path, "--batch", "1", "--progress", "none",
        END);
    assert_has(harness_cli_err, "big.csv:3: column name holds a value of 70000 bytes");
    assert_int_equal(queued_jobs(f), 1);

    const char *nd = path_in(&f->h, "big.ndjson");
    fp = fopen(nd, "w");
    assert_non_null(fp);
    fputs("{\"contact_key\": \"j1\", \"name\": \"", fp);
    for (int i = 0; i < 70000; i++) {
        fputc('y', fp);
    }
    fputs("\"}\n", fp);
    assert_int_equal(fclose(fp), 0);
    CLI(2, &f->h, f->tok, "import", nd, "--progress", "none", END);
    assert_has(harness_cli_err, "big.ndjson:1: column name holds a value of 70000");
    assert_int_equal(queued_jobs(f), 1);
}

// Rows too wide for any request the server accepts (each value under the
// per-value cap): the chunk is refused as bad input, naming its lines,
// before it is sent, instead of a frame the server would drop.
static void
test_import_request_too_big(void **state)
{
    struct fixture *f = *state;
    const char     *path = path_in(&f->h, "wide.csv");
    FILE           *fp = fopen(path, "w");
    static char     value[60001];

    assert_non_null(fp);
    memset(value, 'w', sizeof(value) - 1);
    fputs("contact_key,name\nw0,A\n", fp);
    for (int i = 1; i <= 720; i++) { // 720 * 60 kB: past 40 MiB
        fprintf(fp, "w%d,%s\n", i, value);
    }
    assert_int_equal(fclose(fp), 0);
    long before = queued_jobs(f);
    CLI(2, &f->h, f->tok, "import", path, "--progress", "none", END);
    assert_has(harness_cli_err, "wide.csv:2: the 721 records on lines 2 to 722 make "
                        "a request of");
    assert_has(harness_cli_err, "more than the server accepts");
    assert_int_equal(queued_jobs(f), before);
}

// A byte order mark before a quoted CSV header, or before NDJSON.
static void
test_import_bom(void **state)
{
    struct fixture *f = *state;
    const char     *csv = write_file(
            &f->h, "bom.csv", "\xef\xbb\xbf\"contact_key\",\"name\"\nb1,A\n");
    const char *nd = write_file(
        &f->h, "bom.ndjson", "\xef\xbb\xbf{\"contact_key\": \"b2\"}\n");

    CLI(0, &f->h, f->tok, "import", csv, "--wait", "--progress", "none", END);
    CLI(0, &f->h, f->tok, "import", nd, "--wait", "--progress", "none", END);
    assert_int_equal(count(f,
                         "SELECT count(*) FROM master_contact"
                         " WHERE contact_key IN ('b1', 'b2')"),
        2);
}

// Starts rpc-cli with args (NULL-terminated) on the daemon, with its
// standard input, output and error on the given descriptors (closed here
// in the parent when they are not 0, 1, 2). Returns the pid.
static pid_t
spawn_cli(struct fixture *f, const char *const *args, int in, int out, int err)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[32];
        int         n = 0;
        argv[n++] = BU_CLI_PATH;
        for (int i = 0; args[i] != NULL && n < 31; i++) {
            argv[n++] = args[i];
        }
        argv[n] = NULL;
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        setenv("BULKUPSERT_URL", f->h.url, 1);
        setenv("BULKUPSERT_TOKEN", f->tok, 1);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *) argv);
        _exit(127);
    }
    return pid;
}

// The exit status as a shell reports it.
static int
wait_cli(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A pipe whose reading end is closed: writing to it fails with EPIPE, and
// raises SIGPIPE.
static int
broken_pipe(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    return fds[1];
}

// Standard error and standard output closed early (rpc-cli ... 2>&1 |
// head -1): the import goes on, and the state file is saved.
static void
test_import_closed_pipes(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_quoted_csv(&f->h, "pp.csv", 300, 0);
    const char     *st1 = path_in(&f->h, "pp1.state");
    const char     *st2 = path_in(&f->h, "pp2.state");
    int             null = open("/dev/null", O_RDWR);

    assert_true(null >= 0);
    // The bar is drawn after the first request, into a closed pipe.
    const char *const args1[] = { "import", path, "--batch", "100",
        "--progress", "bar", "--resume", st1, NULL };
    int               e = broken_pipe();
    assert_int_equal(wait_cli(spawn_cli(f, args1, null, null, e)), 0);
    close(e);
    char *text = read_file(st1);
    assert_non_null(text);
    assert_has(text, "\"requests\": 3,");
    assert_has(text, "\"finished\": true");
    free(text);

    // The summary cannot be written either: exit 1, but the state is whole.
    const char *const args2[] = { "import", path, "--batch", "100",
        "--progress", "bar", "--resume", st2, NULL };
    int               o = broken_pipe();
    e = broken_pipe();
    assert_int_equal(wait_cli(spawn_cli(f, args2, null, o, e)), 1);
    close(o);
    close(e);
    text = read_file(st2);
    assert_non_null(text);
    assert_has(text, "\"finished\": true");
    free(text);
    close(null);
}

// The progress bar on a terminal 40 columns wide never takes more than
// 39, so that it does not wrap.
static void
test_import_bar_width(void **state)
{
    struct fixture   *f = *state;
    const char       *path = write_quoted_csv(&f->h, "bw.csv", 300, 0);
    const char *const args[] = { "import", path, "--batch", "100",
        "--progress", "bar", "--wait", NULL };
    struct winsize    ws = { .ws_row = 24, .ws_col = 40 };
    int               null = open("/dev/null", O_RDWR);
    int               pty = posix_openpt(O_RDWR | O_NOCTTY);

    assert_true(null >= 0 && pty >= 0);
    assert_int_equal(grantpt(pty), 0);
    assert_int_equal(unlockpt(pty), 0);
    int tty = open(ptsname(pty), O_RDWR | O_NOCTTY);
    assert_true(tty >= 0);
    assert_int_equal(ioctl(tty, TIOCSWINSZ, &ws), 0);
    pid_t pid = spawn_cli(f, args, null, null, tty);
    close(tty);
    // The bar is a few hundred bytes: the terminal's buffer holds it all
    // until the import ends.
    assert_int_equal(wait_cli(pid), 0);
    char    text[16384];
    size_t  len = 0;
    ssize_t n;
    while (len < sizeof(text) - 1
        && (n = read(pty, text + len, sizeof(text) - 1 - len)) > 0) {
        len += (size_t) n;
    }
    text[len] = '\0';
    close(pty);
    close(null);
    assert_has(text, "] 100% waiting");
    for (char *p = text; *p != '\0';) {
        size_t seg = strcspn(p, "\r\n\033");
        if (seg > 39) {
            fail_msg("a bar line of %zu columns:\n%s", seg, text);
        }
        p += seg;
        p += *p == '\033' ? 3 : *p != '\0'; // "\033[K" or a line end
    }
}

// Waits until the queue holds n jobs (at most 30 s).
static void
wait_jobs(struct fixture *f, long long n)
{
    for (int i = 0; i < 3000 && queued_jobs(f) < n; i++) {
        harness_sleep_ms(10);
    }
    assert_int_equal(queued_jobs(f), n);
}

// Waits until process pid is blocked reading its standard input (Linux:
// /proc/PID/syscall reads "0 0x0 ..." for read(0, ...)), at most 30 s.
static void
wait_reading_stdin(pid_t pid)
{
    char path[64];
    char line[128] = "";
    snprintf(path, sizeof(path), "/proc/%d/syscall", (int) pid);
    for (int i = 0; i < 3000; i++) {
        FILE *fp = fopen(path, "r");
        if (fp != NULL) {
            if (fgets(line, sizeof(line), fp) == NULL) {
                line[0] = '\0';
            }
            fclose(fp);
        }
        if (strncmp(line, "0 0x0 ", 6) == 0) {
            return;
        }
        harness_sleep_ms(10);
    }
    fail_msg("rpc-cli never waited on its input (%s: %s)", path, line);
}

// SIGHUP stops an import as SIGTERM does (exit 129); a second signal of
// another kind stops it at once. The input is a pipe, so that the import
// waits for it with a request sent.
static void
test_import_sighup(void **state)
{
    struct fixture   *f = *state;
    const char *const args[]
        = { "import", "-", "--batch", "1", "--progress", "none", NULL };
    int in[2];
    int out = open(path_in(&f->h, "hup.out"), O_WRONLY | O_CREAT, 0600);
    const char *head = "contact_key\nh1\n";

    assert_true(out >= 0);
    assert_int_equal(pipe(in), 0);
    pid_t pid = spawn_cli(f, args, in[0], out, out);
    close(in[0]);
    assert_int_equal(write(in[1], head, strlen(head)), (ssize_t) strlen(head));
    wait_jobs(f, 1);
    // Not before the import has taken the answer and waits for more input:
    // a signal while the first answer is on its way stops it after one.
    wait_reading_stdin(pid);
    assert_int_equal(kill(pid, SIGHUP), 0);
    // The import stops after the request in flight.
    assert_int_equal(write(in[1], "h2\n", 3), 3);
    close(in[1]);
    assert_int_equal(wait_cli(pid), 129);
    assert_int_equal(queued_jobs(f), 2);
    char *text = read_file(path_in(&f->h, "hup.out"));
    assert_non_null(text);
    assert_has(text, "interrupted after 2 requests");
    free(text);

    // SIGHUP, then SIGTERM while reading: the second one (whichever the
    // kernel delivers second) kills it at once, though the input is open.
    assert_int_equal(pipe(in), 0);
    pid = spawn_cli(f, args, in[0], out, out);
    close(in[0]);
    assert_int_equal(write(in[1], head, strlen(head)), (ssize_t) strlen(head));
    wait_jobs(f, 3);
    assert_int_equal(kill(pid, SIGHUP), 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    close(in[1]);
    close(out);
}

// What is checked before the first request: the state file is not in use
// by another import, the errors file can be written, and with --wait the
// token can read jobs.
static void
test_import_checks_first(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_file(&f->h, "cf.csv", "contact_key\nc1\n");
    const char     *st = path_in(&f->h, "cf.state");
    char            lock[512];

    snprintf(lock, sizeof(lock), "%s.lock", st);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    CLI(2, &f->h, f->tok, "import", path, "--resume", st, END);
    assert_has(harness_cli_err, "is in use by another import");
    char want[600];
    snprintf(want, sizeof(want), "(%s is locked); nothing was sent", lock);
    assert_has(harness_cli_err, want);
    assert_lacks(harness_cli_err, "Resource temporarily unavailable");
    close(fd);

    // A folder that is a file: FILE.tmp cannot be made.
    const char *bad = path_in(&f->h, "cf.csv/errors.csv");
    CLI(2, &f->h, f->tok, "import", path, "--errors", bad, END);
    assert_has(harness_cli_err, "cannot write the errors file");
    assert_has(harness_cli_err, "cf.csv/errors.csv.tmp: Not a directory");

    // --errors or --resume naming the input or each other would replace
    // it: refused, the input and the state file untouched.
    const char *st2 = write_file(&f->h, "cf2.state", "{}");
    char        alias[600];
    snprintf(alias, sizeof(alias), "%s/./cf.csv", f->h.dir);
    CLI(2, &f->h, f->tok, "import", path, "--errors", path, END);
    assert_has(harness_cli_err, "--errors");
    assert_has(harness_cli_err, "is the input FILE");
    CLI(2, &f->h, f->tok, "import", path, "--errors", alias, END);
    assert_has(harness_cli_err, "is the input FILE");
    CLI(2, &f->h, f->tok, "import", path, "--resume", st2, "--errors", st2,
        END);
    assert_has(harness_cli_err, "is the --resume state file");
    CLI(2, &f->h, f->tok, "import", path, "--resume", path, END);
    assert_has(harness_cli_err, "--resume");
    assert_has(harness_cli_err, "is the input FILE");
    char *kept = read_file(path);
    assert_string_equal(kept, "contact_key\nc1\n");
    free(kept);
    kept = read_file(st2);
    assert_string_equal(kept, "{}");
    free(kept);
    // Neither file exists yet: the same name in the same folder, however
    // spelt, is the same file.
    char cwd[1024];
    char abs_st[600];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->h.dir), 0);
    snprintf(abs_st, sizeof(abs_st), "%s/new.state", f->h.dir);
    CLI(2, &f->h, f->tok, "import", path, "--resume", "new.state", "--errors",
        "./new.state", END);
    assert_has(harness_cli_err, "is the --resume state file");
    CLI(2, &f->h, f->tok, "import", path, "--resume", "new.state", "--errors",
        abs_st, END);
    assert_has(harness_cli_err, "is the --resume state file");
    CLI(2, &f->h, f->tok, "import", path, "--resume", abs_st, "--errors",
        "new.state", END);
    assert_has(harness_cli_err, "is the --resume state file");
    // Nor through a link that leads to it (writing through the link would
    // create it), relative or absolute, over two hops.
    assert_int_equal(symlink("new.state", "link.state"), 0);
    assert_int_equal(symlink(abs_st, "abs-link.state"), 0);
    assert_int_equal(symlink("link.state", "hop.state"), 0);
    CLI(2, &f->h, f->tok, "import", path, "--resume", "new.state", "--errors",
        "link.state", END);
    assert_has(harness_cli_err, "is the --resume state file");
    CLI(2, &f->h, f->tok, "import", path, "--resume", "abs-link.state",
        "--errors", "./new.state", END);
    assert_has(harness_cli_err, "is the --resume state file");
    CLI(2, &f->h, f->tok, "import", path, "--resume", "hop.state", "--errors",
        abs_st, END);
    assert_has(harness_cli_err, "is the --resume state file");
    // A link to a file of another name is another file; a loop is no file.
    assert_int_equal(symlink("loop-b.state", "loop-a.state"), 0);
    assert_int_equal(symlink("loop-a.state", "loop-b.state"), 0);
    CLI(2, &f->h, f->tok, "import", path, "--resume", "loop-a.state",
        "--errors", "new.state", END);
    assert_lacks(harness_cli_err, "is the --resume state file");
    assert_int_equal(access(abs_st, F_OK), -1);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(queued_jobs(f), 0);

    // A token that may submit but not read jobs.
    char *wo = harness_token(&f->h, "acme", BU_PERM_MANAGE, 3600);
    CLI(1, &f->h, wo, "import", path, "--wait", END);
    assert_has(harness_cli_err, "--wait needs a token that may read jobs");
    assert_int_equal(queued_jobs(f), 0);
    // Any other failure of that check is only reported as what it is.
    char none[400];
    snprintf(none, sizeof(none), "ipc://%s/none.sock", f->h.dir);
    CLI(1, &f->h, f->tok, "--url", none, "--timeout", "300", "import", path,
        "--wait", "--retries", "0", END);
    assert_has(harness_cli_err, "rpc-cli: UNAVAILABLE: ");
    assert_lacks(harness_cli_err, "needs a token");
    char *old = harness_token(&f->h, "acme", ALLP, -60);
    CLI(1, &f->h, old, "import", path, "--wait", END);
    assert_has(harness_cli_err, "UNAUTHENTICATED");
    assert_lacks(harness_cli_err, "needs a token");
    free(old);
    // Without --wait it imports.
    CLI(0, &f->h, wo, "import", path, "--progress", "none", END);
    assert_int_equal(queued_jobs(f), 1);
    free(wo);
}

// A file name that is not UTF-8 resumes, and shows in --json escaped.
static void
test_import_non_utf8_name(void **state)
{
    struct fixture *f = *state;
    const char     *path
        = write_file(&f->h, "caf\xe9.csv", "contact_key\nn1\nn2\nn3\n");
    const char *st = path_in(&f->h, "caf\xe9.state");

    setenv("BULKUPSERT_IMPORT_STOP_AFTER", "1", 1);
    CLI(130, &f->h, f->tok, "import", path, "--batch", "2", "--resume", st,
        END);
    unsetenv("BULKUPSERT_IMPORT_STOP_AFTER");
    CLI(0, &f->h, f->tok, "import", path, "--batch", "2", "--resume", st,
        "--json", END);
    json_t *j = json_out();
    assert_int_equal(jint(j, "requests"), 2);
    assert_int_equal(jint(j, "requests_skipped"), 1);
    const char *input = json_string_value(json_object_get(j, "input"));
    assert_non_null(input);
    assert_has(input, "caf\\xe9.csv");
    assert_has(
        json_string_value(json_object_get(j, "state_file")), "caf\\xe9.state");
    json_decref(j);
    assert_int_equal(queued_jobs(f), 2);
}

// Runs one rpc-cli import on another thread (harness_cli blocks).
struct bg_cli {
    struct fixture *f;
    const char     *path;
    int             rv;
    char            out[1 << 16];
    char            err[1 << 16];
};

static void *
bg_import(void *arg)
{
    struct bg_cli    *b = arg;
    const char *const args[] = { "import", b->path, "--batch", "100", "--wait",
        "--json", "--retries", "30", NULL };

    b->rv = harness_cli(&b->f->h, b->f->tok, args, b->out, sizeof(b->out),
        b->err, sizeof(b->err));
    return NULL;
}


// A request whose answer does not come in time is sent again with the same
// idempotency key; the server answers the copy with the job of the first,
// so each request is queued exactly once. queue.db is held locked for a
// while so that the first answers are late.
struct qlock {
    sqlite3 *db;
    int      hold_ms;
};

static void *
qlock_release_later(void *arg)
{
    struct qlock *q = arg;
    harness_sleep_ms(q->hold_ms);
    sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(q->db);
    return NULL;
}

static void
test_import_resends_late_answers(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_quoted_csv(&f->h, "late.csv", 200, 0);
    long            before = queued_jobs(f);
    struct qlock    q = { .hold_ms = 1200 };
    pthread_t       t;

    q.db = harness_lock_db(&f->h, "queue.db");
    assert_int_equal(pthread_create(&t, NULL, qlock_release_later, &q), 0);
    CLI(0, &f->h, f->tok, "--timeout", "300", "import", path, "--batch",
        "100", "--retries", "30", "--progress", "none", "--json", END);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(queued_jobs(f), before + 2);
    assert_lacks(harness_cli_out, "\"retries\": 0,");
    assert_has(harness_cli_out, "\"retries\": ");
}

static void
test_import_retries_busy(void **state)
{
    struct fixture *f = *state;

    // The tenant's database exists after a first import.
    const char *one = write_file(&f->h, "one.csv", "contact_key\nfirst\n");
    CLI(0, &f->h, f->tok, "import", one, "--wait", END);

    const char *path = write_quoted_csv(&f->h, "busy.csv", 300, 0);
    sqlite3    *db = harness_lock_db(&f->h, "tenants/acme.db");

    struct bg_cli *b = calloc(1, sizeof(*b));
    pthread_t      t;
    assert_non_null(b);
    b->f = f;
    b->path = path;
    assert_int_equal(pthread_create(&t, NULL, bg_import, b), 0);
    // The first request is accepted; its job cannot finish while the lock
    // is held, so the next request is refused until then.
    for (int i = 0; i < 3000 && queued_jobs(f) < 2; i++) {
        harness_sleep_ms(10);
    }
    assert_int_equal(queued_jobs(f), 2);
    harness_sleep_ms(1500);
    assert_int_equal(queued_jobs(f), 2);
    harness_unlock_db(db);
    assert_int_equal(pthread_join(t, NULL), 0);

    if (b->rv != 0) {
        fail_msg("rpc-cli exited %d\nstdout:\n%s\nstderr:\n%s", b->rv, b->out,
            b->err);
    }
    snprintf(harness_cli_out, sizeof(harness_cli_out), "%s", b->out);
    free(b);
    json_t *j = json_out();
    assert_true(jint(j, "retries") >= 1);
    assert_int_equal(jint(j, "requests"), 3);
    assert_int_equal(jint(j, "summary.inserted"), 300);
    json_decref(j);
    assert_int_equal(queued_jobs(f), 1 + 3);
    assert_int_equal(count(f, "SELECT count(*) FROM master_contact"), 301);
}

// A fake server that answers the first n503 requests with 503 (draining),
// breaks the connection after taking each of the next ndrop (as a server
// that dies after queueing the job would), then answers every request with
// job FAKE_JOB. It records the idempotency key of each request. When the
// last of its nserve requests is one it drops, the server is gone: it
// closes its socket then (not after a reply, which the close could lose).
#define FAKE_JOB "0190a0b0-c0d0-7e0f-8000-000000000001"

struct reset_server {
    nng_socket sock;
    pthread_t  thread;
    int        n503;
    int        ndrop;
    int        nserve; // requests to take before the thread ends
    int        served;
    char       keys[8][128];
};

// Replies to msg (a request just received) with 503 UNAVAILABLE.
static void
reset_reply_503(struct reset_server *rs, nng_msg *msg)
{
    Bulkupsert__V1__Status      wst = BULKUPSERT__V1__STATUS__INIT;
    Bulkupsert__V1__RpcResponse resp = BULKUPSERT__V1__RPC_RESPONSE__INIT;
    uint8_t                     buf[256];

    wst.has_code = 1;
    wst.code = BULKUPSERT__V1__CODE__UNAVAILABLE;
    wst.has_http_status = 1;
    wst.http_status = 503;
    wst.message = "shutting down";
    resp.status = &wst;
    size_t n = protobuf_c_message_pack(&resp.base, buf);
    nng_msg_clear(msg);
    nng_msg_append(msg, buf, n);
    if (nng_sendmsg(rs->sock, msg, 0) != 0) {
        nng_msg_free(msg);
    }
}

// Replies to msg (a request just received) with 202 and job FAKE_JOB.
static void
reset_reply(struct reset_server *rs, nng_msg *msg)
{
    Bulkupsert__V1__SubmitBulkUpsertResponse out
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_RESPONSE__INIT;
    Bulkupsert__V1__Status      wst = BULKUPSERT__V1__STATUS__INIT;
    Bulkupsert__V1__RpcResponse resp = BULKUPSERT__V1__RPC_RESPONSE__INIT;
    uint8_t                     payload[256];
    uint8_t                     buf[512];

    out.job_id = FAKE_JOB;
    out.total = 1;
    wst.has_code = 1;
    wst.has_http_status = 1;
    wst.http_status = 202;
    wst.message = "accepted";
    resp.status = &wst;
    resp.has_payload = 1;
    resp.payload.len = protobuf_c_message_pack(&out.base, payload);
    resp.payload.data = payload;
    size_t n = protobuf_c_message_pack(&resp.base, buf);
    nng_msg_clear(msg);
    nng_msg_append(msg, buf, n);
    if (nng_sendmsg(rs->sock, msg, 0) != 0) {
        nng_msg_free(msg);
    }
}

static void *
reset_main(void *arg)
{
    struct reset_server *rs = arg;
    nng_msg             *msg;

    for (; rs->served < rs->nserve; rs->served++) {
        if (nng_recvmsg(rs->sock, &msg, 0) != 0) {
            break;
        }
        Bulkupsert__V1__RpcRequest *env = bulkupsert__v1__rpc_request__unpack(
            NULL, nng_msg_len(msg), nng_msg_body(msg));
        Bulkupsert__V1__SubmitBulkUpsertRequest *req = env == NULL
            ? NULL
            : bulkupsert__v1__submit_bulk_upsert_request__unpack(
                  NULL, env->payload.len, env->payload.data);
        if (req != NULL && req->idempotency_key != NULL && rs->served < 8) {
            snprintf(rs->keys[rs->served], sizeof(rs->keys[0]), "%s",
                req->idempotency_key);
        }
        bulkupsert__v1__submit_bulk_upsert_request__free_unpacked(req, NULL);
        bulkupsert__v1__rpc_request__free_unpacked(env, NULL);
        if (rs->served < rs->n503) {
            reset_reply_503(rs, msg);
        } else if (rs->served < rs->n503 + rs->ndrop) {
            // The last one is dropped by the close below, with the socket:
            // nng 1.5.2's nng_close right after an nng_pipe_close once
            // deadlocked.
            if (rs->served + 1 < rs->nserve) {
                nng_pipe_close(nng_msg_get_pipe(msg));
            }
            nng_msg_free(msg);
        } else {
            reset_reply(rs, msg);
        }
    }
    if (rs->served == rs->nserve && rs->nserve <= rs->n503 + rs->ndrop) {
        nng_close(rs->sock);
    }
    return NULL;
}

static void
reset_start(struct reset_server *rs, const char *url, int n503, int ndrop,
    int nserve)
{
    memset(rs, 0, sizeof(*rs));
    rs->n503 = n503;
    rs->ndrop = ndrop;
    rs->nserve = nserve;
    assert_int_equal(nng_rep0_open(&rs->sock), 0);
    nng_socket_set_ms(rs->sock, NNG_OPT_RECVTIMEO, 20000);
    assert_int_equal(nng_listen(rs->sock, url, NULL, 0), 0);
    assert_int_equal(pthread_create(&rs->thread, NULL, reset_main, rs), 0);
}

// Waits for the server's thread and closes its socket (a second close,
// when the server is gone, is harmless).
static void
reset_stop(struct reset_server *rs)
{
    assert_int_equal(pthread_join(rs->thread, NULL), 0);
    nng_close(rs->sock);
}

// A connection that breaks after the server took the request ("the
// request may have been applied") is sent again with the same idempotency
// key, as a late answer is; when the resends run out, the request is said
// to have got no answer, not to have been refused.
static void
test_import_resends_after_reset(void **state)
{
    struct fixture     *f = *state;
    const char         *path = write_file(&f->h, "rst.csv", "contact_key\nr1\n");
    char                url[400];
    struct reset_server rs;

    snprintf(url, sizeof(url), "ipc://%s/reset.sock", f->h.dir);
    reset_start(&rs, url, 0, 1, 2);
    CLI(0, &f->h, f->tok, "--url", url, "--timeout", "5000", "import", path,
        "--progress", "none", "--json", END);
    reset_stop(&rs);
    assert_int_equal(rs.served, 2);
    assert_true(rs.keys[0][0] != '\0');
    assert_string_equal(rs.keys[0], rs.keys[1]);
    json_t *j = json_out();
    assert_int_equal(jint(j, "retries"), 1);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(j, "jobs"), 0)),
        FAKE_JOB);
    json_decref(j);

    reset_start(&rs, url, 0, 2, 2);
    CLI(1, &f->h, f->tok, "--url", url, "--timeout", "5000", "import", path,
        "--progress", "none", "--retries", "1", END);
    reset_stop(&rs);
    assert_has(harness_cli_err, "may have been applied");
    assert_has(harness_cli_err, "request 1 (records on lines 2 to 2 of ");
    assert_has(harness_cli_err, "got no answer and may have been applied");
    assert_lacks(harness_cli_err, "not accepted");

    // With --retries 0 nothing is resent, and the request is still said
    // to have got no answer.
    reset_start(&rs, url, 0, 1, 1);
    CLI(1, &f->h, f->tok, "--url", url, "--timeout", "5000", "import", path,
        "--progress", "none", "--retries", "0", END);
    reset_stop(&rs);
    assert_int_equal(rs.served, 1);
    assert_has(harness_cli_err, "got no answer and may have been applied");
    assert_lacks(harness_cli_err, "not accepted");

    // Two 503s use up the client's --retries 2; the connection then breaks
    // after the third attempt was taken, which may have been applied: the
    // import resends it, whatever the count of attempts.
    reset_start(&rs, url, 2, 1, 4);
    CLI(0, &f->h, f->tok, "--url", url, "--timeout", "5000", "import", path,
        "--progress", "none", "--retries", "2", "--json", END);
    reset_stop(&rs);
    assert_int_equal(rs.served, 4);
    for (int i = 1; i < 4; i++) {
        assert_string_equal(rs.keys[0], rs.keys[i]);
    }
    j = json_out();
    assert_int_equal(jint(j, "retries"), 3);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(j, "jobs"), 0)),
        FAKE_JOB);
    json_decref(j);
}

// The server takes request 1, breaks the connection and is gone: the
// resend finds no server and is never sent. The import must still say
// that request 1 may have been applied (not "was not accepted"), and how
// to send it again safely; run again with --resume, it goes with the same
// key. A signal while the resend waits says the same, not "nothing was
// applied".
static void
test_import_resend_unsent_after_reset(void **state)
{
    struct fixture     *f = *state;
    const char         *path = write_file(&f->h, "gone.csv", "contact_key\ng1\n");
    char                url[400];
    char                st[400];
    char                key[128];
    struct reset_server rs;

    snprintf(url, sizeof(url), "ipc://%s/gone.sock", f->h.dir);
    snprintf(st, sizeof(st), "%s", path_in(&f->h, "gone.state"));
    reset_start(&rs, url, 0, 1, 1);
    CLI(1, &f->h, f->tok, "--url", url, "--timeout", "300", "import", path,
        "--progress", "none", "--retries", "2", "--resume", st, END);
    reset_stop(&rs);
    assert_int_equal(rs.served, 1);
    snprintf(key, sizeof(key), "%s", rs.keys[0]);
    assert_has(harness_cli_err, "request 1 (records on lines 2 to 2 of ");
    assert_has(harness_cli_err, "got no answer and may have been applied");
    assert_has(harness_cli_err, "an earlier copy of request 1 was sent");
    assert_has(harness_cli_err, "run the same command again");
    assert_has(harness_cli_err, key);
    assert_lacks(harness_cli_err, "not accepted");

    reset_start(&rs, url, 0, 0, 1);
    CLI(0, &f->h, f->tok, "--url", url, "--timeout", "5000", "import", path,
        "--progress", "none", "--resume", st, END);
    reset_stop(&rs);
    assert_int_equal(rs.served, 1);
    assert_string_equal(rs.keys[0], key);

    // The same, stopped by SIGINT while the resend waits for a server.
    snprintf(st, sizeof(st), "%s", path_in(&f->h, "gone2.state"));
    const char *const args[] = { "--url", url, "--timeout", "300", "import",
        path, "--progress", "none", "--retries", "30", "--resume", st, NULL };
    reset_start(&rs, url, 0, 1, 1);
    int out = open(path_in(&f->h, "gone.out"), O_WRONLY | O_CREAT, 0600);
    int null = open("/dev/null", O_RDONLY);
    assert_true(out >= 0 && null >= 0);
    pid_t pid = spawn_cli(f, args, null, out, out);
    reset_stop(&rs); // request 1 taken, the server gone
    harness_sleep_ms(700);
    assert_int_equal(kill(pid, SIGINT), 0);
    assert_int_equal(wait_cli(pid), 130);
    close(out);
    close(null);
    char *text = read_file(path_in(&f->h, "gone.out"));
    assert_non_null(text);
    assert_has(text, "got no answer and may have been applied");
    assert_has(text, "its resend was stopped before it got through");
    assert_lacks(text, "nothing was applied");
    assert_has(text, "interrupted after 0 requests; run the same command");
    free(text);
}

// Ctrl-C while a request waits to be sent again after a 429 stops the
// import within about a second (the wait is not sat out) with exit 130,
// and the request is abandoned: it is not queued after the signal. The
// state lets the import continue.
static void
test_import_sigint_during_retry(void **state)
{
    struct fixture *f = *state;
    const char     *one = write_file(&f->h, "si1.csv", "contact_key\nfirst\n");
    CLI(0, &f->h, f->tok, "import", one, "--wait", END);

    const char *path = write_file(&f->h, "si.csv", "contact_key\ns1\ns2\n");
    char        st[400];
    snprintf(st, sizeof(st), "%s", path_in(&f->h, "si.state"));
    const char *const args[] = { "import", path, "--batch", "1", "--retries",
        "30", "--progress", "none", "--resume", st, NULL };
    sqlite3    *db = harness_lock_db(&f->h, "tenants/acme.db");

    int out = open(path_in(&f->h, "si.out"), O_WRONLY | O_CREAT, 0600);
    int null = open("/dev/null", O_RDONLY);
    assert_true(out >= 0 && null >= 0);
    pid_t pid = spawn_cli(f, args, null, out, out);
    // Request 1 is queued and cannot finish; request 2 is refused (429)
    // and waits to be sent again.
    wait_jobs(f, 2);
    harness_sleep_ms(1500);
    assert_int_equal(kill(pid, SIGINT), 0);
    int status = -1;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            break;
        }
        status = -1;
        harness_sleep_ms(10);
    }
    long long queued = queued_jobs(f);
    harness_unlock_db(db);
    if (status == -1) {
        // Not stopped within 10 s: let it finish, then fail.
        wait_cli(pid);
        fail_msg("import did not stop within 10 s of SIGINT");
    }
    close(out);
    close(null);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
    assert_int_equal(queued, 2);
    char *text = read_file(path_in(&f->h, "si.out"));
    assert_non_null(text);
    assert_has(text, "CANCELLED");
    assert_has(text, "nothing was applied");
    assert_has(text, "interrupted after 1 request;");
    free(text);

    // Resumed, request 2 goes.
    CLI(0, &f->h, f->tok, "import", path, "--batch", "1", "--retries", "30",
        "--progress", "none", "--resume", st, "--wait", END);
    assert_has(harness_cli_out, "(1 answered in an earlier run)");
    assert_int_equal(queued_jobs(f), 3);
}

static void
test_submit_json(void **state)
{
    struct fixture *f = *state;
    const char     *path = write_file(&f->h, "s.csv",
            "contact_key,name\n"
                "s1,A\n"
                "s2,\"B\nb\"\n"
                "s3,C\n");

    CLI(0, &f->h, f->tok, "submit", path, "--batch", "2", "--json", END);
    // One JSON object a line, one per request.
    char *nl = strchr(harness_cli_out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    json_t *j = json_out();
    assert_int_equal(jint(j, "request"), 1);
    assert_int_equal(jint(j, "records"), 2);
    assert_int_equal(jint(j, "first_line"), 2);
    assert_int_equal(jint(j, "last_line"), 3);
    assert_int_equal(
        strlen(json_string_value(json_object_get(j, "job_id"))), 36);
    assert_true(json_is_false(json_object_get(j, "duplicate")));
    json_decref(j);
    memmove(harness_cli_out, nl + 1, strlen(nl + 1) + 1);
    j = json_out();
    assert_int_equal(jint(j, "request"), 2);
    assert_int_equal(jint(j, "first_line"), 5);
    json_decref(j);
    assert_int_equal(queued_jobs(f), 2);

    // A key that K-N could push past the server's 128 characters.
    char key[102];
    memset(key, 'k', 101);
    key[101] = '\0';
    CLI(2, &f->h, f->tok, "submit", path, "--idempotency-key", key, END);
    assert_has(harness_cli_err, "--idempotency-key is 101 bytes long; at most 100");
    key[100] = '\0';
    CLI(0, &f->h, f->tok, "submit", path, "--batch", "2", "--idempotency-key",
        key, END);
    assert_int_equal(queued_jobs(f), 4);

    CLI(0, &f->h, f->tok, "import", "--help", END);
    assert_has(harness_cli_out, "--resume STATE");
    assert_has(harness_cli_out, "Exit codes:");
    assert_has(harness_cli_out, "N is 0 to 100 (default 10)");
    CLI(0, &f->h, f->tok, "submit", "--help", END);
    assert_has(harness_cli_out, "N is 0 to 100 (default 3)");
    CLI(0, &f->h, f->tok, "token", "issue", "--help", END);
    assert_has(harness_cli_out, "--perms is the same option");
    CLI(0, &f->h, f->tok, "--help", END);
    assert_has(harness_cli_out, "import FILE");
    assert_has(harness_cli_out, "  3  import");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_import_csv_wait_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_ndjson, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_progress_lines_on_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_errors_file, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_retries_busy, setup_tight, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_resends_late_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_resends_after_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_resend_unsent_after_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_sigint_during_retry, setup_tight, teardown),
        cmocka_unit_test_setup_teardown(test_submit_json, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_resume_keeps_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_line_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_unclosed_quote, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_value_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_request_too_big,
            setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_closed_pipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_sighup, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_bar_width, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_checks_first, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_non_utf8_name, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
