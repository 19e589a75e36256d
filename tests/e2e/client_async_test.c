// SPDX-License-Identifier: MIT
/*
 * The C client's asynchronous calls, retry policy and reconnection against
 * the real daemon: fifty submits in flight at once from one thread all
 * complete and their records land, GetJob runs asynchronously, submits
 * refused with 429 by a tenant queue limit of one are retried until each
 * is accepted exactly once, and clients keep working across kill -9 and
 * restart of the daemon on the same ipc:// path. Nothing here asserts a
 * duration; every wait has a wide bound (scaled by harness_slow()).
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALLP     (BU_PERM_READ | BU_PERM_MANAGE)
#define NSUBMITS 50
#define NRECORDS 10 // per submit
#define NQUEUED  20 // submits against a queue limit of one
#define NROUNDS  20 // kill -9 and restart
#define NCLIENTS 4

static const char *const cols2[] = { "contact_key", "name" };

// What the done callbacks report, under mtx; the test thread waits on cv.
struct batch {
    pthread_mutex_t mtx;
    pthread_cond_t  cv;
    int             ndone;
    struct slot {
        struct batch *batch;
        int           code;
        unsigned      attempts;
        char          job_id[40];
        int           state; // GetJob: the job's state
        unsigned      total; // GetJob: counts->total
    } slots[NSUBMITS];
};

static void
batch_init(struct batch *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mtx, NULL);
    pthread_cond_init(&b->cv, NULL);
    for (int i = 0; i < NSUBMITS; i++) {
        b->slots[i].batch = b;
        b->slots[i].code = -1;
    }
}

static void
batch_fini(struct batch *b)
{
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mtx);
}

// Waits until n callbacks have run, or the bound passes; returns how many
// ran.
static int
batch_wait(struct batch *b, int n, int64_t bound_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t) (bound_ms / 1000);
    pthread_mutex_lock(&b->mtx);
    while (b->ndone < n) {
        if (pthread_cond_timedwait(&b->cv, &b->mtx, &until) != 0) {
            break;
        }
    }
    int ndone = b->ndone;
    pthread_mutex_unlock(&b->mtx);
    return ndone;
}

// Done callback of a submit (nng thread): keeps code, attempts and job id,
// frees the call.
static void
submit_done(bulkupsert_call *call, void *arg)
{
    struct slot             *slot = arg;
    struct bulkupsert_status st;
    ProtobufCMessage        *reply = NULL;

    int code = bulkupsert_call_result(call, &reply, &st);
    pthread_mutex_lock(&slot->batch->mtx);
    slot->code = code;
    slot->attempts = st.attempts;
    if (code == BULKUPSERT_OK) {
        Bulkupsert__V1__SubmitBulkUpsertResponse *resp
            = (Bulkupsert__V1__SubmitBulkUpsertResponse *) reply;
        snprintf(slot->job_id, sizeof(slot->job_id), "%s", resp->job_id);
    } else {
        print_message(
            "submit: %s: %s\n", bulkupsert_code_name(code), st.message);
    }
    slot->batch->ndone++;
    pthread_cond_signal(&slot->batch->cv);
    pthread_mutex_unlock(&slot->batch->mtx);
    if (reply != NULL) {
        protobuf_c_message_free_unpacked(reply, NULL);
    }
    bulkupsert_status_clear(&st);
    bulkupsert_call_free(call);
}

// Done callback of a GetJob (nng thread).
static void
get_job_done(bulkupsert_call *call, void *arg)
{
    struct slot      *slot = arg;
    ProtobufCMessage *reply = NULL;

    int                  code = bulkupsert_call_result(call, &reply, NULL);
    Bulkupsert__V1__Job *job = (Bulkupsert__V1__Job *) reply;
    pthread_mutex_lock(&slot->batch->mtx);
    slot->code = code;
    if (job != NULL) {
        slot->state = job->state;
        slot->total = job->counts != NULL ? job->counts->total : 0;
    }
    slot->batch->ndone++;
    pthread_cond_signal(&slot->batch->cv);
    pthread_mutex_unlock(&slot->batch->mtx);
    if (job != NULL) {
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    bulkupsert_call_free(call);
}

// Starts an async submit of NRECORDS records with keys "<prefix><n>-<r>";
// the request is freed before the call completes (the call packed it).
static void
submit_start(
    bulkupsert_client *c, const char *prefix, int n, struct slot *slot)
{
    struct req_builder b;
    char               key[48];
    bulkupsert_call   *call;

    req_init(&b, cols2, 2);
    for (int r = 0; r < NRECORDS; r++) {
        snprintf(key, sizeof(key), "%s%02d-%02d", prefix, n, r);
        const char *row[] = { key, "Ada" };
        req_row(&b, row);
    }
    assert_int_equal(
        bulkupsert_submit_async(c, &b.req, submit_done, slot, &call),
        BULKUPSERT_OK);
    req_fini(&b);
}

// Fifty submits in flight at once from this one thread; each completes
// through its callback, every job applies, every record lands. Then a
// GetJob for each, all in flight at once.
static void
test_fifty_async_submits(void **state)
{
    (void) state;
    struct harness h;
    struct batch   b;
    // Room for all fifty at once, so that none is refused.
    const char *const extra[] = { "--tenant-max-inflight", "64", NULL };

    harness_start(&h, extra);
    char              *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    batch_init(&b);
    for (int i = 0; i < NSUBMITS; i++) {
        submit_start(c, "k", i, &b.slots[i]);
    }
    assert_int_equal(
        batch_wait(&b, NSUBMITS, 120000L * harness_slow()), NSUBMITS);
    for (int i = 0; i < NSUBMITS; i++) {
        assert_int_equal(b.slots[i].code, BULKUPSERT_OK);
        assert_int_equal(strlen(b.slots[i].job_id), 36);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(b.slots[i].job_id, b.slots[j].job_id);
        }
    }
    for (int i = 0; i < NSUBMITS; i++) {
        Bulkupsert__V1__Job *job = harness_wait_job(c, b.slots[i].job_id);
        assert_int_equal(
            job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
        assert_int_equal(job->counts->inserted, NRECORDS);
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    assert_int_equal(
        harness_count(&h, "acme", "SELECT count(*) FROM master_contact"),
        NSUBMITS * NRECORDS);

    // GetJob, asynchronously, all at once.
    struct batch g;
    batch_init(&g);
    for (int i = 0; i < NSUBMITS; i++) {
        Bulkupsert__V1__GetJobRequest req
            = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
        req.job_id = b.slots[i].job_id;
        bulkupsert_call *call;
        assert_int_equal(bulkupsert_get_job_async(
                             c, &req, get_job_done, &g.slots[i], &call),
            BULKUPSERT_OK);
    }
    assert_int_equal(
        batch_wait(&g, NSUBMITS, 60000L * harness_slow()), NSUBMITS);
    for (int i = 0; i < NSUBMITS; i++) {
        assert_int_equal(g.slots[i].code, BULKUPSERT_OK);
        assert_int_equal(
            g.slots[i].state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
        assert_int_equal(g.slots[i].total, NRECORDS);
    }
    batch_fini(&g);
    batch_fini(&b);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

// A tenant may have one job queued: twenty submits at once mostly get 429.
// With retries on, each is retried until accepted, and accepted once.
static void
test_retry_real_429(void **state)
{
    (void) state;
    struct harness    h;
    struct batch      b;
    const char *const extra[] = { "--tenant-max-queued", "1", NULL };

    harness_start(&h, extra);
    char              *tok = harness_token(&h, "busy", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    // The server asks for 1 s; a cap of 300 ms keeps the test short (the
    // client then comes back earlier than asked, and is refused again).
    struct bulkupsert_retry retry
        = { .max_retries = 1000, .base_delay_ms = 20, .max_delay_ms = 300 };
    bulkupsert_client_set_retry(c, &retry);
    batch_init(&b);
    for (int i = 0; i < NQUEUED; i++) {
        submit_start(c, "q", i, &b.slots[i]);
    }
    assert_int_equal(
        batch_wait(&b, NQUEUED, 240000L * harness_slow()), NQUEUED);
    unsigned attempts = 0;
    for (int i = 0; i < NQUEUED; i++) {
        assert_int_equal(b.slots[i].code, BULKUPSERT_OK);
        assert_true(b.slots[i].attempts >= 1);
        attempts += b.slots[i].attempts;
    }
    print_message("retry: %d submits took %u attempts\n", NQUEUED, attempts);
    // Twenty arrive together and one may be queued: most were refused.
    assert_true(attempts > NQUEUED);
    for (int i = 0; i < NQUEUED; i++) {
        Bulkupsert__V1__Job *job = harness_wait_job(c, b.slots[i].job_id);
        assert_int_equal(
            job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    // Each accepted exactly once: no job of a refused attempt exists.
    assert_int_equal(harness_queue_count(&h,
                         "SELECT count(*) FROM jobs WHERE tenant = "
                         "'busy'"),
        NQUEUED);
    assert_int_equal(
        harness_count(&h, "busy", "SELECT count(*) FROM master_contact"),
        NQUEUED * NRECORDS);
    batch_fini(&b);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

// GetJob of an unknown id: NOT_FOUND proves a round trip to the server.
static int
probe(bulkupsert_client *c, struct bulkupsert_status *st)
{
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    Bulkupsert__V1__Job          *job = NULL;
    req.job_id = "00000000-0000-0000-0000-000000000000";
    int code = bulkupsert_get_job(c, &req, &job, st);
    if (job != NULL) {
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    return code;
}

// kill -9 and restart on the same ipc:// path, twenty times: after each
// restart every client answers again within its retries (a dialer that
// stopped redialling is replaced after one send timeout).
static void
test_reconnect_after_kill(void **state)
{
    (void) state;
    struct harness     h;
    bulkupsert_client *clients[NCLIENTS];

    harness_start(&h, NULL);
    char                   *tok = harness_token(&h, "acme", ALLP, 3600);
    struct bulkupsert_retry retry
        = { .max_retries = 20, .base_delay_ms = 50, .max_delay_ms = 500 };
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = harness_client(&h, tok);
        bulkupsert_client_set_timeout(clients[i], 2000 * harness_slow());
        bulkupsert_client_set_retry(clients[i], &retry);
    }
    for (int r = 0; r < NROUNDS; r++) {
        for (int i = 0; i < NCLIENTS; i++) {
            struct bulkupsert_status st;
            int                      code = probe(clients[i], &st);
            if (code != BULKUPSERT_NOT_FOUND) {
                fail_msg("round %d, client %d: %s after %u attempts: %s", r, i,
                    bulkupsert_code_name(code), st.attempts, st.message);
            }
            bulkupsert_status_clear(&st);
        }
        // Calls in flight while the daemon dies: they end (any code),
        // and do not keep the clients from coming back.
        bulkupsert_call *calls[NCLIENTS];
        for (int i = 0; i < NCLIENTS; i++) {
            Bulkupsert__V1__GetJobRequest req
                = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
            req.job_id = "in-flight";
            assert_int_equal(bulkupsert_get_job_async(
                                 clients[i], &req, NULL, NULL, &calls[i]),
                BULKUPSERT_OK);
        }
        assert_int_equal(harness_signal(&h, SIGKILL), 128 + SIGKILL);
        harness_restart(&h, NULL);
        for (int i = 0; i < NCLIENTS; i++) {
            bulkupsert_call_wait(calls[i]);
            bulkupsert_call_free(calls[i]);
        }
    }
    for (int i = 0; i < NCLIENTS; i++) {
        struct bulkupsert_status st;
        assert_int_equal(probe(clients[i], &st), BULKUPSERT_NOT_FOUND);
        bulkupsert_status_clear(&st);
        bulkupsert_client_close(clients[i]);
    }
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifty_async_submits),
        cmocka_unit_test(test_retry_real_429),
        cmocka_unit_test(test_reconnect_after_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
