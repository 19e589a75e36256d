// SPDX-License-Identifier: MIT
/*
 * Tests of the RPC transport on a scratch ipc:// path: a handler that
 * queues each call to replier threads, which answer with the reversed
 * body (or drop or hold the call on request); concurrent req0 clients; a
 * frame over max_msg_bytes gets no reply and never reaches the handler
 * while the server keeps answering; dropped calls give their context back;
 * start errors; and close with a call still held by the handler, then
 * free, clean under the sanitizers. Client threads record what they saw
 * and the main thread asserts.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/queue.h"
#include "rpc/server.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_MSG 1024
#define NCONTEXTS 4
#define NREPLIERS 2
// Bounded wait for replies that must come.
#define REPLY_WAIT_MS 30000
// How long to listen for a reply that must not come. A wrong reply would
// arrive in microseconds; the length only bounds the test's run time.
#define SILENCE_MS 300

// ---- the server side ----

struct srv {
    char dir[64];
    char url[128];
    struct bu_rpc_server *server;
    struct bu_queue q; // calls handed over by the handler
    pthread_t repliers[NREPLIERS];
    atomic_int ncalls; // handler invocations
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bu_rpc_call *held; // guarded by mu: a call kept unanswered
};

static bool
body_is(const void *body, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(body, word, len) == 0;
}

// srv_handler runs on nng's callback threads: it never blocks. Bodies
// starting with "inline:" are answered right here; the rest are queued.
static void
srv_handler(void *arg, struct bu_rpc_call *call)
{
    struct srv *s = arg;
    atomic_fetch_add(&s->ncalls, 1);
    size_t len;
    const char *body = bu_rpc_call_body(call, &len);
    if (len >= 7 && memcmp(body, "inline:", 7) == 0) {
        bu_rpc_call_reply(call, body, len);
        return;
    }
    if (bu_queue_put(&s->q, bu_rpc_call_qnode(call)) != BU_OK) {
        bu_rpc_call_drop(call);
    }
}

static void *
srv_replier(void *arg)
{
    struct srv *s = arg;
    struct bu_qnode *node;
    while ((node = bu_queue_get(&s->q)) != NULL) {
        struct bu_rpc_call *call = bu_rpc_call_of(node);
        size_t len;
        const char *body = bu_rpc_call_body(call, &len);
        if (body_is(body, len, "drop")) {
            bu_rpc_call_drop(call);
            continue;
        }
        if (body_is(body, len, "hold")) {
            pthread_mutex_lock(&s->mu);
            s->held = call;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        char *rev = malloc(len + 1);
        if (rev == NULL) {
            bu_rpc_call_drop(call);
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            rev[i] = body[len - 1 - i];
        }
        bu_rpc_call_reply(call, rev, len);
        free(rev);
    }
    return NULL;
}

static int
srv_setup(void **state)
{
    struct srv *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    snprintf(s->dir, sizeof(s->dir), "/tmp/bu-rpc-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        free(s);
        return -1;
    }
    snprintf(s->url, sizeof(s->url), "ipc://%s/rpc.sock", s->dir);
    atomic_init(&s->ncalls, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (bu_queue_init(&s->q) != BU_OK) {
        return -1;
    }
    for (int i = 0; i < NREPLIERS; i++) {
        if (pthread_create(&s->repliers[i], NULL, srv_replier, s) != 0) {
            return -1;
        }
    }
    const char *urls[] = { s->url };
    struct bu_rpc_server_config cfg = {
        .urls = urls,
        .nurls = 1,
        .ncontexts = NCONTEXTS,
        .max_msg_bytes = MAX_MSG,
        .handler = srv_handler,
        .arg = s,
    };
    if (bu_rpc_server_start(&s->server, &cfg) != BU_OK) {
        return -1;
    }
    *state = s;
    return 0;
}

// srv_teardown closes the server, answers a call still held (the reply
// goes nowhere), stops the repliers and frees everything.
static int
srv_teardown(void **state)
{
    struct srv *s = *state;
    bu_rpc_server_close(s->server);
    bu_rpc_server_close(s->server); // idempotent
    pthread_mutex_lock(&s->mu);
    struct bu_rpc_call *held = s->held;
    s->held = NULL;
    pthread_mutex_unlock(&s->mu);
    if (held != NULL) {
        bu_rpc_call_reply(held, "late", 4);
    }
    bu_queue_close(&s->q);
    for (int i = 0; i < NREPLIERS; i++) {
        pthread_join(s->repliers[i], NULL);
    }
    bu_rpc_server_free(s->server);
    bu_queue_fini(&s->q);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    int rc = system(cmd);
    free(s);
    return rc == 0 ? 0 : -1;
}

// ---- the client side ----

static int
client_open(nng_socket *sockp, const char *url, int recv_timeout_ms)
{
    int rv = nng_req0_open(sockp);
    if (rv == 0) {
        rv = nng_socket_set_ms(*sockp, NNG_OPT_RECVTIMEO, recv_timeout_ms);
    }
    if (rv == 0) {
        rv = nng_socket_set_ms(*sockp, NNG_OPT_SENDTIMEO, REPLY_WAIT_MS);
    }
    if (rv == 0) {
        rv = nng_dial(*sockp, url, NULL, 0);
    }
    return rv;
}

// roundtrip sends len bytes and receives the reply into buf (at most cap
// bytes; *np gets the reply's length). Returns an nng error code.
static int
roundtrip(nng_socket sock, const void *data, size_t len, char *buf,
    size_t cap, size_t *np)
{
    int rv = nng_send(sock, (void *) data, len, 0);
    if (rv != 0) {
        return rv;
    }
    char *reply = NULL;
    size_t n = 0;
    rv = nng_recv(sock, &reply, &n, NNG_FLAG_ALLOC);
    if (rv != 0) {
        return rv;
    }
    *np = n;
    if (n > 0) { // an empty reply comes back as NULL
        memcpy(buf, reply, n < cap ? n : cap);
    }
    nng_free(reply, n);
    return 0;
}

// expect_reversed checks one request's reply on sock.
static void
expect_reversed(nng_socket sock, const char *text)
{
    char buf[256];
    size_t n = 0;
    size_t len = strlen(text);
    int rv = roundtrip(sock, text, len, buf, sizeof(buf), &n);
    if (rv != 0) {
        fail_msg("\"%s\": %s", text, nng_strerror(rv));
    }
    assert_int_equal(n, len);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(buf[i], text[len - 1 - i]);
    }
}

// ---- tests ----

static void
test_rpc_echo(void **state)
{
    struct srv *s = *state;
    nng_socket c;
    char buf[MAX_MSG];
    size_t n = 99;

    assert_int_equal(client_open(&c, s->url, REPLY_WAIT_MS), 0);
    expect_reversed(c, "hello");
    expect_reversed(c, "a");
    // An empty request gets an empty reply.
    assert_int_equal(roundtrip(c, "", 0, buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 0);
    // Answered inside the handler callback itself.
    assert_int_equal(roundtrip(c, "inline:x", 8, buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "inline:x", 8);
    // A frame comfortably under the limit (the req header counts too).
    static char big[MAX_MSG - 64];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (char) ('a' + i % 26);
    }
    assert_int_equal(roundtrip(c, big, sizeof(big), buf, sizeof(buf), &n),
        0);
    assert_int_equal(n, sizeof(big));
    assert_int_equal(buf[0], big[sizeof(big) - 1]);
    assert_int_equal(buf[sizeof(big) - 1], big[0]);
    nng_close(c);
    assert_int_equal(atomic_load(&s->ncalls), 5);
}

#define NCLIENTS 8
#define NPER 25

struct client_arg {
    const char *url;
    int index;
    int ok;      // replies that matched
    int bad;     // replies that did not
    int err;     // the first nng error, if any
};

static void *
client_main(void *arg)
{
    struct client_arg *a = arg;
    nng_socket c;
    int rv = client_open(&c, a->url, REPLY_WAIT_MS);
    if (rv != 0) {
        a->err = rv;
        return NULL;
    }
    for (int i = 0; i < NPER; i++) {
        char text[64], buf[64];
        size_t n = 0;
        int len = snprintf(text, sizeof(text), "client %d request %d",
            a->index, i);
        rv = roundtrip(c, text, (size_t) len, buf, sizeof(buf), &n);
        if (rv != 0) {
            a->err = rv;
            break;
        }
        bool same = n == (size_t) len;
        for (int k = 0; same && k < len; k++) {
            same = buf[k] == text[len - 1 - k];
        }
        if (same) {
            a->ok++;
        } else {
            a->bad++;
        }
    }
    nng_close(c);
    return NULL;
}

static void
test_rpc_concurrent(void **state)
{
    struct srv *s = *state;
    pthread_t t[NCLIENTS];
    struct client_arg args[NCLIENTS];

    // More clients than contexts: requests wait for a free context.
    for (int i = 0; i < NCLIENTS; i++) {
        args[i] = (struct client_arg) { .url = s->url, .index = i };
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &args[i]),
            0);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        if (args[i].err != 0) {
            fail_msg("client %d: %s", i, nng_strerror(args[i].err));
        }
        assert_int_equal(args[i].bad, 0);
        assert_int_equal(args[i].ok, NPER);
    }
    assert_int_equal(atomic_load(&s->ncalls), NCLIENTS * NPER);
}

static void
test_rpc_oversize_frame(void **state)
{
    struct srv *s = *state;
    nng_socket c, c2;
    char buf[64];
    size_t n = 0;
    static char huge[2 * MAX_MSG];
    memset(huge, 'x', sizeof(huge));

    assert_int_equal(client_open(&c, s->url, SILENCE_MS), 0);
    expect_reversed(c, "before");
    int before = atomic_load(&s->ncalls);
    // No reply, and the handler never sees it.
    assert_int_equal(roundtrip(c, huge, sizeof(huge), buf, sizeof(buf), &n),
        NNG_ETIMEDOUT);
    assert_int_equal(atomic_load(&s->ncalls), before);

    // The server keeps answering: a new connection...
    assert_int_equal(client_open(&c2, s->url, REPLY_WAIT_MS), 0);
    expect_reversed(c2, "after");
    // ...and the dropped one once it has redialled.
    assert_int_equal(
        nng_socket_set_ms(c, NNG_OPT_RECVTIMEO, REPLY_WAIT_MS), 0);
    expect_reversed(c, "again");
    nng_close(c);
    nng_close(c2);
    assert_int_equal(atomic_load(&s->ncalls), before + 2);
}

static void
test_rpc_drop_returns_context(void **state)
{
    struct srv *s = *state;
    nng_socket c;
    char buf[64];
    size_t n = 0;

    assert_int_equal(client_open(&c, s->url, SILENCE_MS), 0);
    // More drops than there are contexts: each one must come back.
    for (int i = 0; i < NCONTEXTS + 2; i++) {
        assert_int_equal(roundtrip(c, "drop", 4, buf, sizeof(buf), &n),
            NNG_ETIMEDOUT);
    }
    assert_int_equal(
        nng_socket_set_ms(c, NNG_OPT_RECVTIMEO, REPLY_WAIT_MS), 0);
    expect_reversed(c, "still here");
    nng_close(c);
    // The last request was answered, so the handler has seen them all.
    assert_int_equal(atomic_load(&s->ncalls), NCONTEXTS + 3);
}

// A call the handler holds over close: the teardown replies to it after
// bu_rpc_server_close (the reply goes nowhere) and then frees.
static void
test_rpc_close_while_held(void **state)
{
    struct srv *s = *state;
    nng_socket c, c2;

    assert_int_equal(client_open(&c, s->url, REPLY_WAIT_MS), 0);
    assert_int_equal(nng_send(c, "hold", 4, 0), 0);
    int64_t deadline = bu_mono_ms() + REPLY_WAIT_MS;
    pthread_mutex_lock(&s->mu);
    while (s->held == NULL && bu_mono_ms() < deadline) {
        pthread_mutex_unlock(&s->mu);
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&s->mu);
    }
    bool held = s->held != NULL;
    pthread_mutex_unlock(&s->mu);
    assert_true(held);
    // Other contexts still serve while one call is held.
    assert_int_equal(client_open(&c2, s->url, REPLY_WAIT_MS), 0);
    expect_reversed(c2, "meanwhile");
    nng_close(c2);
    nng_close(c);
}

static void
test_rpc_start_errors(void **state)
{
    struct srv *s = *state;
    struct bu_rpc_server *srv = (struct bu_rpc_server *) &srv;
    const char *urls[] = { s->url };
    struct bu_rpc_server_config cfg = {
        .urls = urls,
        .nurls = 1,
        .ncontexts = 2,
        .max_msg_bytes = MAX_MSG,
        .handler = srv_handler,
        .arg = s,
    };

    struct bu_rpc_server_config bad = cfg;
    bad.nurls = 0;
    assert_rv(bu_rpc_server_start(&srv, &bad), BU_EINVAL);
    bad = cfg;
    bad.ncontexts = 0;
    assert_rv(bu_rpc_server_start(&srv, &bad), BU_EINVAL);
    bad = cfg;
    bad.handler = NULL;
    assert_rv(bu_rpc_server_start(&srv, &bad), BU_EINVAL);
    // The fixture's server already listens on this path.
    assert_rv(bu_rpc_server_start(&srv, &cfg), BU_ECONNECT);
    // A directory that does not exist, and a scheme nng does not know.
    char missing[160];
    snprintf(missing, sizeof(missing), "ipc://%s/no/such/dir/s", s->dir);
    urls[0] = missing;
    assert_rv(bu_rpc_server_start(&srv, &cfg), BU_ECONNECT);
    urls[0] = "bogus://nowhere";
    assert_rv(bu_rpc_server_start(&srv, &cfg), BU_ECONNECT);
    // The second of two URLs failing fails the start.
    char second[160];
    snprintf(second, sizeof(second), "ipc://%s/second.sock", s->dir);
    const char *two[] = { second, "bogus://nowhere" };
    cfg.urls = two;
    cfg.nurls = 2;
    assert_rv(bu_rpc_server_start(&srv, &cfg), BU_ECONNECT);
    // *srvp untouched on every error.
    assert_ptr_equal(srv, (struct bu_rpc_server *) &srv);
    bu_rpc_server_free(NULL);
    bu_rpc_server_close(NULL);

    // Two URLs that both work: each answers.
    char third[160];
    snprintf(third, sizeof(third), "ipc://%s/third.sock", s->dir);
    const char *ok2[] = { second, third };
    cfg.urls = ok2;
    assert_rv(bu_rpc_server_start(&srv, &cfg), BU_OK);
    for (size_t i = 0; i < NELEM(ok2); i++) {
        nng_socket c;
        assert_int_equal(client_open(&c, ok2[i], REPLY_WAIT_MS), 0);
        expect_reversed(c, ok2[i]);
        nng_close(c);
    }
    bu_rpc_server_free(srv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_rpc_echo, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(
            test_rpc_concurrent, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(
            test_rpc_oversize_frame, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(
            test_rpc_drop_returns_context, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(
            test_rpc_close_while_held, srv_setup, srv_teardown),
        cmocka_unit_test_setup_teardown(
            test_rpc_start_errors, srv_setup, srv_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    nng_fini();
    return failed;
}
