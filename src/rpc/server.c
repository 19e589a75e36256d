// SPDX-License-Identifier: MIT
/*
 * rep0 contexts. Each call (context + aio) cycles through:
 *
 *        ctx_recv             handler             bu_rpc_call_reply
 *   RECV ---------> (cb) WORK ------> handler ... ---------> SEND
 *    ^                                                         |
 *    +----------------- (cb) rpc_call_cb, send done -----------+
 *
 * rpc_call_cb performs every transition out of RECV and SEND; the handler
 * side performs WORK -> SEND (reply) or WORK -> RECV (drop). The next state
 * is set before the operation is submitted, and the call is not touched
 * after, since its callback may already run on another thread.
 */
#include "rpc/server.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

enum rpc_state {
    RPC_ST_IDLE, // stopped
    RPC_ST_RECV,
    RPC_ST_WORK,
    RPC_ST_SEND,
};

struct bu_rpc_call {
    struct bu_qnode       qnode; // the handler's while in WORK
    struct bu_rpc_server *srv;
    nng_ctx               ctx;
    nng_aio              *aio;
    enum rpc_state        state;
    nng_msg              *req;         // the request while in WORK
    int64_t               received_ms; // bu_mono_ms when req arrived
};

struct bu_rpc_server {
    struct bu_rpc_server_config cfg;
    nng_socket                  sock;
    bool                        opened;
    atomic_bool                 closing;
    int                         ncalls;
    struct bu_rpc_call         *calls;
};

static void
rpc_call_recv(struct bu_rpc_call *call)
{
    if (atomic_load(&call->srv->closing)) {
        call->state = RPC_ST_IDLE;
        return;
    }
    call->state = RPC_ST_RECV;
    nng_ctx_recv(call->ctx, call->aio);
}

static void
rpc_call_cb(void *arg)
{
    struct bu_rpc_call *call = arg;
    int                 rv = nng_aio_result(call->aio);
    switch (call->state) {
    case RPC_ST_RECV:
        if (rv != 0) {
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
                call->state = RPC_ST_IDLE;
                return;
            }
            BU_WARN("rpc recv: %s", nng_strerror(rv));
            rpc_call_recv(call);
            return;
        }
        call->req = nng_aio_get_msg(call->aio);
        call->received_ms = bu_mono_ms();
        call->state = RPC_ST_WORK;
        call->srv->cfg.handler(call->srv->cfg.arg, call);
        return;
    case RPC_ST_SEND:
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(call->aio));
        }
        rpc_call_recv(call);
        return;
    case RPC_ST_IDLE:
    case RPC_ST_WORK:
        break;
    }
    BU_ERROR("rpc: callback in state %d", (int) call->state);
}

const void *
bu_rpc_call_body(struct bu_rpc_call *call, size_t *lenp)
{
    *lenp = nng_msg_len(call->req);
    return nng_msg_body(call->req);
}

int64_t
bu_rpc_call_received_ms(const struct bu_rpc_call *call)
{
    return call->received_ms;
}

void
bu_rpc_call_drop(struct bu_rpc_call *call)
{
    nng_msg_free(call->req);
    call->req = NULL;
    rpc_call_recv(call);
}

void
bu_rpc_call_reply(struct bu_rpc_call *call, const void *data, size_t len)
{
    nng_msg *msg = call->req;
    call->req = NULL;
    // Reuse the request message: it already carries the reply's header.
    nng_msg_clear(msg);
    if (nng_msg_append(msg, data, len) != 0) {
        BU_ERROR("rpc: reply of %zu bytes: out of memory", len);
        nng_msg_free(msg);
        rpc_call_recv(call);
        return;
    }
    call->state = RPC_ST_SEND;
    nng_aio_set_msg(call->aio, msg);
    nng_ctx_send(call->ctx, call->aio);
}

struct bu_qnode *
bu_rpc_call_qnode(struct bu_rpc_call *call)
{
    return &call->qnode;
}

struct bu_rpc_call *
bu_rpc_call_of(struct bu_qnode *node)
{
    return (struct bu_rpc_call *) ((char *) node
        - offsetof(struct bu_rpc_call, qnode));
}

static int
rpc_listen(struct bu_rpc_server *srv, const char *url)
{
    nng_listener l;
    int          rv = nng_listener_create(&l, srv->sock, url);
    if (rv == 0) {
        rv = nng_listener_start(l, 0);
    }
    if (rv != 0) {
        BU_ERROR("listen %s: %s", url, nng_strerror(rv));
        return BU_ECONNECT;
    }
    int port = 0;
    if (strncmp(url, "tcp", 3) == 0
        && nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        BU_INFO("listening on %s (port %d)", url, port);
    } else {
        BU_INFO("listening on %s", url);
    }
    return BU_OK;
}

int
bu_rpc_server_start(
    struct bu_rpc_server **srvp, const struct bu_rpc_server_config *cfg)
{
    if (cfg->nurls == 0 || cfg->ncontexts < 1 || cfg->handler == NULL) {
        return BU_EINVAL;
    }
    struct bu_rpc_server *srv;
    if (BU_ALLOC_STRUCT(srv) == NULL) {
        return BU_ENOMEM;
    }
    srv->cfg = *cfg;
    atomic_init(&srv->closing, false);
    srv->calls = bu_calloc((size_t) cfg->ncontexts, sizeof(*srv->calls));
    int rv = srv->calls == NULL ? BU_ENOMEM : BU_OK;
    if (rv == BU_OK && nng_rep0_open(&srv->sock) != 0) {
        rv = BU_ECONNECT;
    }
    if (rv == BU_OK) {
        srv->opened = true;
        if (nng_socket_set_size(
                srv->sock, NNG_OPT_RECVMAXSZ, cfg->max_msg_bytes)
            != 0) {
            rv = BU_ECONNECT;
        }
    }
    for (int i = 0; rv == BU_OK && i < cfg->ncontexts; i++) {
        struct bu_rpc_call *call = &srv->calls[i];
        call->srv = srv;
        if (nng_aio_alloc(&call->aio, rpc_call_cb, call) != 0
            || nng_ctx_open(&call->ctx, srv->sock) != 0) {
            rv = BU_ENOMEM;
        }
        srv->ncalls = i + 1;
    }
    for (size_t i = 0; rv == BU_OK && i < cfg->nurls; i++) {
        rv = rpc_listen(srv, cfg->urls[i]);
    }
    if (rv != BU_OK) {
        bu_rpc_server_free(srv);
        return rv;
    }
    for (int i = 0; i < srv->ncalls; i++) {
        rpc_call_recv(&srv->calls[i]);
    }
    *srvp = srv;
    return BU_OK;
}

void
bu_rpc_server_close(struct bu_rpc_server *srv)
{
    if (srv == NULL || atomic_exchange(&srv->closing, true)) {
        return;
    }
    if (srv->opened) {
        nng_close(srv->sock);
    }
}

void
bu_rpc_server_free(struct bu_rpc_server *srv)
{
    if (srv == NULL) {
        return;
    }
    bu_rpc_server_close(srv);
    // Every aio is stopped (its callback done, nothing pending on its
    // context) before any is freed, as nng asks: a callback still running
    // must not meet a freed aio.
    for (int i = 0; i < srv->ncalls; i++) {
        if (srv->calls[i].aio != NULL) {
            nng_aio_stop(srv->calls[i].aio);
        }
    }
    for (int i = 0; i < srv->ncalls; i++) {
        struct bu_rpc_call *call = &srv->calls[i];
        nng_msg_free(call->req);
        nng_aio_free(call->aio);
    }
    bu_free(srv->calls);
    bu_free(srv);
}
