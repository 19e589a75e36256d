// SPDX-License-Identifier: MIT
/*
 * The bulkupsert.v1.BulkUpsert service: what happens to a request between
 * the transport and the stores. A pool of handler threads takes calls from
 * the transport, decodes the RpcRequest envelope, finds the method in the
 * service descriptor protoc-c generated, verifies the token (401), checks
 * the method's permission (403), decodes the payload with the method's
 * input descriptor, and invokes the generated service's method. The method
 * answers through the generated closure, which wraps its output (or its
 * error status) in an RpcResponse and replies.
 *
 * SubmitBulkUpsert validates against the tenant's columns (400), checks the
 * limits (429: request bytes held, per-tenant requests in flight, queued
 * jobs in all and per tenant), and hands the job to the journal; its
 * closure runs on the journal thread once the job is durable (202). GetJob
 * reads queue.db and, for per-record results, the tenant's database.
 * CancelJob goes through the journal, which alone moves job states.
 *
 * Threads: bu_service_handle is the transport's handler (nng callback
 * threads; it only queues). Everything else runs on the handler threads or,
 * for submit completions, the journal thread. start/stop from main.
 */
#ifndef BU_RPC_SERVICE_H
#define BU_RPC_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/keyring.h"
#include "queue/journal.h"
#include "rpc/server.h"

struct bu_service_config {
    const char        *data_dir;
    struct bu_keyring *keyring;
    struct bu_journal *journal;
    int                nhandlers; // handler threads, 1..64
    size_t max_queued_jobs;       // accepted, unfinished jobs; past it 429
    size_t tenant_max_queued;     // the same, per tenant
    size_t tenant_max_inflight;   // one tenant's submits being handled
    size_t max_inflight_bytes;    // request bytes held by handlers
};

struct bu_service;

// bu_service_http_status maps a gRPC code (bulkupsert.v1.Code) to the HTTP
// status the vendor API answers with: OK is 202 for SubmitBulkUpsert
// (method name) and 200 otherwise, INVALID_ARGUMENT and FAILED_PRECONDITION
// 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
// ALREADY_EXISTS 409, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501,
// UNAVAILABLE 503, anything else 500.
unsigned bu_service_http_status(int code, const char *method);

// bu_service_start starts the handler threads. Returns BU_EINVAL, BU_ENOMEM,
// BU_ESTORE (queue.db could not be opened for reading).
int bu_service_start(
    struct bu_service **svcp, const struct bu_service_config *cfg);

// bu_service_handle queues a call for the handler threads (a
// bu_rpc_handler_fn; arg is the service). Never blocks.
void bu_service_handle(void *arg, struct bu_rpc_call *call);

// bu_service_drain makes every later call answer 503 UNAVAILABLE. NULL is
// ignored.
void bu_service_drain(struct bu_service *svc);

// bu_service_quiesce waits until no call is being handled (after
// bu_service_drain new ones are answered 503 at once), at most timeout_ms.
// Returns BU_OK, or BU_ETIMEDOUT with calls still held.
int bu_service_quiesce(struct bu_service *svc, int timeout_ms);

// bu_service_stop answers the calls still queued with 503, stops and joins
// the handler threads, waits until the journal has answered the submits it
// holds (the journal must still run), and frees svc. NULL is ignored.
void bu_service_stop(struct bu_service *svc);

#endif // BU_RPC_SERVICE_H
