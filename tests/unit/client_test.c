// SPDX-License-Identifier: MIT
/*
 * Tests of the C client library (clients/c) without a real server. A fake
 * server thread listens with nng rep0 on an ipc:// path in a temp dir,
 * records what each RpcRequest carried (method, token, payload) and answers
 * with a canned RpcResponse, garbage, silence or a dropped connection. The
 * tests check the envelope the client sends and the status, field errors and
 * replies it returns, and that transport failures come back within the
 * timeout with a message; then the retry policy (what is retried, how
 * often, how long it waits) and the asynchronous calls (callbacks, polling,
 * cancel, close with calls in flight). Assertions run on the main thread
 * only; the fake server and the done callbacks just record. No test
 * asserts that something is fast, only that it is not too early (a wait
 * that must happen) or comes within a bound several seconds wide.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bulkupsert.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_TOKEN "v4.public.test-token"
#define FAKE_MAX_REQUESTS 16

// Internal helpers of the library (client_int.h), hidden from its shared
// form but linkable from the static library this test uses.
int      bu__retry_safe(const struct bulkupsert_status *status, int sent);
unsigned bu__retry_delay_ms(const struct bulkupsert_retry *policy,
    unsigned attempt, unsigned retry_after_ms, uint32_t random);

enum fake_mode {
    FAKE_REPLY,   // send the canned reply
    FAKE_GARBAGE, // send bytes that are not an RpcResponse
    FAKE_SILENT,  // keep the request and never answer
    FAKE_DROP,    // close the socket after receiving
};

struct fake_server {
    char            url[160];
    enum fake_mode  mode;
    int             nrequests; // requests to serve before the thread ends
    int             delay_ms;  // wait before listening
    int             hold_ms;   // FAKE_SILENT: how long to sit on the request
    uint8_t        *reply;     // packed RpcResponse for FAKE_REPLY
    size_t          reply_len; // its length
    uint8_t        *first;     // when set, the reply to the first nfirst
    size_t          first_len; // requests instead
    int             nfirst;
    int             drop_at; // FAKE_REPLY: drop as FAKE_DROP the request
                             // numbered drop_at (1, 2, ...); 0 = none
    int             reply_ms;  // FAKE_REPLY: wait this long before replying,
    int             jitter_ms; // give or take up to jitter_ms (random)
    int             untimed;   // receive without a timeout (closed by the
                               // test): nng 1.5.2 must not be expiring a
                               // receive on a socket another thread closes
    pthread_t       thread;
    nng_socket      sock;
    pthread_mutex_t mtx;
    pthread_cond_t  cv;
    int listening; // guarded by mtx; 1 once nng_listen has returned
    int served;    // guarded by mtx while the thread runs
    int64_t at_ms[FAKE_MAX_REQUESTS]; // when each request came; same
    // Recorded by the server thread, read after pthread_join.
    int      listen_rv;
    int      decode_failed;
    char     method[128];
    char     token[128];
    int      has_token;
    char     request_id[64];
    uint8_t *payload; // of the last request
    size_t   payload_len;
};

struct test_env {
    char dir[64];
    char path[128];
    char url[160];
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src != NULL ? src : "");
}

static void
fake_record(struct fake_server *fs, nng_msg *msg)
{
    Bulkupsert__V1__RpcRequest *env = bulkupsert__v1__rpc_request__unpack(
        NULL, nng_msg_len(msg), nng_msg_body(msg));
    if (env == NULL) {
        fs->decode_failed = 1;
        return;
    }
    copy_str(fs->method, sizeof(fs->method), env->method);
    copy_str(fs->token, sizeof(fs->token), env->token);
    copy_str(fs->request_id, sizeof(fs->request_id), env->request_id);
    fs->has_token = env->token != NULL;
    free(fs->payload);
    fs->payload = NULL;
    fs->payload_len = 0;
    if (env->has_payload && env->payload.len > 0) {
        fs->payload = malloc(env->payload.len);
        if (fs->payload != NULL) {
            memcpy(fs->payload, env->payload.data, env->payload.len);
            fs->payload_len = env->payload.len;
        }
    }
    bulkupsert__v1__rpc_request__free_unpacked(env, NULL);
}

static void *
fake_main(void *arg)
{
    struct fake_server *fs = arg;
    nng_msg            *msg;

    if (fs->delay_ms > 0) {
        nng_msleep(fs->delay_ms);
    }
    if (!fs->untimed) {
        nng_socket_set_ms(fs->sock, NNG_OPT_RECVTIMEO, 5000);
    }
    fs->listen_rv = nng_listen(fs->sock, fs->url, NULL, 0);
    pthread_mutex_lock(&fs->mtx);
    fs->listening = 1;
    pthread_cond_signal(&fs->cv);
    pthread_mutex_unlock(&fs->mtx);
    if (fs->listen_rv != 0) {
        return NULL;
    }
    for (int i = 0; i < fs->nrequests; i++) {
        if (nng_recvmsg(fs->sock, &msg, 0) != 0) {
            break;
        }
        fake_record(fs, msg);
        pthread_mutex_lock(&fs->mtx);
        if (fs->served < FAKE_MAX_REQUESTS) {
            fs->at_ms[fs->served] = now_ms();
        }
        int first = fs->served < fs->nfirst;
        fs->served++;
        int drop = fs->served == fs->drop_at;
        pthread_cond_broadcast(&fs->cv);
        pthread_mutex_unlock(&fs->mtx);
        switch (drop ? FAKE_DROP : fs->mode) {
        case FAKE_REPLY:
            if (fs->reply_ms > 0) {
                int j = fs->jitter_ms > 0
                    ? (int) (nng_random() % (unsigned) (2 * fs->jitter_ms + 1))
                        - fs->jitter_ms
                    : 0;
                nng_msleep((nng_duration) (fs->reply_ms + j));
            }
            nng_msg_clear(msg);
            if (first) {
                nng_msg_append(msg, fs->first, fs->first_len);
            } else {
                nng_msg_append(msg, fs->reply, fs->reply_len);
            }
            if (nng_sendmsg(fs->sock, msg, 0) != 0) {
                nng_msg_free(msg);
            }
            break;
        case FAKE_GARBAGE:
            nng_msg_clear(msg);
            nng_msg_append(msg, "\xff\xff\xff\xff\x0f", 5);
            if (nng_sendmsg(fs->sock, msg, 0) != 0) {
                nng_msg_free(msg);
            }
            break;
        case FAKE_SILENT:
            nng_msg_free(msg);
            nng_msleep(fs->hold_ms);
            break;
        case FAKE_DROP:
            nng_msg_free(msg);
            nng_close(fs->sock);
            return NULL;
        }
    }
    return NULL;
}

static void
fake_start(struct fake_server *fs, const struct test_env *env,
    enum fake_mode mode, int nrequests)
{
    copy_str(fs->url, sizeof(fs->url), env->url);
    fs->mode = mode;
    fs->nrequests = nrequests;
    // The socket is opened here, on the main thread, so that the thread
    // never races the test for nng's lazy initialisation.
    assert_int_equal(nng_rep0_open(&fs->sock), 0);
    pthread_mutex_init(&fs->mtx, NULL);
    pthread_cond_init(&fs->cv, NULL);
    assert_int_equal(pthread_create(&fs->thread, NULL, fake_main, fs), 0);
    // Unless the test wants a late server, wait until it listens, so that
    // the client's first dial finds it and timings are not skewed by the
    // redial interval.
    if (fs->delay_ms == 0) {
        pthread_mutex_lock(&fs->mtx);
        while (!fs->listening) {
            pthread_cond_wait(&fs->cv, &fs->mtx);
        }
        pthread_mutex_unlock(&fs->mtx);
        assert_int_equal(fs->listen_rv, 0);
    }
}

// Waits for the server thread and closes its socket; what it recorded
// stays readable until fake_free.
static void
fake_stop(struct fake_server *fs)
{
    pthread_join(fs->thread, NULL);
    // FAKE_DROP closed it already; a second close is harmless.
    nng_close(fs->sock);
    pthread_cond_destroy(&fs->cv);
    pthread_mutex_destroy(&fs->mtx);
}

static void
fake_free(struct fake_server *fs)
{
    free(fs->payload);
    free(fs->reply);
    free(fs->first);
    fs->payload = NULL;
    fs->reply = NULL;
    fs->first = NULL;
}

// Waits until the server has taken n requests (or 10 s have passed) and
// returns how many it has.
static int
fake_wait_served(struct fake_server *fs, int n)
{
    int64_t deadline = now_ms() + 10000;
    pthread_mutex_lock(&fs->mtx);
    while (fs->served < n && now_ms() < deadline) {
        pthread_mutex_unlock(&fs->mtx);
        nng_msleep(5);
        pthread_mutex_lock(&fs->mtx);
    }
    int served = fs->served;
    pthread_mutex_unlock(&fs->mtx);
    return served;
}

// Packs an RpcResponse with the given status and payload message (NULL for
// none) into *bufp and *lenp.
static void
fake_pack(uint8_t **bufp, size_t *lenp, const Bulkupsert__V1__Status *status,
    const ProtobufCMessage *payload)
{
    Bulkupsert__V1__RpcResponse resp = BULKUPSERT__V1__RPC_RESPONSE__INIT;
    uint8_t                    *pbuf = NULL;

    resp.status = (Bulkupsert__V1__Status *) status;
    if (payload != NULL) {
        size_t n = protobuf_c_message_get_packed_size(payload);
        pbuf = malloc(n + 1);
        assert_non_null(pbuf);
        protobuf_c_message_pack(payload, pbuf);
        resp.has_payload = 1;
        resp.payload.len = n;
        resp.payload.data = pbuf;
    }
    *lenp = protobuf_c_message_get_packed_size(&resp.base);
    *bufp = malloc(*lenp + 1);
    assert_non_null(*bufp);
    protobuf_c_message_pack(&resp.base, *bufp);
    free(pbuf);
}

// Packs the reply the server sends (after the nfirst first ones).
static void
fake_set_reply(struct fake_server *fs, const Bulkupsert__V1__Status *status,
    const ProtobufCMessage *payload)
{
    fake_pack(&fs->reply, &fs->reply_len, status, payload);
}

// Packs the reply to the first n requests.
static void
fake_set_first(struct fake_server *fs, int n,
    const Bulkupsert__V1__Status *status, const ProtobufCMessage *payload)
{
    fake_pack(&fs->first, &fs->first_len, status, payload);
    fs->nfirst = n;
}

static int
env_setup(void **state)
{
    struct test_env *env = calloc(1, sizeof(*env));
    if (env == NULL) {
        return -1;
    }
    copy_str(env->dir, sizeof(env->dir), "/tmp/bu_client_test.XXXXXX");
    if (mkdtemp(env->dir) == NULL) {
        free(env);
        return -1;
    }
    snprintf(env->path, sizeof(env->path), "%s/sock", env->dir);
    snprintf(env->url, sizeof(env->url), "ipc://%s", env->path);
    *state = env;
    return 0;
}

static int
env_teardown(void **state)
{
    struct test_env *env = *state;
    unlink(env->path);
    rmdir(env->dir);
    free(env);
    return 0;
}

// A request with two columns and two records: one with a string and a
// bool, one with "not provided" and a null.
struct sample_request {
    Bulkupsert__V1__SubmitBulkUpsertRequest req;
    Bulkupsert__V1__ContactData             rec[2];
    Bulkupsert__V1__ContactData            *recp[2];
    Bulkupsert__V1__Value                   val[4];
    Bulkupsert__V1__Value                  *valp[4];
    char                                   *columns[2];
};

static void
sample_request_init(struct sample_request *s)
{
    static char c0[] = "contact_key";
    static char c1[] = "email_permission";
    static char k0[] = "c-1";

    bulkupsert__v1__submit_bulk_upsert_request__init(&s->req);
    for (int i = 0; i < 4; i++) {
        bulkupsert__v1__value__init(&s->val[i]);
        s->valp[i] = &s->val[i];
    }
    s->val[0].kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
    s->val[0].string_value = k0;
    s->val[1].kind_case = BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE;
    s->val[1].bool_value = 1;
    s->val[3].kind_case = BULKUPSERT__V1__VALUE__KIND_NULL_VALUE;
    s->val[3].null_value = BULKUPSERT__V1__NULL_VALUE__NULL_VALUE;
    for (int i = 0; i < 2; i++) {
        bulkupsert__v1__contact_data__init(&s->rec[i]);
        s->rec[i].n_values = 2;
        s->rec[i].values = &s->valp[2 * i];
        s->recp[i] = &s->rec[i];
    }
    s->columns[0] = c0;
    s->columns[1] = c1;
    s->req.n_columns = 2;
    s->req.columns = s->columns;
    s->req.n_contact_datas = 2;
    s->req.contact_datas = s->recp;
    s->req.has_fail_on_error = 1;
    s->req.fail_on_error = 0;
    s->req.idempotency_key = "idem-1";
}

static bulkupsert_client *
open_client(const char *url, const char *token, int timeout_ms)
{
    bulkupsert_client *client = NULL;
    assert_int_equal(bulkupsert_client_open(&client, url, token), 0);
    assert_non_null(client);
    bulkupsert_client_set_timeout(client, timeout_ms);
    return client;
}

static void
test_open_bad_url(void **state)
{
    (void) state;
    bulkupsert_client       *client = (bulkupsert_client *) &client;
    bulkupsert_client *const sentinel = client;

    assert_int_equal(bulkupsert_client_open(&client, "garbage", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(bulkupsert_client_open(&client, "nope://x", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(bulkupsert_client_open(&client, "tcp://", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    // Ports outside 1 to 65535: nng takes them, then never connects.
    assert_int_equal(
        bulkupsert_client_open(&client, "tcp://127.0.0.1:99999", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(
        bulkupsert_client_open(&client, "tcp://127.0.0.1:65536", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(
        bulkupsert_client_open(&client, "tcp://127.0.0.1:0", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(bulkupsert_client_open(&client,
                         "tcp://127.0.0.1:99999999999999999999999", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(bulkupsert_client_open(&client, "tcp://[::1]:70000", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(bulkupsert_client_open(&client, "", NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(bulkupsert_client_open(&client, NULL, NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    // *clientp is untouched on failure.
    assert_ptr_equal(client, sentinel);
    // The ends of the range are ports.
    assert_int_equal(
        bulkupsert_client_open(&client, "tcp://127.0.0.1:65535", NULL), 0);
    bulkupsert_client_close(client);
    assert_int_equal(
        bulkupsert_client_open(&client, "tcp://127.0.0.1:1", NULL), 0);
    bulkupsert_client_close(client);
}

static void
test_close_null(void **state)
{
    (void) state;
    bulkupsert_client_close(NULL);
    bulkupsert_status_clear(NULL);
    struct bulkupsert_status st;
    memset(&st, 0, sizeof(st));
    bulkupsert_status_clear(&st);
    assert_non_null(st.message);
    bulkupsert_status_clear(&st);
}

static void
test_code_names(void **state)
{
    (void) state;
    assert_string_equal(bulkupsert_code_name(0), "OK");
    assert_string_equal(bulkupsert_code_name(3), "INVALID_ARGUMENT");
    assert_string_equal(bulkupsert_code_name(4), "DEADLINE_EXCEEDED");
    assert_string_equal(bulkupsert_code_name(14), "UNAVAILABLE");
    assert_string_equal(bulkupsert_code_name(16), "UNAUTHENTICATED");
    assert_non_null(bulkupsert_code_name(99));
    assert_string_equal(bulkupsert_job_state_name(1), "QUEUED");
    assert_string_equal(bulkupsert_job_state_name(4), "COMPLETED_WITH_ERRORS");
    assert_string_equal(bulkupsert_job_state_name(6), "CANCELLED");
    assert_non_null(bulkupsert_job_state_name(42));
}

// Nobody listens: the call fails within its timeout, and says where it
// tried to go.
static void
test_no_server_fails_in_time(void **state)
{
    struct test_env                          *env = *state;
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply
        = (Bulkupsert__V1__SubmitBulkUpsertResponse *) &st;

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 300);
    int64_t            t0 = now_ms();
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    int64_t            took = now_ms() - t0;

    assert_true(
        rv == BULKUPSERT_UNAVAILABLE || rv == BULKUPSERT_DEADLINE_EXCEEDED);
    assert_int_equal(st.code, rv);
    assert_int_equal(st.http_status, 0);
    assert_null(reply);
    assert_non_null(st.message);
    assert_non_null(strstr(st.message, env->url));
    assert_non_null(strstr(st.message, "300 ms"));
    assert_int_equal(st.maybe_applied, rv == BULKUPSERT_DEADLINE_EXCEEDED);
    assert_true(took >= 250);
    assert_true(took < 2000);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// A 400 with field errors: status, numbers and errors come through, and
// the envelope named the method and carried the token and the request.
static void
test_submit_field_errors(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    Bulkupsert__V1__FieldError  fe[2] = { BULKUPSERT__V1__FIELD_ERROR__INIT,
         BULKUPSERT__V1__FIELD_ERROR__INIT };
    Bulkupsert__V1__FieldError *fep[2] = { &fe[0], &fe[1] };
    fe[0].has_record_index = 1;
    fe[0].record_index = 1;
    fe[0].contact_key = "c-2";
    fe[0].column = "email";
    fe[0].reason = "not a valid email address";
    fe[1].column = "nickname";
    fe[1].reason = "unknown column";
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.code = BULKUPSERT__V1__CODE__INVALID_ARGUMENT;
    wst.has_http_status = 1;
    wst.http_status = 400;
    wst.has_response_code = 1;
    wst.response_code = 11;
    wst.message = "2 records failed validation";
    wst.n_errors = 2;
    wst.errors = fep;
    fake_set_reply(&fs, &wst, NULL);
    fake_start(&fs, env, FAKE_REPLY, 1);

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_INVALID_ARGUMENT);
    assert_null(reply);
    assert_int_equal(st.code, BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(st.http_status, 400);
    assert_int_equal(st.response_code, 11);
    assert_string_equal(st.message, "2 records failed validation");
    assert_int_equal(st.nerrors, 2);
    assert_int_equal(st.errors[0].record_index, 1);
    assert_string_equal(st.errors[0].contact_key, "c-2");
    assert_string_equal(st.errors[0].column, "email");
    assert_string_equal(st.errors[0].reason, "not a valid email address");
    assert_int_equal(st.errors[1].record_index, -1);
    assert_null(st.errors[1].contact_key);
    assert_string_equal(st.errors[1].column, "nickname");

    // What the server saw.
    assert_int_equal(fs.served, 1);
    assert_false(fs.decode_failed);
    assert_string_equal(
        fs.method, "bulkupsert.v1.BulkUpsert/SubmitBulkUpsert");
    assert_true(fs.has_token);
    assert_string_equal(fs.token, TEST_TOKEN);
    assert_true(strlen(fs.request_id) > 0);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// The request payload decodes to what was submitted, flags included.
static void
test_submit_payload_round_trip(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.code = BULKUPSERT__V1__CODE__UNAUTHENTICATED;
    wst.has_http_status = 1;
    wst.http_status = 401;
    wst.message = "token expired";
    fake_set_reply(&fs, &wst, NULL);
    fake_start(&fs, env, FAKE_REPLY, 1);

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, NULL, 5000);
    assert_int_equal(bulkupsert_client_set_token(client, "second"), 0);
    int rv = bulkupsert_submit(client, &s.req, &reply, &st);
    fake_stop(&fs);

    assert_int_equal(rv, BULKUPSERT_UNAUTHENTICATED);
    assert_int_equal(st.http_status, 401);
    assert_string_equal(st.message, "token expired");
    assert_string_equal(fs.token, "second");

    Bulkupsert__V1__SubmitBulkUpsertRequest *got
        = bulkupsert__v1__submit_bulk_upsert_request__unpack(
            NULL, fs.payload_len, fs.payload);
    assert_non_null(got);
    assert_int_equal(got->n_columns, 2);
    assert_string_equal(got->columns[0], "contact_key");
    assert_string_equal(got->columns[1], "email_permission");
    assert_int_equal(got->n_contact_datas, 2);
    Bulkupsert__V1__Value **v0 = got->contact_datas[0]->values;
    Bulkupsert__V1__Value **v1 = got->contact_datas[1]->values;
    assert_int_equal(
        v0[0]->kind_case, BULKUPSERT__V1__VALUE__KIND_STRING_VALUE);
    assert_string_equal(v0[0]->string_value, "c-1");
    assert_int_equal(v0[1]->kind_case, BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE);
    assert_true(v0[1]->bool_value);
    assert_int_equal(v1[0]->kind_case, BULKUPSERT__V1__VALUE__KIND__NOT_SET);
    assert_int_equal(v1[1]->kind_case, BULKUPSERT__V1__VALUE__KIND_NULL_VALUE);
    assert_true(got->has_fail_on_error);
    assert_false(got->fail_on_error);
    assert_false(got->has_insert_if_not_exists);
    assert_true(got->insert_if_not_exists); // the proto2 default
    assert_string_equal(got->idempotency_key, "idem-1");
    bulkupsert__v1__submit_bulk_upsert_request__free_unpacked(got, NULL);

    fake_free(&fs);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// An OK reply hands back the decoded response, which the caller frees.
static void
test_submit_ok(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    Bulkupsert__V1__SubmitBulkUpsertResponse out
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_RESPONSE__INIT;
    out.job_id = "job-0001";
    out.has_total = 1;
    out.total = 2;
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.code = BULKUPSERT__V1__CODE__OK;
    wst.has_http_status = 1;
    wst.http_status = 202;
    wst.message = "accepted";
    fake_set_reply(&fs, &wst, &out.base);
    fake_start(&fs, env, FAKE_REPLY, 1);

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_OK);
    assert_int_equal(st.http_status, 202);
    assert_int_equal(st.nerrors, 0);
    assert_non_null(reply);
    assert_string_equal(reply->job_id, "job-0001");
    assert_int_equal(reply->total, 2);
    assert_false(reply->duplicate);
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

static void
test_get_job_ok(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;
    Bulkupsert__V1__Job     *job = NULL;

    Bulkupsert__V1__JobCounts counts = BULKUPSERT__V1__JOB_COUNTS__INIT;
    counts.has_total = counts.has_inserted = counts.has_failed = 1;
    counts.total = 3;
    counts.inserted = 2;
    counts.failed = 1;
    Bulkupsert__V1__Job out = BULKUPSERT__V1__JOB__INIT;
    out.job_id = "job-0002";
    out.has_state = 1;
    out.state = BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS;
    out.has_accepted_at_ms = 1;
    out.accepted_at_ms = 1700000000000;
    out.counts = &counts;
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.has_http_status = 1;
    wst.http_status = 200;
    fake_set_reply(&fs, &wst, &out.base);
    fake_start(&fs, env, FAKE_REPLY, 1);

    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "job-0002";
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_get_job(client, &req, &job, &st);
    fake_stop(&fs);

    assert_int_equal(rv, BULKUPSERT_OK);
    assert_string_equal(fs.method, "bulkupsert.v1.BulkUpsert/GetJob");
    Bulkupsert__V1__GetJobRequest *got
        = bulkupsert__v1__get_job_request__unpack(
            NULL, fs.payload_len, fs.payload);
    assert_non_null(got);
    assert_string_equal(got->job_id, "job-0002");
    bulkupsert__v1__get_job_request__free_unpacked(got, NULL);

    assert_non_null(job);
    assert_string_equal(job->job_id, "job-0002");
    assert_int_equal(job->state,
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS);
    assert_int_equal(job->accepted_at_ms, 1700000000000);
    assert_non_null(job->counts);
    assert_int_equal(job->counts->total, 3);
    assert_int_equal(job->counts->failed, 1);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    fake_free(&fs);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

static void
test_not_found_and_retry_after(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;
    Bulkupsert__V1__Job     *job = (Bulkupsert__V1__Job *) &st;

    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.code = BULKUPSERT__V1__CODE__RESOURCE_EXHAUSTED;
    wst.has_http_status = 1;
    wst.http_status = 429;
    wst.has_retry_after_ms = 1;
    wst.retry_after_ms = 750;
    fake_set_reply(&fs, &wst, NULL);
    fake_start(&fs, env, FAKE_REPLY, 1);

    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "nope";
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_get_job(client, &req, &job, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_RESOURCE_EXHAUSTED);
    assert_null(job);
    assert_int_equal(st.http_status, 429);
    assert_int_equal(st.retry_after_ms, 750);
    // An empty server message still gives a non-NULL one.
    assert_non_null(st.message);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

static void
test_garbage_reply_is_internal(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    fake_start(&fs, env, FAKE_GARBAGE, 1);
    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_INTERNAL);
    assert_null(reply);
    assert_non_null(strstr(st.message, "RpcResponse"));
    assert_int_equal(st.maybe_applied, 1); // what the server did is lost
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// OK status, but the payload is not a SubmitBulkUpsertResponse.
static void
test_bad_payload_is_internal(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.has_http_status = 1;
    wst.http_status = 202;
    Bulkupsert__V1__RpcResponse resp = BULKUPSERT__V1__RPC_RESPONSE__INIT;
    resp.status = &wst;
    resp.has_payload = 1;
    resp.payload.len = 3;
    resp.payload.data = (uint8_t *) "\x0a\xff\x01";
    fs.reply_len = protobuf_c_message_get_packed_size(&resp.base);
    fs.reply = malloc(fs.reply_len);
    assert_non_null(fs.reply);
    protobuf_c_message_pack(&resp.base, fs.reply);
    fake_start(&fs, env, FAKE_REPLY, 1);

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_INTERNAL);
    assert_null(reply);
    assert_non_null(strstr(st.message, "SubmitBulkUpsertResponse"));
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// The server takes the request and never answers: DEADLINE_EXCEEDED,
// within the timeout.
static void
test_silent_server_times_out(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    fs.hold_ms = 1500;
    fake_start(&fs, env, FAKE_SILENT, 1);
    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 400);
    int64_t            t0 = now_ms();
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    int64_t            took = now_ms() - t0;
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(fs.served, 1);
    assert_int_equal(rv, BULKUPSERT_DEADLINE_EXCEEDED);
    assert_null(reply);
    assert_non_null(strstr(st.message, "timed out after 400 ms"));
    assert_non_null(strstr(st.message, env->url));
    // The id the server got (and logs), to find the request by.
    char want[96];
    assert_int_equal(strlen(fs.request_id), 16);
    snprintf(want, sizeof(want), "request id %s)", fs.request_id);
    assert_non_null(strstr(st.message, want));
    assert_true(took >= 350);
    assert_true(took < 1400);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// The server drops the connection after the request: UNAVAILABLE at once,
// and the request is not sent again.
static void
test_dropped_connection_is_unavailable(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    fake_start(&fs, env, FAKE_DROP, 1);
    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 3000);
    int64_t            t0 = now_ms();
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    int64_t            took = now_ms() - t0;
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_UNAVAILABLE);
    assert_null(reply);
    assert_non_null(strstr(st.message, env->url));
    assert_int_equal(st.maybe_applied, 1);
    assert_true(took < 2500);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// The client opens before the server listens (lazy dial).
static void
test_server_starts_late(void **state)
{
    struct test_env                          *env = *state;
    struct fake_server                        fs = { 0 };
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    Bulkupsert__V1__SubmitBulkUpsertResponse out
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_RESPONSE__INIT;
    out.job_id = "job-late";
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_http_status = 1;
    wst.http_status = 202;
    fake_set_reply(&fs, &wst, &out.base);

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    fs.delay_ms = 300;
    fake_start(&fs, env, FAKE_REPLY, 1);
    int rv = bulkupsert_submit(client, &s.req, &reply, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(fs.listen_rv, 0);
    assert_int_equal(rv, BULKUPSERT_OK);
    assert_non_null(reply);
    assert_string_equal(reply->job_id, "job-late");
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

#define NCALLERS 8

struct caller {
    bulkupsert_client *client;
    int                rv;
    int                job_ok;
};

static void *
caller_main(void *arg)
{
    struct caller                            *c = arg;
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    sample_request_init(&s);
    c->rv = bulkupsert_submit(c->client, &s.req, &reply, &st);
    c->job_ok = reply != NULL && reply->job_id != NULL
        && strcmp(reply->job_id, "job-many") == 0;
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    bulkupsert_status_clear(&st);
    return NULL;
}

// One client, several threads calling at once: every call gets its reply.
static void
test_concurrent_calls(void **state)
{
    struct test_env   *env = *state;
    struct fake_server fs = { 0 };
    struct caller      callers[NCALLERS];
    pthread_t          threads[NCALLERS];

    Bulkupsert__V1__SubmitBulkUpsertResponse out
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_RESPONSE__INIT;
    out.job_id = "job-many";
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_http_status = 1;
    wst.http_status = 202;
    fake_set_reply(&fs, &wst, &out.base);
    fake_start(&fs, env, FAKE_REPLY, NCALLERS);

    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    for (int i = 0; i < NCALLERS; i++) {
        callers[i].client = client;
        callers[i].rv = -1;
        callers[i].job_ok = 0;
        assert_int_equal(
            pthread_create(&threads[i], NULL, caller_main, &callers[i]), 0);
    }
    for (int i = 0; i < NCALLERS; i++) {
        pthread_join(threads[i], NULL);
    }
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(fs.served, NCALLERS);
    for (int i = 0; i < NCALLERS; i++) {
        assert_int_equal(callers[i].rv, BULKUPSERT_OK);
        assert_true(callers[i].job_ok);
    }
    bulkupsert_client_close(client);
}

// A request with a NULL string inside is refused before anything is sent.
static void
test_incomplete_request_refused(void **state)
{
    struct test_env                          *env = *state;
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    sample_request_init(&s);
    s.columns[1] = NULL;
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 200);
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    assert_int_equal(rv, BULKUPSERT_INVALID_ARGUMENT);
    assert_null(reply);
    assert_non_null(strstr(st.message, "SubmitBulkUpsert"));
    bulkupsert_status_clear(&st);

    // No status wanted: still no crash, same code.
    rv = bulkupsert_submit(client, &s.req, &reply, NULL);
    assert_int_equal(rv, BULKUPSERT_INVALID_ARGUMENT);
    bulkupsert_client_close(client);
}

// A request past BULKUPSERT_MAX_REQUEST_BYTES is refused before anything
// is sent (the service would drop the connection without an answer):
// with no server listening, the answer is still INVALID_ARGUMENT, at once.
static void
test_oversized_request_refused(void **state)
{
    struct test_env                          *env = *state;
    struct sample_request                     s;
    struct bulkupsert_status                  st;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    sample_request_init(&s);
    size_t n = BULKUPSERT_MAX_REQUEST_BYTES + 1;
    char  *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    s.val[1].kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
    s.val[1].string_value = big;
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = bulkupsert_submit(client, &s.req, &reply, &st);
    assert_int_equal(rv, BULKUPSERT_INVALID_ARGUMENT);
    assert_null(reply);
    assert_non_null(strstr(st.message, "at most 41943040"));
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
    free(big);
}

// ---------------------------------------------------------------------
// Retry policy.

// A status as the server sends it: code, http status, retry hint.
static Bulkupsert__V1__Status
wire_status(int code, unsigned http, unsigned retry_after_ms)
{
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.code = code;
    wst.has_http_status = 1;
    wst.http_status = http;
    if (retry_after_ms > 0) {
        wst.has_retry_after_ms = 1;
        wst.retry_after_ms = retry_after_ms;
    }
    wst.message = "canned";
    return wst;
}

// Sets the fake's later reply to a 202 with job id "job-retry".
static void
fake_set_accepted(struct fake_server *fs)
{
    Bulkupsert__V1__SubmitBulkUpsertResponse out
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_RESPONSE__INIT;
    out.job_id = "job-retry";
    Bulkupsert__V1__Status ok = wire_status(0, 202, 0);
    fake_set_reply(fs, &ok, &out.base);
}

// Submits the sample request; returns the code, fills st and frees the
// reply (checking its job id on OK).
static int
submit_sample(bulkupsert_client *client, struct bulkupsert_status *st)
{
    struct sample_request                     s;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;

    sample_request_init(&s);
    int rv = bulkupsert_submit(client, &s.req, &reply, st);
    if (rv == BULKUPSERT_OK) {
        assert_non_null(reply);
        assert_string_equal(reply->job_id, "job-retry");
    } else {
        assert_null(reply);
    }
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    return rv;
}

// Which outcomes may be sent again, and the waits' arithmetic.
static void
test_retry_policy_rules(void **state)
{
    (void) state;
    struct bulkupsert_status st = { 0 };

    st.code = BULKUPSERT_RESOURCE_EXHAUSTED;
    st.http_status = 429;
    assert_true(bu__retry_safe(&st, 1));
    st.code = BULKUPSERT_UNAVAILABLE;
    st.http_status = 503;
    assert_true(bu__retry_safe(&st, 1));
    st.http_status = 0; // transport: safe only when nothing was sent
    assert_true(bu__retry_safe(&st, 0));
    assert_false(bu__retry_safe(&st, 1));
    st.code = BULKUPSERT_DEADLINE_EXCEEDED;
    assert_false(bu__retry_safe(&st, 1));
    assert_false(bu__retry_safe(&st, 0));
    int never[] = { BULKUPSERT_OK, BULKUPSERT_INTERNAL,
        BULKUPSERT_INVALID_ARGUMENT, BULKUPSERT_CANCELLED,
        BULKUPSERT_UNAUTHENTICATED, BULKUPSERT_NOT_FOUND };
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        st.code = never[i];
        st.http_status = 500;
        assert_false(bu__retry_safe(&st, 0));
    }

    // Defaults: base 100, cap 10000; jitter keeps it in [b/2, b].
    struct bulkupsert_retry p = { .max_retries = 3 };
    for (uint32_t r = 0; r < 1000; r += 7) {
        unsigned d1 = bu__retry_delay_ms(&p, 1, 0, r);
        unsigned d3 = bu__retry_delay_ms(&p, 3, 0, r);
        assert_in_range(d1, 50, 100);
        assert_in_range(d3, 200, 400);
        // Never earlier than the server asked.
        assert_in_range(bu__retry_delay_ms(&p, 1, 1000, r), 1050, 1100);
        // Capped, however many attempts, without overflow.
        assert_in_range(bu__retry_delay_ms(&p, 1000, 0, r), 5000, 10000);
    }
    struct bulkupsert_retry capped
        = { .max_retries = 1, .base_delay_ms = 40, .max_delay_ms = 500 };
    assert_int_equal(bu__retry_delay_ms(&capped, 1, 5000, 0), 500);
    assert_in_range(bu__retry_delay_ms(&capped, 2, 0, 12345), 40, 80);
}

// Retries are off until set: one 429, one attempt.
static void
test_retry_off_by_default(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    Bulkupsert__V1__Status busy = wire_status(8, 429, 20);
    fake_set_first(&fs, 1, &busy, NULL);
    fake_set_accepted(&fs);
    fake_start(&fs, env, FAKE_REPLY, 1);

    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    int                rv = submit_sample(client, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_RESOURCE_EXHAUSTED);
    assert_int_equal(st.retry_after_ms, 20);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(fs.served, 1);
    bulkupsert_status_clear(&st);

    // NULL turns a policy off again.
    struct bulkupsert_retry p = { .max_retries = 5 };
    bulkupsert_client_set_retry(client, &p);
    bulkupsert_client_set_retry(client, NULL);
    bulkupsert_client_close(client);
}

// Two 429s with retry_after_ms, then 202: three attempts, OK, and each
// wait at least what the server asked.
static void
test_retry_429_then_ok(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    Bulkupsert__V1__Status busy = wire_status(8, 429, 150);
    fake_set_first(&fs, 2, &busy, NULL);
    fake_set_accepted(&fs);
    fake_start(&fs, env, FAKE_REPLY, 3);

    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    struct bulkupsert_retry p = { .max_retries = 5, .base_delay_ms = 10 };
    bulkupsert_client_set_retry(client, &p);
    int rv = submit_sample(client, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_OK);
    assert_int_equal(st.http_status, 202);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(fs.served, 3);
    assert_true(fs.at_ms[1] - fs.at_ms[0] >= 150);
    assert_true(fs.at_ms[2] - fs.at_ms[1] >= 150);
    // The retries were the same request, token included.
    assert_string_equal(fs.token, TEST_TOKEN);
    assert_string_equal(fs.method, "bulkupsert.v1.BulkUpsert/SubmitBulkUpsert");
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// Always 429: max_retries + 1 attempts, then the last 429.
static void
test_retry_bound(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    Bulkupsert__V1__Status busy = wire_status(8, 429, 5);
    fake_set_reply(&fs, &busy, NULL);
    fake_start(&fs, env, FAKE_REPLY, 3);

    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    struct bulkupsert_retry p = { .max_retries = 2, .base_delay_ms = 5 };
    bulkupsert_client_set_retry(client, &p);
    int rv = submit_sample(client, &st);
    fake_stop(&fs);
    fake_free(&fs);

    // A fourth attempt would have found no server answering and ended in
    // another code.
    assert_int_equal(rv, BULKUPSERT_RESOURCE_EXHAUSTED);
    assert_int_equal(st.http_status, 429);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(fs.served, 3);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// A 503 (draining) is retried; a 500 is not.
static void
test_retry_503_not_500(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    Bulkupsert__V1__Status draining = wire_status(14, 503, 0);
    fake_set_first(&fs, 1, &draining, NULL);
    fake_set_accepted(&fs);
    fake_start(&fs, env, FAKE_REPLY, 2);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    struct bulkupsert_retry p = { .max_retries = 3, .base_delay_ms = 5 };
    bulkupsert_client_set_retry(client, &p);
    assert_int_equal(submit_sample(client, &st), BULKUPSERT_OK);
    assert_int_equal(st.attempts, 2);
    assert_int_equal(st.maybe_applied, 0);
    fake_stop(&fs);
    fake_free(&fs);
    assert_int_equal(fs.served, 2);
    bulkupsert_status_clear(&st);

    struct fake_server     fs2 = { 0 };
    Bulkupsert__V1__Status broken = wire_status(13, 500, 0);
    fake_set_reply(&fs2, &broken, NULL);
    fake_start(&fs2, env, FAKE_REPLY, 1);
    assert_int_equal(submit_sample(client, &st), BULKUPSERT_INTERNAL);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.maybe_applied, 0); // the server's answer
    fake_stop(&fs2);
    fake_free(&fs2);
    assert_int_equal(fs2.served, 1);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// The request was sent and no reply came: DEADLINE_EXCEEDED, never sent
// again, however generous the policy.
static void
test_no_retry_after_deadline(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    fs.hold_ms = 1200;
    fake_start(&fs, env, FAKE_SILENT, 1);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 300);
    struct bulkupsert_retry p = { .max_retries = 5, .base_delay_ms = 5 };
    bulkupsert_client_set_retry(client, &p);
    int rv = submit_sample(client, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_DEADLINE_EXCEEDED);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.maybe_applied, 1);
    assert_int_equal(fs.served, 1);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// Two 503s, then the connection breaks after the third attempt was taken:
// the call ends UNAVAILABLE after max_retries + 1 attempts, and says that
// the last one may have been applied (however many attempts that took).
static void
test_retry_503_then_dropped(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    Bulkupsert__V1__Status draining = wire_status(14, 503, 0);
    fake_set_reply(&fs, &draining, NULL);
    fs.drop_at = 3;
    fake_start(&fs, env, FAKE_REPLY, 3);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 3000);
    struct bulkupsert_retry p = { .max_retries = 2, .base_delay_ms = 5 };
    bulkupsert_client_set_retry(client, &p);
    int rv = submit_sample(client, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_UNAVAILABLE);
    assert_int_equal(st.http_status, 0);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.maybe_applied, 1);
    assert_non_null(strstr(st.message, "may have been applied"));
    assert_int_equal(fs.served, 3);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// No server yet: attempts time out unsent (UNAVAILABLE), which is safe to
// retry, until the server is up.
static void
test_retry_until_server_up(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct bulkupsert_status st;

    fake_set_accepted(&fs);
    // An attempt whose request leaves as the server comes up, in its last
    // few milliseconds, ends DEADLINE_EXCEEDED (rightly: it may have been
    // applied); a long attempt makes that rare (it happened once with
    // 200 ms under load).
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 1000);
    struct bulkupsert_retry p
        = { .max_retries = 100, .base_delay_ms = 20, .max_delay_ms = 100 };
    bulkupsert_client_set_retry(client, &p);
    fs.delay_ms = 2500; // far past the first attempt's 1000 ms
    fake_start(&fs, env, FAKE_REPLY, 1);
    int rv = submit_sample(client, &st);
    fake_stop(&fs);
    fake_free(&fs);

    assert_int_equal(rv, BULKUPSERT_OK);
    assert_true(st.attempts >= 2);
    assert_int_equal(st.maybe_applied, 0);
    assert_int_equal(fs.served, 1);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(client);
}

// ---------------------------------------------------------------------
// Asynchronous calls.

#define NASYNC 8

// What the done callbacks saw, under mtx.
struct async_log {
    pthread_mutex_t mtx;
    pthread_cond_t  cv;
    int             ndone;
    int             codes[NASYNC];
    int             job_ok[NASYNC];
    int             freed_in_callback;
};

struct async_slot {
    struct async_log *log;
    int               index;
    int               free_here; // the callback frees its call
};

static void
async_log_init(struct async_log *log)
{
    memset(log, 0, sizeof(*log));
    pthread_mutex_init(&log->mtx, NULL);
    pthread_cond_init(&log->cv, NULL);
    for (int i = 0; i < NASYNC; i++) {
        log->codes[i] = -1;
    }
}

static void
async_log_fini(struct async_log *log)
{
    pthread_cond_destroy(&log->cv);
    pthread_mutex_destroy(&log->mtx);
}

// Waits until n callbacks have run (or 10 s pass); returns how many ran.
static int
async_log_wait(struct async_log *log, int n)
{
    int64_t deadline = now_ms() + 10000;
    pthread_mutex_lock(&log->mtx);
    while (log->ndone < n && now_ms() < deadline) {
        pthread_mutex_unlock(&log->mtx);
        nng_msleep(5);
        pthread_mutex_lock(&log->mtx);
    }
    int ndone = log->ndone;
    pthread_mutex_unlock(&log->mtx);
    return ndone;
}

// A done callback, on an nng thread: takes the result, records it, and
// frees the call when the slot says so.
static void
async_done(bulkupsert_call *call, void *arg)
{
    struct async_slot       *slot = arg;
    struct async_log        *log = slot->log;
    struct bulkupsert_status st;
    ProtobufCMessage        *reply = NULL;

    int poll = bulkupsert_call_poll(call);
    int rv = bulkupsert_call_result(call, &reply, &st);
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp
        = (Bulkupsert__V1__SubmitBulkUpsertResponse *) reply;
    int ok = poll == 1 && resp != NULL && resp->job_id != NULL
        && strcmp(resp->job_id, "job-retry") == 0;
    if (reply != NULL) {
        protobuf_c_message_free_unpacked(reply, NULL);
    }
    bulkupsert_status_clear(&st);
    if (slot->free_here) {
        bulkupsert_call_free(call);
    }
    pthread_mutex_lock(&log->mtx);
    log->codes[slot->index] = rv;
    log->job_ok[slot->index] = ok;
    log->freed_in_callback += slot->free_here;
    log->ndone++;
    pthread_mutex_unlock(&log->mtx);
}

// Eight submits in flight at once from one thread, each completing through
// its callback; half free their call in the callback, half are freed here.
static void
test_async_callbacks(void **state)
{
    struct test_env      *env = *state;
    struct fake_server    fs = { 0 };
    struct sample_request s;
    struct async_log      log;
    struct async_slot     slots[NASYNC];
    bulkupsert_call      *calls[NASYNC];

    fake_set_accepted(&fs);
    fake_start(&fs, env, FAKE_REPLY, NASYNC);
    async_log_init(&log);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    for (int i = 0; i < NASYNC; i++) {
        // A request of its own, gone before the call completes: the call
        // packed it.
        sample_request_init(&s);
        slots[i] = (struct async_slot) {
            .log = &log, .index = i, .free_here = i % 2 };
        assert_int_equal(bulkupsert_submit_async(
                             client, &s.req, async_done, &slots[i], &calls[i]),
            0);
        memset(&s, 0, sizeof(s));
    }
    assert_int_equal(async_log_wait(&log, NASYNC), NASYNC);
    for (int i = 0; i < NASYNC; i++) {
        assert_int_equal(log.codes[i], BULKUPSERT_OK);
        assert_true(log.job_ok[i]);
        if (i % 2 == 0) {
            assert_true(bulkupsert_call_poll(calls[i]));
            // The result moved out in the callback.
            assert_int_equal(
                bulkupsert_call_result(calls[i], NULL, NULL), BULKUPSERT_OK);
            bulkupsert_call_free(calls[i]);
        }
    }
    assert_int_equal(log.freed_in_callback, NASYNC / 2);
    bulkupsert_client_close(client);
    fake_stop(&fs);
    fake_free(&fs);
    assert_int_equal(fs.served, NASYNC);
    async_log_fini(&log);
}

// No callback: the caller polls, then takes the typed result.
static void
test_async_poll(void **state)
{
    struct test_env *env = *state;
    struct fake_server fs = { 0 };

    Bulkupsert__V1__Job out = BULKUPSERT__V1__JOB__INIT;
    out.job_id = "job-poll";
    out.has_state = 1;
    out.state = BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING;
    Bulkupsert__V1__Status ok = wire_status(0, 200, 0);
    fake_set_reply(&fs, &ok, &out.base);
    fake_start(&fs, env, FAKE_REPLY, 1);

    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "job-poll";
    bulkupsert_call *call = NULL;
    assert_int_equal(
        bulkupsert_get_job_async(client, &req, NULL, NULL, &call), 0);
    int64_t deadline = now_ms() + 10000;
    while (!bulkupsert_call_poll(call) && now_ms() < deadline) {
        nng_msleep(2);
    }
    assert_true(bulkupsert_call_poll(call));
    ProtobufCMessage        *reply = NULL;
    struct bulkupsert_status st;
    assert_int_equal(bulkupsert_call_result(call, &reply, &st), 0);
    assert_int_equal(st.http_status, 200);
    assert_int_equal(st.attempts, 1);
    Bulkupsert__V1__Job *job = (Bulkupsert__V1__Job *) reply;
    assert_non_null(job);
    assert_string_equal(job->job_id, "job-poll");
    assert_int_equal(job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_RUNNING);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    bulkupsert_status_clear(&st);

    // A second take: same code, nothing else.
    reply = (ProtobufCMessage *) &st;
    assert_int_equal(bulkupsert_call_result(call, &reply, &st), 0);
    assert_null(reply);
    assert_int_equal(st.nerrors, 0);
    bulkupsert_status_clear(&st);
    bulkupsert_call_free(call);
    fake_stop(&fs);
    fake_free(&fs);
    assert_string_equal(fs.method, "bulkupsert.v1.BulkUpsert/GetJob");
    bulkupsert_client_close(client);
}

// Start errors come back at once and never run the callback; a request
// the library cannot pack completes the call with INVALID_ARGUMENT.
static void
test_async_start_errors(void **state)
{
    struct test_env      *env = *state;
    struct sample_request s;
    struct async_log      log;
    struct async_slot     slot = { .log = &log, .index = 0 };
    bulkupsert_call      *call = (bulkupsert_call *) &slot;

    async_log_init(&log);
    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    assert_int_equal(bulkupsert_submit_async(NULL, &s.req, async_done, &slot,
                         &call),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(
        bulkupsert_submit_async(client, NULL, async_done, &slot, &call),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(
        bulkupsert_submit_async(client, &s.req, async_done, &slot, NULL),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_ptr_equal(call, (bulkupsert_call *) &slot);
    // A method that takes another message.
    assert_int_equal(
        bulkupsert_call_start(client, "GetJob", &s.req.base, NULL, NULL, &call),
        0);
    struct bulkupsert_status st;
    assert_int_equal(bulkupsert_call_result(call, NULL, &st),
        BULKUPSERT_INVALID_ARGUMENT);
    assert_non_null(strstr(st.message, "not a method"));
    assert_int_equal(st.attempts, 0);
    bulkupsert_status_clear(&st);
    bulkupsert_call_free(call);

    s.columns[1] = NULL;
    assert_int_equal(
        bulkupsert_submit_async(client, &s.req, async_done, &slot, &call), 0);
    assert_int_equal(async_log_wait(&log, 1), 1);
    assert_int_equal(log.codes[0], BULKUPSERT_INVALID_ARGUMENT);
    bulkupsert_call_free(call);
    bulkupsert_client_close(client);
    async_log_fini(&log);
}

// Cancel before the request could go (no server), and after it went
// (a silent server): CANCELLED, with the message telling the two apart.
static void
test_async_cancel(void **state)
{
    struct test_env         *env = *state;
    struct sample_request    s;
    struct bulkupsert_status st;
    bulkupsert_call         *call;

    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 30000);
    assert_int_equal(bulkupsert_submit_async(client, &s.req, NULL, NULL, &call),
        0);
    bulkupsert_call_cancel(call);
    bulkupsert_call_cancel(call); // twice is harmless
    assert_int_equal(
        bulkupsert_call_result(call, NULL, &st), BULKUPSERT_CANCELLED);
    assert_non_null(strstr(st.message, "before the request was sent"));
    assert_int_equal(st.maybe_applied, 0);
    bulkupsert_status_clear(&st);
    bulkupsert_call_cancel(call); // and after completion too
    bulkupsert_call_free(call);

    struct fake_server fs = { 0 };
    fs.hold_ms = 1000;
    fake_start(&fs, env, FAKE_SILENT, 1);
    assert_int_equal(bulkupsert_submit_async(client, &s.req, NULL, NULL, &call),
        0);
    assert_int_equal(fake_wait_served(&fs, 1), 1);
    // The server has the request, so it was sent.
    bulkupsert_call_cancel(call);
    int rv = bulkupsert_call_result(call, NULL, &st);
    assert_int_equal(rv, BULKUPSERT_CANCELLED);
    assert_non_null(strstr(st.message, "may have been applied"));
    assert_int_equal(st.maybe_applied, 1);
    bulkupsert_status_clear(&st);
    bulkupsert_call_free(call);
    fake_stop(&fs);
    fake_free(&fs);
    bulkupsert_client_close(client);
}

// A cancel during the wait before a retry ends the wait: the server asks
// for 20 s, the call is done long before.
static void
test_async_cancel_retry_wait(void **state)
{
    struct test_env         *env = *state;
    struct fake_server       fs = { 0 };
    struct sample_request    s;
    struct bulkupsert_status st;
    bulkupsert_call         *call;

    Bulkupsert__V1__Status busy = wire_status(8, 429, 20000);
    fake_set_reply(&fs, &busy, NULL);
    fake_start(&fs, env, FAKE_REPLY, 1);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 5000);
    struct bulkupsert_retry p = { .max_retries = 1, .max_delay_ms = 60000 };
    bulkupsert_client_set_retry(client, &p);
    sample_request_init(&s);
    assert_int_equal(bulkupsert_submit_async(client, &s.req, NULL, NULL, &call),
        0);
    assert_int_equal(fake_wait_served(&fs, 1), 1);
    nng_msleep(200); // the reply is most likely in, the wait begun
    int64_t t0 = now_ms();
    bulkupsert_call_cancel(call);
    int rv = bulkupsert_call_result(call, NULL, &st);
    // If the cancel beat the reply, the reply still wins (429) or the
    // call is cancelled after sending; both end the call, not 20 s later.
    assert_true(rv == BULKUPSERT_CANCELLED
        || rv == BULKUPSERT_RESOURCE_EXHAUSTED);
    assert_true(now_ms() - t0 < 10000);
    assert_int_equal(st.attempts, 1);
    bulkupsert_status_clear(&st);
    bulkupsert_call_free(call);
    fake_stop(&fs);
    fake_free(&fs);
    assert_int_equal(fs.served, 1);
    bulkupsert_client_close(client);
}

// Close with calls in flight: each completes with CANCELLED and its
// callback has run once when close returns; a call freed before that gets
// no callback; polled handles stay valid after close.
static void
test_close_with_calls_in_flight(void **state)
{
    struct test_env      *env = *state;
    struct fake_server    fs = { 0 };
    struct sample_request s;
    struct async_log      log;
    struct async_slot     slots[NASYNC];
    bulkupsert_call      *calls[NASYNC];

    fs.hold_ms = 1500;
    fake_start(&fs, env, FAKE_SILENT, 1);
    async_log_init(&log);
    sample_request_init(&s);
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 30000);
    // 0..4 with a callback, 5 with a callback but freed at once, 6 and 7
    // polled.
    for (int i = 0; i < NASYNC; i++) {
        slots[i] = (struct async_slot) { .log = &log, .index = i };
        assert_int_equal(bulkupsert_submit_async(client, &s.req,
                             i < 6 ? async_done : NULL, &slots[i], &calls[i]),
            0);
    }
    bulkupsert_call_free(calls[5]);
    assert_int_equal(fake_wait_served(&fs, 1), 1);

    bulkupsert_client_close(client);
    pthread_mutex_lock(&log.mtx);
    int ndone = log.ndone;
    pthread_mutex_unlock(&log.mtx);
    assert_int_equal(ndone, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(log.codes[i], BULKUPSERT_CANCELLED);
        bulkupsert_call_free(calls[i]);
    }
    assert_int_equal(log.codes[5], -1);
    for (int i = 6; i < NASYNC; i++) {
        struct bulkupsert_status st;
        assert_true(bulkupsert_call_poll(calls[i]));
        assert_int_equal(
            bulkupsert_call_result(calls[i], NULL, &st), BULKUPSERT_CANCELLED);
        bulkupsert_status_clear(&st);
        bulkupsert_call_free(calls[i]);
    }
    fake_stop(&fs);
    fake_free(&fs);
    async_log_fini(&log);
}


// Many calls whose sends time out at once, with no server: each ends
// UNAVAILABLE. (The redial once closed the old dialer on an nng thread,
// which waits for nng's threads: with every one of them waiting there,
// these calls never returned.)
struct nosrv_arg {
    bulkupsert_client *client;
    int                codes[4];
};

static void *
nosrv_main(void *arg)
{
    struct nosrv_arg             *a = arg;
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "x";
    for (int i = 0; i < 4; i++) {
        Bulkupsert__V1__Job     *job = NULL;
        struct bulkupsert_status st = { 0 };
        a->codes[i] = bulkupsert_get_job(a->client, &req, &job, &st);
        bulkupsert_status_clear(&st);
    }
    return NULL;
}

static void
test_no_server_many_timeouts_at_once(void **state)
{
    struct test_env   *env = *state;
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 150);
    enum { NTHREADS = 16 };
    pthread_t        threads[NTHREADS];
    struct nosrv_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t].client = client;
        assert_int_equal(
            pthread_create(&threads[t], NULL, nosrv_main, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(args[t].codes[i], BULKUPSERT_UNAVAILABLE);
        }
    }
    bulkupsert_client_close(client);
}

// bulkupsert_call_free tells whether the done callback runs: 1 for a call
// that completed (its callback ran), 0 for one freed before completing,
// whose callback then never runs.
static void
count_done(bulkupsert_call *call, void *arg)
{
    (void) call;
    __atomic_add_fetch((int *) arg, 1, __ATOMIC_SEQ_CST);
}

static void
test_async_free_says_whether_done_runs(void **state)
{
    struct test_env              *env = *state;
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "x";
    int                done = 0;
    bulkupsert_call   *call = NULL;
    bulkupsert_client *client = open_client(env->url, TEST_TOKEN, 100);

    assert_int_equal(
        bulkupsert_get_job_async(client, &req, count_done, &done, &call), 0);
    bulkupsert_call_wait(call);
    while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) == 0) {
        nng_msleep(1); // the callback runs after the waiters wake
    }
    assert_int_equal(bulkupsert_call_free(call), 1);

    bulkupsert_client_set_timeout(client, 60000);
    assert_int_equal(
        bulkupsert_get_job_async(client, &req, count_done, &done, &call), 0);
    assert_int_equal(bulkupsert_call_free(call), 0);
    // close waits for every call to complete and its callback to return.
    bulkupsert_client_close(client);
    assert_int_equal(done, 1);
    assert_int_equal(bulkupsert_call_free(NULL), 0);
}

// A reply that comes just as the call times out, then the client closes at
// once and the call is freed after it, many times over, on a few threads
// at once. nng 1.5.2 expires an aio's timeout on its own thread and calls
// the protocol's cancel function (which locks the socket) after letting go
// of its lock: when the reply won that race, the call finished, its
// context closed and the socket went with the client while the expiry
// thread was still on its way to them (a use after free, seen as "panic:
// pthread_mutex_lock: Invalid argument"). Freeing the call last matters:
// reaping its aio waits for the expiry, and the close of the socket waits
// for the reaper. Every round ends with a reply or a timeout, and nothing
// crashes.
enum { STRESS_THREADS = 4, STRESS_ROUNDS = 300, STRESS_TIMEOUT_MS = 20 };

struct stress_arg {
    char url[160];
    int  nok, nlate, nunsent, nbad;
};

static void *
stress_main(void *arg)
{
    struct stress_arg            *a = arg;
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "job-1";

    for (int r = 0; r < STRESS_ROUNDS; r++) {
        Bulkupsert__V1__Job     *got = NULL;
        struct bulkupsert_status st = { 0 };
        bulkupsert_client       *client = NULL;
        if (bulkupsert_client_open(&client, a->url, NULL) != 0) {
            a->nbad++;
            continue;
        }
        bulkupsert_client_set_timeout(client, STRESS_TIMEOUT_MS);
        // The call is freed after the client closes: nothing else (its aio
        // being reaped) holds up the close of the socket.
        bulkupsert_call *call = NULL;
        if (bulkupsert_get_job_async(client, &req, NULL, NULL, &call) != 0) {
            bulkupsert_client_close(client);
            a->nbad++;
            continue;
        }
        bulkupsert_call_wait(call);
        bulkupsert_client_close(client);
        int rv = bulkupsert_call_result(call, (ProtobufCMessage **) &got, &st);
        bulkupsert_call_free(call);
        if (rv == BULKUPSERT_OK && got != NULL) {
            bulkupsert__v1__job__free_unpacked(got, NULL);
            a->nok++;
        } else if (rv == BULKUPSERT_DEADLINE_EXCEEDED && st.maybe_applied) {
            a->nlate++;
        } else if (rv == BULKUPSERT_UNAVAILABLE && !st.maybe_applied) {
            a->nunsent++; // under load the send may find no connection
        } else {
            a->nbad++;
        }
        bulkupsert_status_clear(&st);
    }
    return NULL;
}

static void
test_reply_at_deadline_then_close(void **state)
{
    (void) state;
    struct fake_server fs[STRESS_THREADS];
    struct stress_arg  args[STRESS_THREADS];
    pthread_t          threads[STRESS_THREADS];
    int                nok = 0, nlate = 0, nunsent = 0;

    Bulkupsert__V1__Job job = BULKUPSERT__V1__JOB__INIT;
    job.job_id = "job-1";
    Bulkupsert__V1__Status wst = BULKUPSERT__V1__STATUS__INIT;
    wst.has_code = 1;
    wst.code = BULKUPSERT__V1__CODE__OK;
    memset(fs, 0, sizeof(fs));
    memset(args, 0, sizeof(args));
    for (int t = 0; t < STRESS_THREADS; t++) {
        struct test_env env;
        // inproc: nng 1.5.2's ipc transport can hang closing a pipe while
        // a reply is coming in (req0_pipe_stop waits for a receive that
        // the closed pipe never finishes), which this test would hit too.
        snprintf(env.url, sizeof(env.url), "inproc://bu-client-stress-%d-%d",
            (int) getpid(), t);
        snprintf(args[t].url, sizeof(args[t].url), "%s", env.url);
        fake_set_reply(&fs[t], &wst, &job.base);
        fs[t].reply_ms = STRESS_TIMEOUT_MS;
        fs[t].untimed = 1; // closed below from this thread
        fs[t].jitter_ms = 3;
        fake_start(&fs[t], &env, FAKE_REPLY, 1000000);
    }
    int started = 0;
    while (started < STRESS_THREADS
        && pthread_create(&threads[started], NULL, stress_main, &args[started])
            == 0) {
        started++;
    }
    // Every thread and server ends before anything is asserted: a failed
    // assertion leaves the function, and they use its frame.
    int nbad = STRESS_THREADS - started;
    for (int t = 0; t < STRESS_THREADS; t++) {
        if (t < started && pthread_join(threads[t], NULL) != 0) {
            nbad++;
        }
        // The server may be asleep before a reply nobody waits for.
        nng_close(fs[t].sock);
        fake_stop(&fs[t]);
        fake_free(&fs[t]);
        nbad += args[t].nbad;
        nok += args[t].nok;
        nlate += args[t].nlate;
        nunsent += args[t].nunsent;
    }
    assert_int_equal(nbad, 0);
    print_message("%d replies, %d timeouts after sending, %d before\n", nok,
        nlate, nunsent);
}

int
main(void)
{
    // nng 1.x initialises itself on first use and races if two threads do
    // that at once; do it here, before any test thread exists.
    nng_socket warm;
    if (nng_req0_open(&warm) == 0) {
        nng_close(warm);
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_bad_url),
        cmocka_unit_test(test_close_null),
        cmocka_unit_test(test_code_names),
        cmocka_unit_test_setup_teardown(
            test_no_server_fails_in_time, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_field_errors, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_payload_round_trip, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_submit_ok, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_get_job_ok, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_not_found_and_retry_after, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_garbage_reply_is_internal, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_bad_payload_is_internal, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_silent_server_times_out, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_dropped_connection_is_unavailable, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_server_starts_late, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_concurrent_calls, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_incomplete_request_refused, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_oversized_request_refused, env_setup, env_teardown),
        cmocka_unit_test(test_retry_policy_rules),
        cmocka_unit_test_setup_teardown(
            test_retry_off_by_default, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_retry_429_then_ok, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_retry_bound, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_retry_503_not_500, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_no_retry_after_deadline, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_retry_503_then_dropped, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_retry_until_server_up, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_async_callbacks, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_async_poll, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_async_start_errors, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_async_cancel, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_async_cancel_retry_wait, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_close_with_calls_in_flight, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_no_server_many_timeouts_at_once, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_async_free_says_whether_done_runs, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_reply_at_deadline_then_close, env_setup, env_teardown),
    };
    // CLIENT_TEST_ONLY=pattern runs only the tests whose names match.
    const char *only = getenv("CLIENT_TEST_ONLY");
    if (only != NULL && only[0] != '\0') {
        cmocka_set_test_filter(only);
    }
    int failed = cmocka_run_group_tests_name("client", tests, NULL, NULL);
    nng_fini();
    return failed;
}
