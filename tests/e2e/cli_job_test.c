// SPDX-License-Identifier: MIT
/*
 * rpc-cli job list and job watch end to end: the real binary against the
 * real daemon. list: an empty tenant, newest-first order, --limit with the
 * continuation token and --page-token, small pages, the --state and
 * --since/--until filters and their usage errors, --json (each job as
 * `job get --json` renders it), and tenant isolation. watch: a finished
 * job (summary and exit code, text and JSON), an unknown job, a job that
 * becomes final while watched (plain lines into a pipe, one line redrawn
 * in place on a pseudo-terminal), and a job that waits out a lock past the
 * busy timeout (import --wait and watch say why).
 *
 * Nothing depends on timing: a job is kept RUNNING (and the next QUEUED)
 * by holding its tenant database's write lock, as cli_test.c does, and the
 * test reads the watcher's output until the line it waits for arrives
 * before it lets the job go. Each test has its own daemon with one worker.
 */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700 // posix_openpt, grantpt, unlockpt, ptsname
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <jansson.h>
#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ALLP (BU_PERM_READ | BU_PERM_MANAGE)

// A job id that no job has.
#define NO_SUCH_JOB "01234567-89ab-7def-8123-456789abcdef"

struct fixture {
    struct harness     h;
    char              *tok;     // DataSpace.Manage + DataSpace.Read, "acme"
    char              *other;   // the same for tenant "other"
    bulkupsert_client *acme;    // a client with tok
    int                nkeys;   // contact keys used so far
    sqlite3           *lock;    // see lock_tenant; released by teardown
    pid_t              kids[2]; // see child_start; killed by teardown
};

static int
setup(void **state)
{
    static const char *const args[] = { "--workers", "1", NULL };
    struct fixture          *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    harness_start(&f->h, args);
    f->tok = harness_token(&f->h, "acme", ALLP, 3600);
    f->other = harness_token(&f->h, "other", ALLP, 3600);
    f->acme = harness_client(&f->h, f->tok);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    // After a failed assertion: let the worker go and stop the watchers.
    if (f->lock != NULL) {
        sqlite3_exec(f->lock, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(f->lock);
    }
    for (size_t i = 0; i < sizeof(f->kids) / sizeof(f->kids[0]); i++) {
        if (f->kids[i] > 0) {
            kill(f->kids[i], SIGKILL);
            waitpid(f->kids[i], NULL, 0);
        }
    }
    bulkupsert_client_close(f->acme);
    int status = harness_stop(&f->h);
    free(f->other);
    free(f->tok);
    free(f);
    return status == 0 ? 0 : -1;
}

// ---------------------------------------------------------------------------
// Running rpc-cli to completion

// count_of counts the (non-overlapping) occurrences of needle in hay.
static size_t
count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(hay, needle); p != NULL;
         p = strstr(p + len, needle)) {
        n++;
    }
    return n;
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

// expect_rows fails unless harness_cli_out is a `job list` table whose rows are
// exactly the n ids in want, in that order.
static void
expect_rows(int line, char *const *want, size_t n)
{
    const char *p = harness_cli_out;

    if (strncmp(p, "JOB_ID ", 7) != 0) {
        fail_msg("line %d: no header:\n%s", line, harness_cli_out);
    }
    p = strchr(p, '\n') + 1;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(want[i]);
        if (strncmp(p, want[i], len) != 0 || p[len] != ' ') {
            fail_msg(
                "line %d: row %zu is not %s:\n%s", line, i, want[i], harness_cli_out);
        }
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    if (*p != '\0') {
        fail_msg("line %d: more than %zu rows:\n%s", line, n, harness_cli_out);
    }
}

#define EXPECT_ROWS(want, n) expect_rows(__LINE__, (want), (n))

// page_token_of returns the token that `job list` printed on stderr to
// continue with (static storage), or NULL when it printed none.
static const char *
page_token_of(void)
{
    static char tok[64];
    const char *p = strstr(harness_cli_err, "--page-token ");
    if (p == NULL) {
        return NULL;
    }
    p += strlen("--page-token ");
    size_t len = strcspn(p, " \n");
    assert_true(len > 0 && len < sizeof(tok));
    memcpy(tok, p, len);
    tok[len] = '\0';
    return tok;
}

// ---------------------------------------------------------------------------
// Jobs

