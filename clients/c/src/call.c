// SPDX-License-Identifier: MIT
/*
 * The transport of the C client: one RPC is one bulkupsert_call, driven by
 * three nng_aios whose callbacks move it along; no thread waits for it.
 * aio sends and receives, sleep_aio waits before an attempt (both call
 * call_cb), and timer_aio keeps the deadline of an attempt (call_timer_cb).
 * The last two only ever sleep, because in nng 1.5.2 an aio that has slept
 * once reports a later timeout as success (its sleep flag sticks).
 * bu__call_start packs the request into an RpcRequest envelope on the
 * caller's thread, opens the call's req0 context and starts the first
 * step; every later step runs in a callback:
 *
 *             call_wait_done              call_send_done
 *   WAIT ──(at once, or backoff)──────► SEND ──(ctx send)──► RECV
 *    ▲                                    │                    │
 *    │ call_next: retry is safe            │ failed             │ reply
 *    └──────────────────────────◄─────────┴─────────◄──────────┘
 *                                         │ call_recv_done
 *                                         ▼ no retry, or cancelled
 *                                       DONE (call_finish)
 *
 *   timer_aio, armed by call_send for the attempt's timeout: when it
 *   fires in SEND or RECV, call_timer_cb aborts aio with NNG_ETIMEDOUT.
 *
 * The first step is sleep_aio completed at once (nng_aio_begin and
 * nng_aio_finish), so that every outcome, a request that cannot be packed
 * included, reaches the caller the same way: through the callback, run on
 * an nng thread, never inside bu__call_start.
 *
 * aio itself never has a timeout. nng 1.5.2 expires one on its own thread,
 * which calls the protocol's cancel function (it locks the context's
 * socket) only after letting go of its own lock; a reply that completed
 * the aio in between let this call finish, close its context and the
 * client close the socket, and the expiry then ran on freed memory. The
 * timer aborts aio under call->mtx instead, as a cancel does (inv 2).
 *
 * The socket never resends (NNG_OPT_REQ_RESENDTIME is infinite): a resent
 * submit would queue a second job. Retries are decided here, only when
 * safe (retry.c). A send that times out never left the process (req0
 * completes the send only once a pipe takes the message), so it is
 * UNAVAILABLE and safe to retry; a receive that times out is
 * DEADLINE_EXCEEDED, and the request may have been applied.
 *
 * Invariants:
 * 1. A call has at most one step pending: on sleep_aio in CALL_WAIT, on
 *    aio in CALL_SEND and CALL_RECV (beside it, the timer of inv 5). State
 *    changes and the submit of the next operation happen under call->mtx,
 *    as the last thing before unlocking; nng runs the callback on another
 *    thread (never inside the submit), so it waits for the lock.
 * 2. bulkupsert_call_cancel sets cancelled and aborts the pending aio under
 *    call->mtx, so a cancel can never fall between a callback reading its
 *    result and submitting the next step: that step sees the flag. The
 *    timer's abort runs under call->mtx too; since call_finish takes
 *    call->mtx before it closes the context, the context and the socket
 *    outlive any abort's cancel function.
 * 3. Two references keep a call alive: the caller's (bulkupsert_call_free)
 *    and the machine's (dropped by call_finish after the done callback has
 *    returned). Whoever drops the last frees it; the aios go through
 *    nng_aio_reap, which is safe inside their own callback.
 * 4. A call is on client->calls from start until call_finish takes it off,
 *    and counted in client->ncalls until its done callback has returned;
 *    bulkupsert_client_close waits for ncalls to reach 0. After
 *    call_finish the call never touches its client again.
 * 5. timer_busy is set (under call->mtx) from the timer's nng_sleep_aio
 *    until call_timer_cb has run, and nothing arms the timer while it is
 *    set: a new attempt finding it set leaves the arming to call_timer_cb,
 *    which gives the attempt then in SEND or RECV what is left of
 *    call->deadline. When an attempt's operation ends (to WAIT or to
 *    completion) call_cb cancels the timer, which touches no socket.
 *    call_finish runs only once the timer is idle: call_cb runs it when
 *    timer_busy is clear, else sets finish_owed and call_timer_cb runs it.
 *    So the call is neither freed nor counted finished (inv 3, 4) while its
 *    timer can still call back, and no callback waits for another.
 */
