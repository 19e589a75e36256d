// SPDX-License-Identifier: MIT
/*
 * The RPC transport: an nng rep0 socket listening on one or more URLs, with
 * a fixed number of contexts, each a small state machine driven by its own
 * aio (nng's async-server pattern; no thread per request). It knows nothing
 * of protobuf: it hands each request's bytes to a handler and sends back the
 * bytes the handler replies with.
 *
 * Ownership: a call belongs to the transport while receiving or sending and
 * to the handler in between, from the handler callback until exactly one
 * bu_rpc_call_reply or bu_rpc_call_drop. Frames over max_msg_bytes are
 * refused by nng (the connection is dropped); nothing reaches the handler.
 *
 * Threads: the handler runs on nng's callback threads and must not block;
 * it should hand the call to a thread of its own. reply/drop may be called
 * from any thread.
 */
#ifndef BU_RPC_SERVER_H
#define BU_RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/queue.h"

struct bu_rpc_server;
struct bu_rpc_call;

typedef void (*bu_rpc_handler_fn)(void *arg, struct bu_rpc_call *call);

struct bu_rpc_server_config {
    const char *const *urls; // "tcp://host:port", "ipc:///path"
    size_t             nurls;
    int                ncontexts;     // requests served at once
    size_t             max_msg_bytes; // largest request frame
    bu_rpc_handler_fn  handler;
    void              *arg;
};

// bu_rpc_server_start opens the socket, listens on every URL and starts
// receiving. Returns BU_EINVAL (bad config), BU_ECONNECT (a URL could not be
// listened on: the log says which and why), BU_ENOMEM.
int bu_rpc_server_start(
    struct bu_rpc_server **srvp, const struct bu_rpc_server_config *cfg);

// bu_rpc_server_close stops intake: the socket closes and calls not yet
// handed to the handler are dropped. Calls the handler holds must still be
// replied to or dropped (a reply then goes nowhere). Idempotent.
void bu_rpc_server_close(struct bu_rpc_server *srv);

// bu_rpc_server_free closes (if needed), waits for every aio and frees.
// The handler must hold no call any more. NULL is ignored.
void bu_rpc_server_free(struct bu_rpc_server *srv);

// bu_rpc_call_received_ms returns when the request arrived (bu_mono_ms).
int64_t bu_rpc_call_received_ms(const struct bu_rpc_call *call);

// bu_rpc_call_body returns the request bytes (valid until reply or drop).
const void *bu_rpc_call_body(struct bu_rpc_call *call, size_t *lenp);

// bu_rpc_call_reply sends len bytes of data (copied) as the answer; the call
// is the transport's again. On failure (out of memory, socket closed) the
// request is dropped and the client times out.
void bu_rpc_call_reply(struct bu_rpc_call *call, const void *data, size_t len);

// bu_rpc_call_drop gives the call back without an answer.
void bu_rpc_call_drop(struct bu_rpc_call *call);

// bu_rpc_call_qnode returns the call's queue node, for the handler's own
// queue while it holds the call; bu_rpc_call_of maps the node back.
struct bu_qnode    *bu_rpc_call_qnode(struct bu_rpc_call *call);
struct bu_rpc_call *bu_rpc_call_of(struct bu_qnode *node);

#endif // BU_RPC_SERVER_H