// submit_job submits one record for a new contact key through client;
// with_error gives it a malformed email (with fail_on_error off, so that
// the job ends COMPLETED_WITH_ERRORS). Returns the job id (free it).
static char *
submit_job(struct fixture *f, bulkupsert_client *client, int with_error)
{
    static const char *const cols[] = { "contact_key", "email" };
    struct req_builder       b;
    char                     key[32];

    snprintf(key, sizeof(key), "k%d", f->nkeys++);
    const char *row[] = { key, with_error ? "not-an-email" : "a@b.example" };
    req_init(&b, cols, 2);
    req_row(&b, row);
    b.req.has_fail_on_error = 1;
    b.req.fail_on_error = 0;
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    struct bulkupsert_status                  st = { 0 };
    if (bulkupsert_submit(client, &b.req, &resp, &st) != BULKUPSERT_OK) {
        fail_msg("submit: %s", st.message);
    }
    char *id = strdup(resp->job_id);
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(resp, NULL);
    bulkupsert_status_clear(&st);
    req_fini(&b);
    return id;
}

// finish waits until job id is final; returns its state, and its
// accepted_at_ms in *acceptedp when not NULL.
static int
finish(bulkupsert_client *client, const char *id, int64_t *acceptedp)
{
    Bulkupsert__V1__Job *job = harness_wait_job(client, id);
    int                  state = job->state;
    if (acceptedp != NULL) {
        *acceptedp = job->accepted_at_ms;
    }
    bulkupsert__v1__job__free_unpacked(job, NULL);
    return state;
}

// submit_done submits (see submit_job) and waits until the job is final.
static char *
submit_done(struct fixture *f, int with_error, int64_t *acceptedp)
{
    char *id = submit_job(f, f->acme, with_error);
    finish(f->acme, id, acceptedp);
    return id;
}

static void
free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
}

// lock_tenant takes the write lock of acme's database (it must exist), so
// that a job of acme stays RUNNING and later ones QUEUED. Release with
// unlock_tenant.
static void
lock_tenant(struct fixture *f)
{
    assert_null(f->lock);
    f->lock = harness_lock_db(&f->h, "tenants/acme.db");
}

static void
unlock_tenant(struct fixture *f)
{
    sqlite3 *db = f->lock;

    f->lock = NULL;
    harness_unlock_db(db);
}

// wait_state polls GetJob until job id is in state.
static void
wait_state(struct fixture *f, const char *id, int state)
{
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;

    gr.job_id = (char *) id;
    for (int i = 0; i < 3000 * harness_slow(); i++) {
        Bulkupsert__V1__Job     *job = NULL;
        struct bulkupsert_status st = { 0 };
        assert_int_equal(bulkupsert_get_job(f->acme, &gr, &job, &st), 0);
        bulkupsert_status_clear(&st);
        int now = job->state;
        bulkupsert__v1__job__free_unpacked(job, NULL);
        if (now == state) {
            return;
        }
        harness_sleep_ms(10);
    }
    fail_msg("job %s never reached state %d", id, state);
}

// ---------------------------------------------------------------------------
// Running rpc-cli in the background, reading as it writes

struct child {
    pid_t  pid;
    pid_t *slot; // the fixture's record of pid, cleared when reaped
    int    fd;   // its stdout: a pipe, or the master side of a pty
    char   out[1 << 16];
    size_t nout;
};

// child_start runs rpc-cli with args (NULL-terminated) and acme's token,
// its stdout a pipe, or with pty a pseudo-terminal of cols columns (and
// TERM=xterm, NO_COLOR unset). Its stderr goes to DIR/child.err.
static void
child_start(struct fixture *f, struct child *c, int pty, int cols,
    const char *const *args)
{
    char errpath[320];
    int  p[2] = { -1, -1 };
    int  master = -1;

    memset(c, 0, sizeof(*c));
    snprintf(errpath, sizeof(errpath), "%s/child.err", f->h.dir);
    if (pty) {
        master = posix_openpt(O_RDWR | O_NOCTTY);
        assert_true(master >= 0);
        assert_int_equal(grantpt(master), 0);
        assert_int_equal(unlockpt(master), 0);
        struct winsize ws = { .ws_row = 24, .ws_col = (unsigned short) cols };
        assert_int_equal(ioctl(master, TIOCSWINSZ, &ws), 0);
    } else {
        assert_int_equal(pipe(p), 0);
    }
    const char *slave = pty ? ptsname(master) : NULL;
    assert_true(!pty || slave != NULL);
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
        if (pty) {
            setsid(); // the slave becomes the controlling terminal
            int s = open(slave, O_RDWR);
            if (s < 0) {
                _exit(126);
            }
            dup2(s, 1);
            close(s);
            close(master);
            setenv("TERM", "xterm", 1);
            unsetenv("NO_COLOR");
        } else {
            dup2(p[1], 1);
            close(p[0]);
            close(p[1]);
        }
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        setenv("BULKUPSERT_URL", f->h.url, 1);
        setenv("BULKUPSERT_TOKEN", f->tok, 1);
        execv(argv[0], (char *const *) argv);
        _exit(127);
    }
    c->pid = pid;
    for (size_t i = 0; i < sizeof(f->kids) / sizeof(f->kids[0]); i++) {
        if (f->kids[i] == 0) {
            f->kids[i] = pid;
            c->slot = &f->kids[i];
            break;
        }
    }
    if (pty) {
        c->fd = master;
    } else {
        close(p[1]);
        c->fd = p[0];
    }
}