#include "bulkupsert.h"

#include "client_int.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <protobuf-c/protobuf-c.h>

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum call_state {
    CALL_WAIT, // sleeping before the first attempt or a retry
    CALL_SEND, // ctx send pending
    CALL_RECV, // ctx recv pending
    CALL_DONE, // completed; no operation pending
};

struct bulkupsert_call {
    // Set by bu__call_start, then read-only.
    struct bulkupsert_client        *client; // unused after call_finish
    const ProtobufCMethodDescriptor *method;
    bulkupsert_done_fn               done;
    void                            *arg;
    nng_aio                         *aio;       // send and receive
    nng_aio                         *sleep_aio; // waits
    nng_aio                         *timer_aio; // deadlines of attempts
    nng_ctx                          ctx;
    int                              timeout_ms;
    char request_id[20]; // of every attempt; the server logs it
    struct bulkupsert_retry retry;

    pthread_mutex_t mtx;
    pthread_cond_t  done_cv;     // signalled when state becomes CALL_DONE
    enum call_state state;       // guarded by mtx
    nng_msg        *request;     // guarded by mtx; NULL when packing failed
    unsigned        attempts;    // guarded by mtx; requests made so far
    unsigned        dial_gen;    // guarded by mtx; dialer of this attempt
    int64_t         deadline;    // guarded by mtx; end of this attempt
    int             cancelled;   // guarded by mtx
    int             abandoned;   // guarded by mtx; freed before completing
    int             done_owed;   // guarded by mtx; the done callback runs
    int             timer_busy;  // guarded by mtx; inv 5
    int             finish_owed; // guarded by mtx; inv 5
    int             nrefs;       // guarded by mtx; inv 3
    struct bulkupsert_status status; // guarded by mtx
    ProtobufCMessage        *reply;  // guarded by mtx; with an OK status

    struct bulkupsert_call *prev, *next; // guarded by client->mtx; inv 4
};

static int64_t
call_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
call_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char  *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

// Packs input into a new RpcRequest message for method_path and returns it
// in *msgp. Returns BULKUPSERT_OK, or fills status and returns its code.
static int
call_encode(struct bulkupsert_client *client, const char *method_path,
    const ProtobufCMessage *input, nng_msg **msgp, char request_id[20],
    struct bulkupsert_status *status)
{
    Bulkupsert__V1__RpcRequest env = BULKUPSERT__V1__RPC_REQUEST__INIT;
    uint8_t                   *payload = NULL;
    char                      *token = NULL;
    nng_msg                   *msg = NULL;
    int                        rv = BULKUPSERT_OK;

    // A NULL string in a repeated field or a missing required field would
    // crash the packer; refuse it as the caller's mistake instead.
    if (!protobuf_c_message_check(input)) {
        bu__status_set(status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: the %s is incomplete (a NULL string or message inside it)",
            method_path, input->descriptor->short_name);
        return BULKUPSERT_INVALID_ARGUMENT;
    }

    // The service drops the connection of a frame past its limit without
    // an answer; say why here instead.
    size_t plen = protobuf_c_message_get_packed_size(input);
    if (plen > BULKUPSERT_MAX_REQUEST_BYTES) {
        bu__status_set(status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: the request is %zu bytes; the service takes at most %u "
            "(send fewer records a request)",
            method_path, plen, BULKUPSERT_MAX_REQUEST_BYTES);
        return BULKUPSERT_INVALID_ARGUMENT;
    }
    if ((payload = malloc(plen > 0 ? plen : 1)) == NULL) {
        rv = BULKUPSERT_INTERNAL;
        goto out;
    }
    protobuf_c_message_pack(input, payload);

    pthread_mutex_lock(&client->mtx);
    if (client->token != NULL
        && (token = call_strdup(client->token)) == NULL) {
        rv = BULKUPSERT_INTERNAL;
    }
    pthread_mutex_unlock(&client->mtx);
    if (rv != BULKUPSERT_OK) {
        goto out;
    }

    snprintf(request_id, 20, "%08x%08x", (unsigned) nng_random(),
        (unsigned) nng_random());
    // The envelope only borrows these strings; protobuf-c's init macro
    // types the fields as non-const.
    env.method = (char *) method_path;
    env.token = token;
    env.request_id = request_id;
    env.has_payload = 1;
    env.payload.len = plen;
    env.payload.data = payload;

