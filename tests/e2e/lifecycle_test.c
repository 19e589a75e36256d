// SPDX-License-Identifier: MIT
/*
 * Job lifecycle through the real daemon: CancelJob (only while QUEUED),
 * idempotency keys (same request: same job; different request: 400),
 * retention (finished jobs and their keys are purged), per-tenant queue
 * limits (429 with retry_after_ms, other tenants unaffected), and SIGTERM
 * (new calls get 503 while a call in flight finishes, then exit 0).
 *
 * To hold jobs in a known state, the test takes the tenant database's write
 * lock itself (BEGIN IMMEDIATE): the worker then waits, its job RUNNING, and
 * later jobs of that tenant stay QUEUED until the lock is released.
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#define ALLP (BU_PERM_READ | BU_PERM_MANAGE)

static const char *const cols2[] = { "contact_key", "name" };

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

// set_import_ok calls SetImportEnabled and fails the test, with the
// answer's code and message, unless it succeeded.
static void
set_import_ok(
    bulkupsert_client *c, Bulkupsert__V1__SetImportEnabledRequest *req)
{
    struct bulkupsert_status                  st = { 0 };
    Bulkupsert__V1__SetImportEnabledResponse *sr = NULL;
    int code = bulkupsert_set_import_enabled(c, req, &sr, &st);
    if (code != BULKUPSERT_OK) {
        fail_msg("SetImportEnabled %s: %s: %s", req->column,
            bulkupsert_code_name(code),
            st.message != NULL ? st.message : "(no message)");
    }
    bulkupsert__v1__set_import_enabled_response__free_unpacked(sr, NULL);
    bulkupsert_status_clear(&st);
}

// submit_one submits one record (key, name); returns the code and, when
// OK, the job id in id (37 bytes).
static int
submit_one(bulkupsert_client *c, const char *key, const char *name,
    const char *idem, char *id, struct bulkupsert_status *st)
{
    struct req_builder b;
    req_init(&b, cols2, 2);
    const char *row[] = { key, name };
    req_row(&b, row);
    b.req.idempotency_key = (char *) idem;
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    int code = bulkupsert_submit(c, &b.req, &resp, st);
    if (code == BULKUPSERT_OK) {
        snprintf(id, 37, "%s", resp->job_id);
        bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(
            resp, NULL);
    }
    req_fini(&b);
    return code;
}

static char *
submit_ok(bulkupsert_client *c, const char *key, const char *name,
    const char *idem)
{
    static char ids[8][37];
    static int next;
    char *id = ids[next++ % 8];
    struct bulkupsert_status st = { 0 };
    int code = submit_one(c, key, name, idem, id, &st);
    if (code != BULKUPSERT_OK) {
        fail_msg("submit: %s: %s", bulkupsert_code_name(code), st.message);
    }
    bulkupsert_status_clear(&st);
    return id;
}

// job_get returns the job's state (or -code when GetJob failed, e.g.
// -NOT_FOUND) and copies its error, "" when it has none, into error.
static int
job_get(bulkupsert_client *c, const char *id, char *error, size_t len)
{
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = (char *) id;
    Bulkupsert__V1__Job *job = NULL;
    struct bulkupsert_status st = { 0 };
    int code = bulkupsert_get_job(c, &gr, &job, &st);
    bulkupsert_status_clear(&st);
    error[0] = '\0';
    if (code != BULKUPSERT_OK) {
        return -code;
    }
    int state = job->state;
    snprintf(error, len, "%s", job->error != NULL ? job->error : "");
    bulkupsert__v1__job__free_unpacked(job, NULL);
    return state;
}

static int
job_state(bulkupsert_client *c, const char *id)
{
    char error[256];
    return job_get(c, id, error, sizeof(error));
}

static void
wait_state(bulkupsert_client *c, const char *id, int state)
{
    for (int i = 0; i < 3000; i++) {
        if (job_state(c, id) == state) {
            return;
        }
        sleep_ms(10);
    }
    fail_msg("job %s never reached state %d (now %d)", id, state,
        job_state(c, id));
}

// start_with_acme starts a daemon with extra arguments (may be NULL) and
// returns a client of tenant acme (its token in *tokp) whose first job has
// completed, so that the tenant's database exists.
static bulkupsert_client *
start_with_acme(struct harness *h, const char *const *extra, char **tokp)
{
    harness_start(h, extra);
    *tokp = harness_token(h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(h, *tokp);
    wait_state(c, submit_ok(c, "k0", "x", NULL),
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    return c;
}

static int
cancel(bulkupsert_client *c, const char *id, struct bulkupsert_status *st)
{
    Bulkupsert__V1__CancelJobRequest req =
        BULKUPSERT__V1__CANCEL_JOB_REQUEST__INIT;
    req.job_id = (char *) id;
    Bulkupsert__V1__Job *job = NULL;
    int code = bulkupsert_cancel_job(c, &req, &job, st);
    if (job != NULL) {
        assert_int_equal(
            job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_CANCELLED);
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    return code;
}

static void
test_cancel_only_while_queued(void **state)
{
    (void) state;
    struct harness h;
    const char *args[] = { "--workers", "1", NULL };
    harness_start(&h, args);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    wait_state(c, submit_ok(c, "k1", "first", NULL),
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);

    sqlite3 *lock = harness_lock_db(&h, "tenants/acme.db");
    char running[37], queued[37];
    snprintf(running, sizeof(running), "%s", submit_ok(c, "k1", "second", NULL));
    wait_state(c, running, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    snprintf(queued, sizeof(queued), "%s", submit_ok(c, "k1", "third", NULL));

    struct bulkupsert_status st = { 0 };
    assert_int_equal(cancel(c, queued, &st), BULKUPSERT_OK);
    bulkupsert_status_clear(&st);
    assert_int_equal(job_state(c, queued),
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_CANCELLED);
    // A running job cannot be cancelled; the answer says why.
    assert_int_equal(cancel(c, running, &st), 9); // FAILED_PRECONDITION
    assert_int_equal(st.http_status, 400);
    assert_non_null(strstr(st.message, "RUNNING"));
    bulkupsert_status_clear(&st);
    // Unknown and foreign jobs are not found.
    assert_int_equal(cancel(c, "01234567-89ab-7def-8123-456789abcdef", &st),
        BULKUPSERT_NOT_FOUND);
    bulkupsert_status_clear(&st);
    char *other = harness_token(&h, "globex", ALLP, 3600);
    bulkupsert_client *oc = harness_client(&h, other);
    assert_int_equal(cancel(oc, running, &st), BULKUPSERT_NOT_FOUND);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(oc);
    free(other);
    // Cancelling needs DataSpace.Manage.
    char *ro = harness_token(&h, "acme", BU_PERM_READ, 3600);
    oc = harness_client(&h, ro);
    assert_int_equal(cancel(oc, running, &st), BULKUPSERT_PERMISSION_DENIED);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(oc);
    free(ro);

    harness_unlock_db(lock);
    wait_state(c, running, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    // The cancelled job never applied: the running one's value stays.
    char buf[64];
    assert_int_equal(harness_text(&h, "acme",
                         "SELECT name FROM master_contact"
                         " WHERE contact_key = 'k1'", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "second");
    assert_int_equal(cancel(c, queued, &st), 9); // already cancelled
    bulkupsert_status_clear(&st);

    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_idempotency_conflict_and_retention(void **state)
{
    (void) state;
    struct harness h;
    const char *args[] = { "--retention", "1s", NULL };
    harness_start(&h, args);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    char first[37];
    snprintf(first, sizeof(first), "%s", submit_ok(c, "k1", "a", "key-1"));
    assert_string_equal(submit_ok(c, "k1", "a", "key-1"), first);

    // The same key with another request: 400 naming the key and the job.
    struct bulkupsert_status st = { 0 };
    char id[37];
    assert_int_equal(submit_one(c, "k1", "b", "key-1", id, &st),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(st.response_code, 1);
    assert_non_null(strstr(st.message, "key-1"));
    assert_non_null(strstr(st.message, first));
    bulkupsert_status_clear(&st);

    // Past retention the job is purged (so it finished), and its key with
    // it.
    wait_state(c, first, -BULKUPSERT_NOT_FOUND);
    char *again = submit_ok(c, "k1", "b", "key-1");
    assert_string_not_equal(again, first);

    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_idempotent_retry_after_column_change(void **state)
{
    (void) state;
    struct harness h;
    harness_start(&h, NULL);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    char first[37];
    snprintf(first, sizeof(first), "%s", submit_ok(c, "k1", "a", "key-1"));
    struct bulkupsert_status st = { 0 };
    char id[37];

    // A retry still gets its job after the columns changed under it
    // ("name" no longer importable): the job was accepted, it stands.
    Bulkupsert__V1__SetImportEnabledRequest off =
        BULKUPSERT__V1__SET_IMPORT_ENABLED_REQUEST__INIT;
    off.column = "name";
    off.has_enabled = 1;
    off.enabled = 0;
    set_import_ok(c, &off);
    assert_int_equal(submit_one(c, "k9", "a", NULL, id, &st),
        BULKUPSERT_INVALID_ARGUMENT);
    bulkupsert_status_clear(&st);
    assert_string_equal(submit_ok(c, "k1", "a", "key-1"), first);
    off.enabled = 1;
    set_import_ok(c, &off);

    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_tenant_queue_limit_429(void **state)
{
    (void) state;
    struct harness h;
    const char *args[] = { "--workers", "1", "--tenant-max-queued", "2",
        NULL };
    char *tok = NULL;
    bulkupsert_client *c = start_with_acme(&h, args, &tok);

    sqlite3 *lock = harness_lock_db(&h, "tenants/acme.db");
    char held[37];
    snprintf(held, sizeof(held), "%s", submit_ok(c, "k1", "x", NULL));
    char second[37];
    snprintf(second, sizeof(second), "%s", submit_ok(c, "k2", "x", "key-q"));
    struct bulkupsert_status st = { 0 };
    char id[37];
    assert_int_equal(submit_one(c, "k3", "x", NULL, id, &st),
        BULKUPSERT_RESOURCE_EXHAUSTED);
    assert_int_equal(st.http_status, 429);
    assert_true(st.retry_after_ms > 0);
    assert_non_null(strstr(st.message, "tenant"));
    bulkupsert_status_clear(&st);
    // A retry of an accepted request is not refused by the full queue: it
    // gets its job back.
    assert_string_equal(submit_ok(c, "k2", "x", "key-q"), second);

    // Another tenant is not held back by acme's queue limit. (With one
    // worker its job waits behind acme's, so only acceptance is checked.)
    char *gtok = harness_token(&h, "globex", ALLP, 3600);
    bulkupsert_client *g = harness_client(&h, gtok);
    char gid[37];
    snprintf(gid, sizeof(gid), "%s", submit_ok(g, "g1", "x", NULL));

    harness_unlock_db(lock);
    wait_state(c, held, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    wait_state(g, gid, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    bulkupsert_client_close(g);
    free(gtok);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

// A worker that opens a tenant's database while another writer holds it
// for longer than SQLite's busy timeout (5 s) waits it out and applies the
// job, as it does for a locked transaction; it used to leave the job
// RUNNING until the next start. Meanwhile GetJob says why the job waits.
static void
test_worker_waits_out_a_locked_open(void **state)
{
    (void) state;
    struct harness h;
    char *tok = NULL;
    bulkupsert_client *c = start_with_acme(&h, NULL, &tok);
    bulkupsert_client_close(c);

    // A new start: no worker has the database open.
    assert_int_equal(harness_signal(&h, SIGTERM), 0);
    harness_restart(&h, NULL);
    c = harness_client(&h, tok);
    sqlite3 *lock = harness_lock_db(&h, "tenants/acme.db");
    char held[37];
    snprintf(held, sizeof(held), "%s", submit_ok(c, "k1", "x", NULL));
    // Past the worker's first busy timeout, GetJob tells why the job waits
    // (the worker keeps trying while the lock is held).
    char error[256];
    int now = job_get(c, held, error, sizeof(error));
    for (int i = 0; i < 3000 && error[0] == '\0'; i++) {
        sleep_ms(10);
        now = job_get(c, held, error, sizeof(error));
    }
    assert_int_equal(now, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    assert_non_null(strstr(error, "waiting to be applied: the tenant's "
                                  "database is locked by another program"));
    harness_unlock_db(lock);
    wait_state(c, held, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_int_equal(job_get(c, held, error, sizeof(error)),
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_string_equal(error, ""); // the note went with the wait
    assert_int_equal(
        harness_count(&h, "acme",
            "SELECT count(*) FROM master_contact WHERE contact_key = 'k1'"),
        1);

    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

struct add_call {
    struct harness *h;
    const char *token;
    int code;
};

static void *
add_column_main(void *arg)
{
    struct add_call *ac = arg;
    bulkupsert_client *c = harness_client(ac->h, ac->token);
    Bulkupsert__V1__AddColumnRequest req =
        BULKUPSERT__V1__ADD_COLUMN_REQUEST__INIT;
    req.name = "note";
    Bulkupsert__V1__AddColumnResponse *resp = NULL;
    struct bulkupsert_status st = { 0 };
    ac->code = bulkupsert_add_column(c, &req, &resp, &st);
    if (resp != NULL) {
        bulkupsert__v1__add_column_response__free_unpacked(resp, NULL);
    }
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);
    return NULL;
}

static void
test_sigterm_answers_503_and_finishes_calls(void **state)
{
    (void) state;
    struct harness h;
    char *tok = NULL;
    bulkupsert_client *c = start_with_acme(&h, NULL, &tok);

    // AddColumn waits for the tenant's write lock: a call in flight.
    sqlite3 *lock = harness_lock_db(&h, "tenants/acme.db");
    struct add_call ac = { .h = &h, .token = tok };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, add_column_main, &ac), 0);
    sleep_ms(500); // the call reaches its handler and waits on the lock
    kill(h.pid, SIGTERM);
    int code = BULKUPSERT_OK;
    for (int i = 0; i < 200 && code != BULKUPSERT_UNAVAILABLE; i++) {
        struct bulkupsert_status st = { 0 };
        char id[37];
        code = submit_one(c, "k9", "late", NULL, id, &st);
        if (code == BULKUPSERT_UNAVAILABLE) {
            assert_int_equal(st.http_status, 503);
        }
        bulkupsert_status_clear(&st);
        sleep_ms(10);
    }
    assert_int_equal(code, BULKUPSERT_UNAVAILABLE);
    harness_unlock_db(lock);
    pthread_join(t, NULL);
    // The call in flight got its answer: the column was added.
    assert_int_equal(ac.code, BULKUPSERT_OK);
    assert_int_equal(harness_signal(&h, SIGTERM), 0); // waits for exit
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), -1); // already stopped
}

struct submit_call {
    bulkupsert_client *c;
    int code;
};

static void *
submit_main(void *arg)
{
    struct submit_call *sc = arg;
    struct bulkupsert_status st = { 0 };
    char id[37];
    sc->code = submit_one(sc->c, "k5", "held", NULL, id, &st);
    bulkupsert_status_clear(&st);
    return NULL;
}

// A stop whose drain times out while the journal still holds a submit
// (queue.db locked by another program): the service waits for the
// journal's answer before it frees what the answer touches, and the daemon
// exits cleanly. It used to free the service first (a use after free
// under ASan); the job is accepted once the lock goes.
static void
test_stop_after_drain_timeout_with_submit_in_journal(void **state)
{
    (void) state;
    struct harness h;
    char *tok = NULL;
    const char *const extra[] = { "--drain-timeout", "0", NULL };
    bulkupsert_client *c = start_with_acme(&h, extra, &tok);

    sqlite3 *lock = harness_lock_db(&h, "queue.db");
    bulkupsert_client *c2 = harness_client(&h, tok);
    struct submit_call sc = { .c = c2, .code = -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, submit_main, &sc), 0);
    sleep_ms(500); // the submit waits in the journal for the lock
    kill(h.pid, SIGTERM);
    sleep_ms(500); // the drain times out; the service stops
    harness_unlock_db(lock);
    assert_int_equal(harness_signal(&h, SIGTERM), 0); // a clean exit
    pthread_join(t, NULL);
    assert_int_not_equal(sc.code, -1);
    bulkupsert_client_close(c2);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), -1); // already stopped
}

// A queue.db that makes a submit wait over a second (here another program
// holds its write lock) is named in the log as a WARN: every answer waits
// on it, and an operator looking at slow acks should see why.
static void
test_slow_queue_db_is_logged(void **state)
{
    (void) state;
    struct harness h;
    char *tok = NULL;
    bulkupsert_client *c = start_with_acme(&h, NULL, &tok);
    sqlite3 *lock = harness_lock_db(&h, "queue.db");
    struct submit_call sc = { .c = c, .code = -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, submit_main, &sc), 0);
    sleep_ms(1500);
    harness_unlock_db(lock);
    pthread_join(t, NULL);
    assert_int_equal(sc.code, BULKUPSERT_OK);
    FILE *f = fopen(h.log, "r");
    assert_non_null(f);
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, " WARN queue.db is slow: ") != NULL;
    }
    fclose(f);
    assert_true(found);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

// The caller's request_id (the C client sends 16 hex digits) is in the
// debug log line of its call, with where the call's time went.
static void
test_request_id_in_log(void **state)
{
    (void) state;
    struct harness h;
    char *tok = NULL;
    const char *const extra[] = { "--log-level", "debug", NULL };
    bulkupsert_client *c = start_with_acme(&h, extra, &tok);
    FILE *f = fopen(h.log, "r");
    assert_non_null(f);
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "SubmitBulkUpsert [");
        if (p != NULL) {
            p += strlen("SubmitBulkUpsert [");
            found = strspn(p, "0123456789abcdef") == 16 && p[16] == ']'
                && strstr(p, " ms CPU, ") != NULL;
        }
    }
    fclose(f);
    assert_true(found);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_only_while_queued),
        cmocka_unit_test(test_idempotency_conflict_and_retention),
        cmocka_unit_test(test_idempotent_retry_after_column_change),
        cmocka_unit_test(test_tenant_queue_limit_429),
        cmocka_unit_test(test_worker_waits_out_a_locked_open),
        cmocka_unit_test(test_sigterm_answers_503_and_finishes_calls),
        cmocka_unit_test(
            test_stop_after_drain_timeout_with_submit_in_journal),
        cmocka_unit_test(test_request_id_in_log),
        cmocka_unit_test(test_slow_queue_db_is_logged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