// child_read reads what the child wrote, waiting at most until deadline
// (monotonic ms). Returns 0 after reading, -1 at end of output (a pty's
// master reads EIO once the child is gone) or at the deadline.
static int
child_read(struct child *c, int64_t deadline)
{
    int64_t left = deadline - harness_mono_ms();
    if (left <= 0) {
        return -1;
    }
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    int           rv = poll(&pfd, 1, (int) (left < 1000 ? left : 1000));
    if (rv <= 0) {
        return rv < 0 && errno != EINTR ? -1 : 0;
    }
    ssize_t r = read(c->fd, c->out + c->nout, sizeof(c->out) - 1 - c->nout);
    if (r < 0 && errno == EINTR) {
        return 0;
    }
    if (r <= 0) {
        return -1;
    }
    c->nout += (size_t) r;
    c->out[c->nout] = '\0';
    return 0;
}

// child_wait_for reads until needle has been written (a generous deadline
// only guards against a hang; no timing is asserted).
static void
child_wait_for(struct child *c, const char *needle)
{
    int64_t deadline = harness_mono_ms() + 30000 * harness_slow();
    while (strstr(c->out, needle) == NULL) {
        if (child_read(c, deadline) != 0) {
            fail_msg(
                "rpc-cli never wrote \"%s\"; it wrote:\n%s", needle, c->out);
        }
    }
}

// child_finish reads everything the child writes and reaps it; returns
// its exit status.
static int
child_finish(struct child *c)
{
    int64_t deadline = harness_mono_ms() + 30000 * harness_slow();
    while (child_read(c, deadline) == 0) { }
    if (harness_mono_ms() >= deadline) {
        kill(c->pid, SIGKILL);
    }
    close(c->fd);
    int status;
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    if (c->slot != NULL) {
        *c->slot = 0;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---------------------------------------------------------------------------
// job list

static void
test_list_empty_tenant(void **state)
{
    struct fixture *f = *state;

    CLI(0, &f->h, f->tok, "job", "list");
    EXPECT_ROWS(NULL, 0);
    assert_has(harness_cli_out, "STATE");
    assert_has(harness_cli_out, "ACCEPTED");
    assert_string_equal(harness_cli_err, "");
    assert_lacks(harness_cli_out, "\033["); // no colours into a pipe

    CLI(0, &f->h, f->tok, "job", "list", "--json", "--all");
    json_t *j = json_parse_out();
    assert_true(json_is_array(json_object_get(j, "jobs")));
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 0);
    assert_true(json_is_null(json_object_get(j, "next_page_token")));
    json_decref(j);
    assert_string_equal(harness_cli_err, "");
}

static void
test_list_newest_first_and_pages(void **state)
{
    struct fixture *f = *state;
    char           *ids[5];
    char           *newest[5];

    for (int i = 0; i < 5; i++) {
        ids[i] = submit_done(f, 0, NULL);
        newest[4 - i] = ids[i];
    }

    CLI(0, &f->h, f->tok, "job", "list");
    EXPECT_ROWS(newest, 5);
    assert_int_equal(count_of(harness_cli_out, "  COMPLETED "), 5);
    assert_string_equal(harness_cli_err, "");

    // --limit stops early and says how to go on; the token continues
    // exactly after the last job printed.
    CLI(0, &f->h, f->tok, "job", "list", "--limit", "2");
    EXPECT_ROWS(newest, 2);
    const char *tok = page_token_of();
    assert_non_null(tok);
    char tok1[64];
    snprintf(tok1, sizeof(tok1), "%s", tok);
    CLI(0, &f->h, f->tok, "job", "list", "--limit", "2", "--page-token", tok1);
    EXPECT_ROWS(newest + 2, 2);
    assert_non_null(tok = page_token_of());
    char tok2[64];
    snprintf(tok2, sizeof(tok2), "%s", tok);
    CLI(0, &f->h, f->tok, "job", "list", "--limit", "2", "--page-token", tok2);
    EXPECT_ROWS(newest + 4, 1);
    assert_null(page_token_of());
    assert_string_equal(harness_cli_err, "");

    // A limit that ends on the last job: nothing more to continue with.
    CLI(0, &f->h, f->tok, "job", "list", "--limit", "5");
    EXPECT_ROWS(newest, 5);
    assert_string_equal(harness_cli_err, "");

    // Small pages are followed; the output does not change.
    CLI(0, &f->h, f->tok, "job", "list", "--page-size", "1", "--all");
    EXPECT_ROWS(newest, 5);
    CLI(0, &f->h, f->tok, "job", "list", "--page-size", "2", "--limit", "3");
    EXPECT_ROWS(newest, 3);
    assert_non_null(tok = page_token_of());
    snprintf(tok1, sizeof(tok1), "%s", tok);
    CLI(0, &f->h, f->tok, "job", "list", "--page-token", tok1);
    EXPECT_ROWS(newest + 3, 2);

    // JSON: one document, the same count, and the token when more remain.
    CLI(0, &f->h, f->tok, "job", "list", "--json");
    assert_int_equal(count_of(harness_cli_out, "\"job_id\""), 5);
    json_t *j = json_parse_out();
    json_t *jobs = json_object_get(j, "jobs");
    assert_int_equal(json_array_size(jobs), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(jobs, i), "job_id")),
            newest[i]);
    }
    assert_true(json_is_null(json_object_get(j, "next_page_token")));
    json_t *first = json_incref(json_array_get(jobs, 0));
    json_decref(j);

    // Each job is rendered as `job get --json` renders it.
    CLI(0, &f->h, f->tok, "job", "get", newest[0], "--json");
    j = json_parse_out();
    if (!json_equal(j, first)) {
        char *a = json_dumps(first, JSON_PRESERVE_ORDER);
        fail_msg(
            "job list --json has\n%s\njob get --json has\n%s", a, harness_cli_out);
    }
    json_decref(j);
    json_decref(first);

    CLI(0, &f->h, f->tok, "job", "list", "--json", "--limit", "2");
    j = json_parse_out();
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 2);
    const char *next
        = json_string_value(json_object_get(j, "next_page_token"));
    assert_non_null(next);
    snprintf(tok1, sizeof(tok1), "%s", next);
    json_decref(j);
    assert_string_equal(harness_cli_err, ""); // JSON carries the token
    CLI(0, &f->h, f->tok, "job", "list", "--json", "--page-token", tok1);
    j = json_parse_out();
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 3);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(j, "jobs"), 0), "job_id")),
        newest[2]);
    json_decref(j);

    // Bad numbers are usage errors; a bad token is the server's 400.
    CLI(2, &f->h, f->tok, "job", "list", "--limit", "0");
    assert_has(harness_cli_err, "--limit '0'");
    CLI(2, &f->h, f->tok, "job", "list", "--page-size", "1001");
    assert_has(harness_cli_err, "--page-size '1001'");
    CLI(2, &f->h, f->tok, "job", "list", "--all", "--limit", "3");
    assert_has(harness_cli_err, "--all and --limit");
    CLI(2, &f->h, f->tok, "job", "list", "extra");
    assert_has(harness_cli_err, "unexpected argument 'extra'");
    CLI(1, &f->h, f->tok, "job", "list", "--page-token", "abc");
    assert_has(harness_cli_err, "INVALID_ARGUMENT (http 400)");
    assert_has(harness_cli_err, "page_token");
    assert_string_equal(harness_cli_out, "");
    free_ids(ids, 5);
}