    size_t elen = protobuf_c_message_get_packed_size(&env.base);
    if (elen > BULKUPSERT_MAX_REQUEST_BYTES) {
        bu__status_set(status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: the request and its token are %zu bytes; the service takes "
            "at most %u",
            method_path, elen, BULKUPSERT_MAX_REQUEST_BYTES);
        rv = BULKUPSERT_INVALID_ARGUMENT;
        goto out;
    }
    if (nng_msg_alloc(&msg, elen) != 0) {
        rv = BULKUPSERT_INTERNAL;
        goto out;
    }
    protobuf_c_message_pack(&env.base, nng_msg_body(msg));
    *msgp = msg;

out:
    if (rv == BULKUPSERT_INTERNAL) {
        bu__status_set(status, rv, 0, "%s: out of memory building the request",
            method_path);
    }
    if (token != NULL) {
        bu__wipe(token, strlen(token));
        free(token);
    }
    free(payload);
    return rv;
}

// Decodes the RpcResponse in msg into call->status and, when it is OK,
// unpacks the payload as the method's output into call->reply.
static void
call_decode(struct bulkupsert_call *call, nng_msg *msg)
{
    const ProtobufCMethodDescriptor *method = call->method;
    struct bulkupsert_status        *status = &call->status;
    const char                      *url = call->client->url;

    Bulkupsert__V1__RpcResponse *env = bulkupsert__v1__rpc_response__unpack(
        NULL, nng_msg_len(msg), nng_msg_body(msg));
    if (env == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "%s: the reply to %s is not an RpcResponse (%zu bytes)", url,
            method->name, nng_msg_len(msg));
        status->maybe_applied = 1; // whatever the server said is lost
        return;
    }
    if (env->status == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "%s: the reply to %s has no status", url, method->name);
        status->maybe_applied = 1;
        goto out;
    }
    bu__status_from_wire(status, env->status);
    if (status->code != BULKUPSERT_OK) {
        goto out;
    }
    call->reply = protobuf_c_message_unpack(method->output, NULL,
        env->has_payload ? env->payload.len : 0,
        env->has_payload ? env->payload.data : NULL);
    if (call->reply == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "%s: the payload of the %s reply is not a %s", url, method->name,
            method->output->name);
        status->maybe_applied = 1; // the server said OK
    }

out:
    bulkupsert__v1__rpc_response__free_unpacked(env, NULL);
}

// Sets call->status from an nng error of the send (sent == 0) or receive
// step of the current attempt; after a send, status->maybe_applied.
static void
call_fail(struct bulkupsert_call *call, int nrv, int sent)
{
    struct bulkupsert_status *status = &call->status;
    const char               *url = call->client->url;

    // Where the request may have arrived, its id finds it in the server's
    // log (debug level).
    const char *rid = call->request_id;
    if (call->cancelled && sent) {
        bu__status_set(status, BULKUPSERT_CANCELLED, 0,
            "%s: cancelled after the request was sent (it may have been "
            "applied; request id %s)",
            url, rid);
    } else if (call->cancelled) {
        bu__status_set(status, BULKUPSERT_CANCELLED, 0,
            "%s: cancelled before the request was sent", url);
    } else if (nrv == NNG_ENOMEM) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0, "out of memory");
    } else if (nrv == NNG_ETIMEDOUT && sent) {
        bu__status_set(status, BULKUPSERT_DEADLINE_EXCEEDED, 0,
            "timed out after %d ms waiting for %s (the request was sent and "
            "may have been applied; request id %s)",
            call->timeout_ms, url, rid);
    } else if (nrv == NNG_ETIMEDOUT) {
        bu__status_set(status, BULKUPSERT_UNAVAILABLE, 0,
            "timed out after %d ms waiting for a connection to %s (the "
            "request was not sent; is the server running?)",
            call->timeout_ms, url);
    } else if (sent) {
        bu__status_set(status, BULKUPSERT_UNAVAILABLE, 0,
            "%s: %s before the reply (the request may have been applied; "
            "request id %s)",
            url, nng_strerror(nrv), rid);
    } else {
        bu__status_set(status, BULKUPSERT_UNAVAILABLE, 0,
            "%s: %s (the request was not sent)", url, nng_strerror(nrv));
    }
    // No answer after the request went: it may have been applied.
    status->maybe_applied = sent;
}