static void
test_list_state_filter(void **state)
{
    struct fixture *f = *state;
    char           *ok[2];
    char           *bad[2];

    ok[0] = submit_done(f, 0, NULL);
    bad[0] = submit_done(f, 1, NULL);
    ok[1] = submit_done(f, 0, NULL);
    bad[1] = submit_done(f, 1, NULL);
    // A cancelled job: queued behind one held RUNNING.
    lock_tenant(f);
    char *held = submit_job(f, f->acme, 0);
    wait_state(f, held, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    char *cancelled = submit_job(f, f->acme, 0);
    CLI(0, &f->h, f->tok, "job", "cancel", cancelled);

    // While the lock is held: RUNNING and nothing QUEUED.
    CLI(0, &f->h, f->tok, "job", "list", "--state", "running");
    EXPECT_ROWS(&held, 1);
    CLI(0, &f->h, f->tok, "job", "list", "--state", "queued");
    EXPECT_ROWS(NULL, 0);
    unlock_tenant(f);
    finish(f->acme, held, NULL);

    char *want_ok[] = { held, ok[1], ok[0] };
    CLI(0, &f->h, f->tok, "job", "list", "--state", "completed");
    EXPECT_ROWS(want_ok, 3);
    CLI(0, &f->h, f->tok, "job", "list", "--state", "COMPLETED");
    EXPECT_ROWS(want_ok, 3);
    char *want_bad[] = { cancelled, bad[1], bad[0] };
    CLI(0, &f->h, f->tok, "job", "list", "--state",
        "Completed_With_Errors,cancelled");
    EXPECT_ROWS(want_bad, 3);
    CLI(0, &f->h, f->tok, "job", "list", "--state", "cancelled", "--state",
        "completed_with_errors", "--json");
    json_t *j = json_parse_out();
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 3);
    json_decref(j);
    CLI(0, &f->h, f->tok, "job", "list", "--state", "failed,queued");
    EXPECT_ROWS(NULL, 0);

    // Anything else is a usage error naming the value.
    CLI(2, &f->h, f->tok, "job", "list", "--state", "done");
    assert_has(harness_cli_err, "--state 'done' is not a job state");
    assert_string_equal(harness_cli_out, "");
    CLI(2, &f->h, f->tok, "job", "list", "--state", "completed,finished");
    assert_has(harness_cli_err, "'finished'");
    CLI(2, &f->h, f->tok, "job", "list", "--state", "completed,,failed");
    assert_has(harness_cli_err, "--state ''");
    CLI(2, &f->h, f->tok, "job", "list", "--state", "unspecified");
    assert_has(harness_cli_err, "'unspecified'");
    CLI(2, &f->h, f->tok, "job", "list", "--state", "job_state_queued");
    assert_has(harness_cli_err, "'job_state_queued'");
    CLI(2, &f->h, f->tok, "job", "list", "--state");
    assert_has(harness_cli_err, "needs a value");

    free(cancelled);
    free(held);
    free_ids(ok, 2);
    free_ids(bad, 2);
}

static void
test_list_time_filter(void **state)
{
    struct fixture *f = *state;
    char           *ids[4];
    char           *newest[4];
    int64_t         acc[4];
    char            cut[40];

    for (int i = 0; i < 4; i++) {
        ids[i] = submit_done(f, 0, &acc[i]);
        newest[3 - i] = ids[i];
    }

    CLI(0, &f->h, f->tok, "job", "list", "--since", "1h");
    EXPECT_ROWS(newest, 4);
    CLI(0, &f->h, f->tok, "job", "list", "--since", "2d", "--until",
        "2099-01-01T00:00:00Z");
    EXPECT_ROWS(newest, 4);
    CLI(0, &f->h, f->tok, "job", "list", "--since", "2099-01-01T00:00:00Z");
    EXPECT_ROWS(NULL, 0);
    CLI(0, &f->h, f->tok, "job", "list", "--until", "1h");
    EXPECT_ROWS(NULL, 0);
    CLI(0, &f->h, f->tok, "job", "list", "--since", "36500d");
    EXPECT_ROWS(newest, 4);
    CLI(0, &f->h, f->tok, "job", "list", "--until", "36500d");
    EXPECT_ROWS(NULL, 0);

    // An exact cut at job 2's acceptance, in the millisecond form `job get`
    // prints: --since keeps it, --until drops it.
    CLI(0, &f->h, f->tok, "job", "get", ids[2], "--json");
    json_t *j = json_parse_out();
    snprintf(cut, sizeof(cut), "%s",
        json_string_value(json_object_get(j, "accepted_at")));
    json_decref(j);
    size_t at_or_after = 0;
    for (int i = 0; i < 4; i++) {
        at_or_after += acc[i] >= acc[2];
    }
    CLI(0, &f->h, f->tok, "job", "list", "--since", cut);
    EXPECT_ROWS(newest, at_or_after);
    CLI(0, &f->h, f->tok, "job", "list", "--until", cut);
    EXPECT_ROWS(newest + at_or_after, 4 - at_or_after);
    assert_true(at_or_after >= 2);

    // Anything else is a usage error naming the value.
    static const char *const bad[] = {
        "yesterday",
        "5x",
        "h",
        "-1h",
        "1.5h",
        "2026-13-01T00:00:00Z",
        "2026-11-27 06:00:00Z",
        "2026-11-27",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "--since '%s' is not", bad[i]);
        CLI(2, &f->h, f->tok, "job", "list", "--since", bad[i]);
        assert_has(harness_cli_err, want);
        assert_string_equal(harness_cli_out, "");
    }
    CLI(2, &f->h, f->tok, "job", "list", "--until", "tomorrow");
    assert_has(harness_cli_err, "--until 'tomorrow' is not");
    CLI(2, &f->h, f->tok, "job", "list", "--since", "1h", "--until", "2h");
    assert_has(harness_cli_err, "--since is later than --until");
    free_ids(ids, 4);
}