// The attempt has ended with call->status: returns 1 when the call is
// complete, or 0 after starting the wait before the next attempt.
static int
call_next(struct bulkupsert_call *call, int sent)
{
    if (call->cancelled || call->attempts > call->retry.max_retries
        || !bu__retry_safe(&call->status, sent)) {
        return 1;
    }
    unsigned wait = bu__retry_delay_ms(&call->retry, call->attempts,
        call->status.retry_after_ms, (uint32_t) nng_random());
    call->state = CALL_WAIT;
    // nng_duration is an int; a day is past any sensible policy.
    nng_sleep_aio(
        wait < 86400000u ? (nng_duration) wait : 86400000, call->sleep_aio);
    return 0;
}

// Arms the timer for the current attempt to fire in ms (inv 5). If the
// timer of an earlier attempt has not yet called back, it is left alone:
// nng forbids starting an aio whose last operation has not completed, and
// call_timer_cb arms it for this attempt when it runs.
static void
call_timer_arm(struct bulkupsert_call *call, int64_t ms)
{
    if (call->timer_busy) {
        return;
    }
    call->timer_busy = 1;
    // nng_duration is an int; a day is past any sensible timeout.
    if (ms > 86400000) {
        ms = 86400000;
    }
    nng_sleep_aio(ms > 0 ? (nng_duration) ms : 1, call->timer_aio);
}

// Starts the next attempt: a copy of the request goes out on the call's
// context (the original stays for a retry). Returns 1 if the call is
// complete instead.
static int
call_send(struct bulkupsert_call *call)
{
    nng_msg *msg;

    call->attempts++;
    if (nng_msg_dup(&msg, call->request) != 0) {
        call_fail(call, NNG_ENOMEM, 0);
        return 1;
    }
    call->dial_gen = bu__client_dial_gen(call->client);
    call->deadline = call_mono_ms() + call->timeout_ms;
    call->state = CALL_SEND;
    call_timer_arm(call, call->timeout_ms);
    nng_aio_set_msg(call->aio, msg);
    nng_ctx_send(call->ctx, call->aio);
    return 0;
}

static int
call_wait_done(struct bulkupsert_call *call, int nrv)
{
    if (call->request == NULL) {
        return 1; // the request could not be packed; status says why
    }
    if (call->cancelled || nrv != 0) {
        if (call->attempts == 0) {
            bu__status_set(&call->status, BULKUPSERT_CANCELLED, 0,
                "%s: cancelled before the request was sent",
                call->client->url);
        } else {
            // The last attempt was refused unprocessed (that is why it
            // was to be retried), so nothing was applied.
            const char *last = bulkupsert_code_name(call->status.code);
            bu__status_set(&call->status, BULKUPSERT_CANCELLED, 0,
                "%s: cancelled while waiting to retry (attempt %u ended "
                "with %s; nothing was applied)",
                call->client->url, call->attempts, last);
        }
        return 1;
    }
    return call_send(call);
}

static int
call_send_done(struct bulkupsert_call *call, int nrv)
{
    if (nrv != 0) {
        // A failed send gives the message back through the aio.
        nng_msg_free(nng_aio_get_msg(call->aio));
        nng_aio_set_msg(call->aio, NULL);
        if (nrv == NNG_ETIMEDOUT) {
            // No pipe took the request for a whole timeout.
            bu__client_redial(call->client, call->dial_gen);
        }
        call_fail(call, nrv, 0);
        return call_next(call, 0);
    }
    // The context owns the request now.
    int64_t left = call->deadline - call_mono_ms();
    if (call->cancelled || left <= 0) {
        call_fail(call, NNG_ETIMEDOUT, 1);
        return call_next(call, 1);
    }
    // The attempt's timer runs on: what is left of the deadline is the
    // receive's.
    call->state = CALL_RECV;
    nng_ctx_recv(call->ctx, call->aio);
    return 0;
}

static int
call_recv_done(struct bulkupsert_call *call, int nrv)
{
    if (nrv != 0) {
        call_fail(call, nrv, 1);
        return call_next(call, 1);
    }
    nng_msg *msg = nng_aio_get_msg(call->aio);
    nng_aio_set_msg(call->aio, NULL);
    call_decode(call, msg);
    nng_msg_free(msg);
    return call_next(call, 1);
}

// Frees call; its aios are reaped, so this is safe in their callback.
static void
call_destroy(struct bulkupsert_call *call)
{
    bulkupsert_status_clear(&call->status);
    if (call->reply != NULL) {
        protobuf_c_message_free_unpacked(call->reply, NULL);
    }
    if (call->request != NULL) {
        nng_msg_free(call->request);
    }
    nng_aio_reap(call->aio);
    nng_aio_reap(call->sleep_aio);
    nng_aio_reap(call->timer_aio);
    pthread_cond_destroy(&call->done_cv);
    pthread_mutex_destroy(&call->mtx);
    free(call);
}

// Drops one of the two references (inv 3).
static void
call_rele(struct bulkupsert_call *call)
{
    pthread_mutex_lock(&call->mtx);
    int last = --call->nrefs == 0;
    pthread_mutex_unlock(&call->mtx);
    if (last) {
        call_destroy(call);
    }
}

// Completes call: off the client's list, DONE, the done callback, then the
// machine's reference and the client's count go (inv 3, 4).
static void
call_finish(struct bulkupsert_call *call)
{
    struct bulkupsert_client *client = call->client;

    pthread_mutex_lock(&client->mtx);
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        client->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    pthread_mutex_unlock(&client->mtx);

    pthread_mutex_lock(&call->mtx);
    nng_ctx_close(call->ctx);
    call->status.attempts = call->attempts;
    call->state = CALL_DONE;
    // No more attempts: the packed request, token included, goes now.
    if (call->request != NULL) {
        bu__wipe(nng_msg_body(call->request), nng_msg_len(call->request));
        nng_msg_free(call->request);
        call->request = NULL;
    }
    pthread_cond_broadcast(&call->done_cv);
    // Decided under the lock, so that bulkupsert_call_free can tell its
    // caller whether the callback runs.
    int run_done = call->done_owed = call->done != NULL && !call->abandoned;
    pthread_mutex_unlock(&call->mtx);

    if (run_done) {
        call->done(call, call->arg);
    }
    call_rele(call);

    pthread_mutex_lock(&client->mtx);
    if (--client->ncalls == 0) {
        pthread_cond_broadcast(&client->idle_cv);
    }
    pthread_mutex_unlock(&client->mtx);
}

// The aio callback of every call: one step of the machine in the file
// header, on an nng thread.
static void
call_cb(void *arg)
{
    struct bulkupsert_call *call = arg;
    int                     complete = 0;

    pthread_mutex_lock(&call->mtx);
    int nrv = nng_aio_result(
        call->state == CALL_WAIT ? call->sleep_aio : call->aio);
    switch (call->state) {
    case CALL_WAIT:
        complete = call_wait_done(call, nrv);
        break;
    case CALL_SEND:
        complete = call_send_done(call, nrv);
        break;
    case CALL_RECV:
        complete = call_recv_done(call, nrv);
        break;
    case CALL_DONE:
        assert(!"a completed call has no operation pending (inv 1)");
        break;
    }
    // The attempt is over unless it went on to its receive: its timer goes
    // (inv 5). Only the timer's own lock is taken, and its callback runs
    // on another thread, later.
    if ((complete || call->state == CALL_WAIT) && call->timer_busy) {
        nng_aio_cancel(call->timer_aio);
    }
    if (complete && call->timer_busy) {
        call->finish_owed = 1; // call_timer_cb finishes the call
        complete = 0;
    }
    pthread_mutex_unlock(&call->mtx);
    if (complete) {
        call_finish(call);
    }
}