static void
test_list_other_tenant_never_appears(void **state)
{
    struct fixture    *f = *state;
    bulkupsert_client *oc = harness_client(&f->h, f->other);
    char              *mine[2];
    char              *theirs[3];

    mine[0] = submit_done(f, 0, NULL);
    for (int i = 0; i < 3; i++) {
        theirs[i] = submit_job(f, oc, i == 1);
        finish(oc, theirs[i], NULL);
    }
    mine[1] = submit_done(f, 0, NULL);

    char *want_mine[] = { mine[1], mine[0] };
    CLI(0, &f->h, f->tok, "job", "list", "--all");
    EXPECT_ROWS(want_mine, 2);
    char *want_theirs[] = { theirs[2], theirs[1], theirs[0] };
    CLI(0, &f->h, f->other, "job", "list", "--all");
    EXPECT_ROWS(want_theirs, 3);
    CLI(0, &f->h, f->other, "job", "list", "--json");
    assert_int_equal(count_of(harness_cli_out, "\"job_id\""), 3);
    assert_lacks(harness_cli_out, mine[0]);
    assert_lacks(harness_cli_out, mine[1]);

    // Another tenant's job cannot be watched either.
    CLI(1, &f->h, f->tok, "job", "watch", theirs[0]);
    assert_has(harness_cli_err, "NOT_FOUND (http 404)");

    // Reading needs DataSpace.Read; no token is a usage error.
    char *wo = harness_token(&f->h, "acme", BU_PERM_MANAGE, 3600);
    CLI(1, &f->h, wo, "job", "list");
    assert_has(harness_cli_err, "PERMISSION_DENIED (http 403)");
    assert_string_equal(harness_cli_out, "");
    free(wo);
    char *ro = harness_token(&f->h, "acme", BU_PERM_READ, 3600);
    CLI(0, &f->h, ro, "job", "list");
    EXPECT_ROWS(want_mine, 2);
    free(ro);
    CLI(2, &f->h, NULL, "job", "list");
    assert_has(harness_cli_err, "no access token");

    bulkupsert_client_close(oc);
    free_ids(mine, 2);
    free_ids(theirs, 3);
}

// ---------------------------------------------------------------------------
// job watch

static void
test_watch_finished_job(void **state)
{
    struct fixture *f = *state;
    char            want[80];

    char *ok = submit_done(f, 0, NULL);
    CLI(0, &f->h, f->tok, "job", "watch", ok);
    snprintf(want, sizeof(want), "job_id       %s\n", ok);
    assert_has(harness_cli_out, want);
    assert_has(harness_cli_out, "state        COMPLETED\n");
    assert_has(harness_cli_out, "counts\n  total       1\n  inserted    1\n");
    assert_int_equal(strncmp(harness_cli_out, "job_id ", 7), 0); // no progress line
    assert_lacks(harness_cli_out, "\r");
    assert_lacks(harness_cli_out, "\033");
    assert_string_equal(harness_cli_err, "");

    // --json: the final job, exactly as `job get --json` renders it.
    CLI(0, &f->h, f->tok, "job", "watch", ok, "--json");
    json_t *w = json_parse_out();
    CLI(0, &f->h, f->tok, "job", "get", ok, "--json");
    json_t *g = json_parse_out();
    assert_true(json_equal(w, g));
    json_decref(g);
    json_decref(w);

    // Finished, but not cleanly: exit 3, with the summary all the same.
    char *bad = submit_done(f, 1, NULL);
    CLI(3, &f->h, f->tok, "job", "watch", bad, "--interval", "10");
    assert_has(harness_cli_out, "state        COMPLETED_WITH_ERRORS\n");
    assert_has(harness_cli_out, "  failed      1\n");
    CLI(3, &f->h, f->tok, "job", "watch", bad, "--json");
    w = json_parse_out();
    assert_string_equal(json_string_value(json_object_get(w, "state")),
        "COMPLETED_WITH_ERRORS");
    json_decref(w);

    lock_tenant(f);
    char *held = submit_job(f, f->acme, 0);
    wait_state(f, held, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    char *cancelled = submit_job(f, f->acme, 0);
    CLI(0, &f->h, f->tok, "job", "cancel", cancelled);
    CLI(3, &f->h, f->tok, "job", "watch", cancelled);
    assert_has(harness_cli_out, "state        CANCELLED\n");
    unlock_tenant(f);
    finish(f->acme, held, NULL);

    // Unknown jobs: the server's 404, exit 1, nothing on stdout.
    CLI(1, &f->h, f->tok, "job", "watch", NO_SUCH_JOB);
    assert_has(harness_cli_err, "rpc-cli: NOT_FOUND (http 404): ");
    assert_string_equal(harness_cli_out, "");
    CLI(1, &f->h, f->tok, "job", "watch", "not-a-job-id", "--json");
    assert_has(harness_cli_err, "NOT_FOUND");
    assert_string_equal(harness_cli_out, "");

    // Usage errors.
    CLI(2, &f->h, f->tok, "job", "watch");
    assert_has(harness_cli_err, "missing JOB_ID");
    CLI(2, &f->h, f->tok, "job", "watch", ok, "--interval", "5");
    assert_has(harness_cli_err, "--interval '5'");
    CLI(2, &f->h, f->tok, "job", "watch", ok, "--interval", "soon");
    assert_has(harness_cli_err, "--interval 'soon'");
    CLI(2, &f->h, f->tok, "job", "watch", ok, ok);
    assert_has(harness_cli_err, "unexpected argument");
    CLI(2, &f->h, f->tok, "job", "watch", ok, "--records");
    assert_has(harness_cli_err, "unknown option '--records'");

    free(cancelled);
    free(held);
    free(bad);
    free(ok);
}

static void
test_watch_into_pipe_follows_the_job(void **state)
{
    struct fixture *f = *state;
    struct child   *running = calloc(1, sizeof(*running));
    struct child   *queued = calloc(1, sizeof(*queued));

    free(submit_done(f, 0, NULL)); // creates the tenant's database
    lock_tenant(f);
    char *a = submit_job(f, f->acme, 0);
    wait_state(f, a, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    char *b = submit_job(f, f->acme, 1);

    const char *const wa[] = { "job", "watch", a, "--interval", "20", NULL };
    const char *const wb[] = { "job", "watch", b, "--interval", "20", NULL };
    child_start(f, running, 0, 0, wa);
    child_start(f, queued, 0, 0, wb);
    // Each watcher has printed (and flushed) its first line before the job
    // is let go.
    child_wait_for(running, "\n");
    child_wait_for(queued, "\n");
    unlock_tenant(f);

    assert_int_equal(child_finish(running), 0);
    assert_int_equal(child_finish(queued), 3);

    // One plain line per state seen, then the summary; no escapes.
    const char *out = running->out;
    assert_int_equal(strncmp(out, "RUNNING  elapsed ", 17), 0);
    assert_has(out, "  total 1  inserted 0");
    const char *sum = strstr(out, "job_id       ");
    assert_non_null(sum);
    assert_int_equal(count_of(out, "\n") - count_of(sum, "\n"), 1);
    assert_has(sum, a);
    assert_has(sum, "state        COMPLETED\n");
    assert_lacks(out, "\r");
    assert_lacks(out, "\033");

    out = queued->out;
    assert_int_equal(strncmp(out, "QUEUED  elapsed ", 16), 0);
    sum = strstr(out, "job_id       ");
    assert_non_null(sum);
    size_t plain = count_of(out, "\n") - count_of(sum, "\n");
    assert_true(plain == 1 || plain == 2); // RUNNING may be seen or not
    if (plain == 2) {
        assert_has(out, "\nRUNNING  elapsed ");
    }
    assert_has(sum, "state        COMPLETED_WITH_ERRORS\n");
    assert_lacks(out, "\r");
    assert_lacks(out, "\033");

    // --json into a pipe: only the final JSON, no progress anywhere.
    lock_tenant(f);
    char *c = submit_job(f, f->acme, 0);
    wait_state(f, c, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    const char *const wc[]
        = { "job", "watch", c, "--json", "--interval", "20", NULL };
    child_start(f, running, 0, 0, wc);
    unlock_tenant(f);
    assert_int_equal(child_finish(running), 0);
    json_error_t jerr;
    json_t      *j = json_loads(running->out, 0, &jerr);
    if (j == NULL) {
        fail_msg("not JSON: %s", running->out);
    }
    assert_string_equal(
        json_string_value(json_object_get(j, "state")), "COMPLETED");
    assert_string_equal(json_string_value(json_object_get(j, "job_id")), c);
    json_decref(j);

    free(c);
    free(b);
    free(a);
    free(queued);
    free(running);
}

// file_wait_for waits (bounded) until the file at path holds needle, and
// returns its text (static storage).
static const char *
file_wait_for(const char *path, const char *needle)
{
    static char text[1 << 16];
    int64_t     deadline = harness_mono_ms() + 30000 * harness_slow();
    for (;;) {
        text[0] = '\0';
        FILE *fp = fopen(path, "r");
        if (fp != NULL) {
            size_t n = fread(text, 1, sizeof(text) - 1, fp);
            text[n] = '\0';
            fclose(fp);
        }
        if (strstr(text, needle) != NULL) {
            return text;
        }
        if (harness_mono_ms() >= deadline) {
            fail_msg("%s never held \"%s\"; it holds:\n%s", path, needle,
                text);
        }
        harness_sleep_ms(20);
    }
}

// A job held back past SQLite's busy timeout (5 s) by a lock on its
// tenant's database: `import --wait` and `job watch` say why it waits, and
// end as usual once the lock goes.
static void
test_import_and_watch_say_why_a_job_waits(void **state)
{
    struct fixture *f = *state;
    struct child   *c = calloc(1, sizeof(*c));
    static const char why[]
        = "waiting to be applied: the tenant's database is locked by "
          "another program; the server keeps trying";
    char csv[320], errpath[320];

    assert_non_null(c);
    free(submit_done(f, 0, NULL)); // creates the tenant's database
    snprintf(csv, sizeof(csv), "%s/wait.csv", f->h.dir);
    snprintf(errpath, sizeof(errpath), "%s/child.err", f->h.dir);
    FILE *fp = fopen(csv, "w");
    assert_non_null(fp);
    fputs("contact_key,name\nw1,Waiting\n", fp);
    fclose(fp);

    lock_tenant(f);
    const char *const imp[]
        = { "import", csv, "--wait", "--progress", "none", NULL };
    child_start(f, c, 0, 0, imp);
    const char *err = file_wait_for(errpath, why);
    assert_has(err, "rpc-cli: import: job ");
    unlock_tenant(f);
    assert_int_equal(child_finish(c), 0);
    assert_has(c->out, "inserted        1");

    lock_tenant(f);
    char *a = submit_job(f, f->acme, 0);
    const char *const wa[] = { "job", "watch", a, "--interval", "50", NULL };
    child_start(f, c, 0, 0, wa);
    child_wait_for(c, why);
    unlock_tenant(f);
    assert_int_equal(child_finish(c), 0);
    // The note stands on a RUNNING line of its own, after the one without.
    assert_has(c->out, "RUNNING  elapsed ");
    assert_has(c->out, "  (waiting to be applied: the tenant's database");
    assert_has(c->out, "state        COMPLETED\n");
    free(a);
    free(c);
}

static void
test_watch_on_terminal_redraws_one_line(void **state)
{
    struct fixture *f = *state;
    struct child   *w = calloc(1, sizeof(*w));

    free(submit_done(f, 0, NULL)); // creates the tenant's database
    lock_tenant(f);
    char *a = submit_job(f, f->acme, 0);
    wait_state(f, a, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);

    // 40 columns: the line (longer than that) is cut to 39.
    const char *const args[] = { "job", "watch", a, "--interval", "20", NULL };
    child_start(f, w, 1, 40, args);
    child_wait_for(w, "\033[K");
    unlock_tenant(f);
    assert_int_equal(child_finish(w), 0);

    const char *p = strstr(w->out, "\rRUNNING  elapsed ");
    assert_non_null(p);
    const char *el = strstr(p, "\033[K");
    assert_non_null(el);
    if (el - p - 1 != 39) {
        fail_msg("progress line of %d columns on a 40-column terminal:\n%s",
            (int) (el - p - 1), w->out);
    }
    assert_lacks(w->out, "RUNNING\n"); // redrawn, never a line of its own
    // The last progress line is erased before the summary, which is
    // coloured on a terminal (the pty turns "\n" into "\r\n").
    assert_has(w->out, "\r\033[Kjob_id       ");
    assert_has(w->out, "state        \033[32mCOMPLETED\033[0m\r\n");
    free(a);
    free(w);
}

static void
test_help_and_usage(void **state)
{
    struct fixture          *f = *state;
    static const char *const cmds[][4] = {
        { "job", "list", "--help" },
        { "job", "watch", "--help" },
        { "job", "watch", "-h" },
        { "job", "--help" },
    };

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int rv = harness_cli(&f->h, NULL, cmds[i], harness_cli_out, sizeof(harness_cli_out),
            harness_cli_err, sizeof(harness_cli_err));
        if (rv != 0 || strstr(harness_cli_out, "Example") == NULL
            || strncmp(harness_cli_out, "Usage: rpc-cli", 14) != 0
            || harness_cli_err[0] != '\0') {
            fail_msg("%s %s --help: exit %d\nstdout:\n%s\nstderr:\n%s",
                cmds[i][0], cmds[i][1], rv, harness_cli_out, harness_cli_err);
        }
    }
    CLI(0, &f->h, NULL, "job", "list", "--help");
    assert_has(harness_cli_out, "rpc-cli job list --state");
    CLI(0, &f->h, NULL, "job", "watch", "--help");
    assert_has(harness_cli_out, "Exits 0 when the job COMPLETED, 3 when");
    CLI(0, &f->h, NULL, "job", "--help");
    assert_has(harness_cli_out, "  list ");
    assert_has(harness_cli_out, "  watch JOB_ID ");
    CLI(2, &f->h, NULL, "job");
    assert_has(harness_cli_err, "missing subcommand (get, cancel, list or watch)");
    CLI(2, &f->h, f->tok, "job", "list", "--frob");
    assert_has(harness_cli_err, "unknown option '--frob'");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_list_empty_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_list_newest_first_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_list_state_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_list_time_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_list_other_tenant_never_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_watch_finished_job, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_watch_into_pipe_follows_the_job, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_watch_on_terminal_redraws_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_and_watch_say_why_a_job_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