// The callback of timer_aio, on an nng thread: the deadline of an attempt
// has passed, or the timer was cancelled (inv 5). Its result says nothing
// (a sleep that ends reports success); the state and the clock decide.
static void
call_timer_cb(void *arg)
{
    struct bulkupsert_call *call = arg;
    int                     finish = 0;

    pthread_mutex_lock(&call->mtx);
    call->timer_busy = 0;
    if (call->finish_owed) {
        finish = 1;
    } else if ((call->state == CALL_SEND || call->state == CALL_RECV)
        && !call->cancelled) {
        int64_t left = call->deadline - call_mono_ms();
        if (left > 0) {
            // An earlier attempt's timer, or an early wake: this attempt
            // gets what is left.
            call_timer_arm(call, left);
        } else {
            // Inv 2: aborted under call->mtx, like a cancel, so the
            // context and the socket outlive the cancel function. The
            // send or receive fails with NNG_ETIMEDOUT in call_cb.
            nng_aio_abort(call->aio, NNG_ETIMEDOUT);
        }
    }
    pthread_mutex_unlock(&call->mtx);
    if (finish) {
        call_finish(call);
    }
}

// Finds the method called name and packs request for it into
// call->request; on failure call->status says why.
static void
call_prepare(struct bulkupsert_call *call, const char *name,
    const ProtobufCMessage *request)
{
    struct bulkupsert_client         *client = call->client;
    const ProtobufCServiceDescriptor *service = client->service;
    char                              path[128];

    const ProtobufCMethodDescriptor *m
        = protobuf_c_service_descriptor_get_method_by_name(service, name);
    if (m == NULL || m->input != request->descriptor) {
        bu__status_set(&call->status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: not a method of %s taking %s", name, service->name,
            request->descriptor->name);
        return;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", service->name, m->name);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        bu__status_set(&call->status, BULKUPSERT_INTERNAL, 0,
            "method name %s/%s is too long", service->name, m->name);
        return;
    }
    call->method = m;
    call_encode(client, path, request, &call->request, call->request_id,
        &call->status);
}

int
bu__call_start(struct bulkupsert_client *client, const char *method,
    const ProtobufCMessage *request, bulkupsert_done_fn done, void *arg,
    bulkupsert_call **callp, struct bulkupsert_status *status)
{
    struct bulkupsert_call *call;
    int                     nrv;

    if (client == NULL || method == NULL || request == NULL || callp == NULL) {
        bu__status_set(status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: %s is NULL", method != NULL ? method : "call",
            client == NULL        ? "client"
                : method == NULL  ? "the method"
                : request == NULL ? "request"
                                  : "callp");
        return BULKUPSERT_INVALID_ARGUMENT;
    }
    if ((call = calloc(1, sizeof(*call))) == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0, "out of memory");
        return BULKUPSERT_INTERNAL;
    }
    call->client = client;
    call->done = done;
    call->arg = arg;
    call->nrefs = 2;
    call->state = CALL_WAIT;
    bu__status_reset(&call->status);
    if (pthread_mutex_init(&call->mtx, NULL) != 0) {
        free(call);
        bu__status_set(status, BULKUPSERT_INTERNAL, 0, "out of resources");
        return BULKUPSERT_INTERNAL;
    }
    if (pthread_cond_init(&call->done_cv, NULL) != 0) {
        pthread_mutex_destroy(&call->mtx);
        free(call);
        bu__status_set(status, BULKUPSERT_INTERNAL, 0, "out of resources");
        return BULKUPSERT_INTERNAL;
    }
    if ((nrv = nng_aio_alloc(&call->aio, call_cb, call)) != 0
        || (nrv = nng_aio_alloc(&call->sleep_aio, call_cb, call)) != 0
        || (nrv = nng_aio_alloc(&call->timer_aio, call_timer_cb, call)) != 0) {
        goto fail;
    }
    if ((nrv = nng_ctx_open(&call->ctx, client->sock)) != 0) {
        goto fail;
    }
    call_prepare(call, method, request);

    pthread_mutex_lock(&client->mtx);
    call->timeout_ms = client->timeout_ms;
    call->retry = client->retry;
    int closing = client->closing;
    if (!closing) {
        call->next = client->calls;
        if (call->next != NULL) {
            call->next->prev = call;
        }
        client->calls = call;
        client->ncalls++;
    }
    pthread_mutex_unlock(&client->mtx);
    if (closing) {
        nng_ctx_close(call->ctx);
        nrv = NNG_ECLOSED;
        goto fail;
    }

    // Inv 1: the first step completes sleep_aio at once, which hands
    // call_cb to an nng task thread. Not a 0 ms sleep: nng 1.5.2's expiry
    // thread spins until the clock passes an aio's deadline, up to a
    // millisecond of a core per call. The caller gets the handle first:
    // the callback may run at once.
    *callp = call;
    pthread_mutex_lock(&call->mtx);
    if (nng_aio_begin(call->sleep_aio)) {
        nng_aio_finish(call->sleep_aio, 0);
    }
    pthread_mutex_unlock(&call->mtx);
    return BULKUPSERT_OK;

fail:
    if (nrv == NNG_ECLOSED) {
        bu__status_set(status, BULKUPSERT_CANCELLED, 0,
            "%s: the client is closing", method);
    } else {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0, "%s: %s", method,
            nng_strerror(nrv));
    }
    nrv = status->code;
    // Nothing was started on the aios.
    if (call->aio != NULL) {
        nng_aio_free(call->aio);
    }
    if (call->sleep_aio != NULL) {
        nng_aio_free(call->sleep_aio);
    }
    if (call->timer_aio != NULL) {
        nng_aio_free(call->timer_aio);
    }
    bulkupsert_status_clear(&call->status);
    if (call->request != NULL) {
        nng_msg_free(call->request);
    }
    pthread_cond_destroy(&call->done_cv);
    pthread_mutex_destroy(&call->mtx);
    free(call);
    return nrv;
}

int
bulkupsert_call_start(bulkupsert_client *client, const char *method,
    const ProtobufCMessage *request, bulkupsert_done_fn done, void *arg,
    bulkupsert_call **callp)
{
    struct bulkupsert_status status;

    bu__status_reset(&status);
    int rv
        = bu__call_start(client, method, request, done, arg, callp, &status);
    bulkupsert_status_clear(&status);
    return rv;
}

// Inv 2. Caller holds call->mtx.
static void
call_cancel_locked(struct bulkupsert_call *call)
{
    if (call->state != CALL_DONE && !call->cancelled) {
        call->cancelled = 1;
        nng_aio_cancel(call->state == CALL_WAIT ? call->sleep_aio : call->aio);
    }
}

void
bu__call_cancel_all(struct bulkupsert_client *client)
{
    for (struct bulkupsert_call *c = client->calls; c != NULL; c = c->next) {
        pthread_mutex_lock(&c->mtx);
        call_cancel_locked(c);
        pthread_mutex_unlock(&c->mtx);
    }
}

void
bulkupsert_call_cancel(bulkupsert_call *call)
{
    if (call == NULL) {
        return;
    }
    pthread_mutex_lock(&call->mtx);
    call_cancel_locked(call);
    pthread_mutex_unlock(&call->mtx);
}

int
bulkupsert_call_poll(bulkupsert_call *call)
{
    pthread_mutex_lock(&call->mtx);
    int done = call->state == CALL_DONE;
    pthread_mutex_unlock(&call->mtx);
    return done;
}

void
bulkupsert_call_wait(bulkupsert_call *call)
{
    pthread_mutex_lock(&call->mtx);
    while (call->state != CALL_DONE) {
        pthread_cond_wait(&call->done_cv, &call->mtx);
    }
    pthread_mutex_unlock(&call->mtx);
}

int
bulkupsert_call_result(bulkupsert_call *call, ProtobufCMessage **replyp,
    struct bulkupsert_status *status)
{
    ProtobufCMessage *reply;

    pthread_mutex_lock(&call->mtx);
    while (call->state != CALL_DONE) {
        pthread_cond_wait(&call->done_cv, &call->mtx);
    }
    int rv = call->status.code;
    reply = call->reply;
    call->reply = NULL;
    if (status != NULL) {
        *status = call->status;
        bu__status_reset(&call->status);
        call->status.code = rv;
    }
    pthread_mutex_unlock(&call->mtx);

    if (replyp != NULL) {
        *replyp = reply;
    } else if (reply != NULL) {
        protobuf_c_message_free_unpacked(reply, NULL);
    }
    return rv;
}

int
bulkupsert_call_free(bulkupsert_call *call)
{
    if (call == NULL) {
        return 0;
    }
    pthread_mutex_lock(&call->mtx);
    call->abandoned = 1;
    call_cancel_locked(call);
    int owed = call->done_owed;
    pthread_mutex_unlock(&call->mtx);
    call_rele(call);
    return owed;
}
