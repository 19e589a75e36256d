// SPDX-License-Identifier: MIT
/*
 * bulkupsert client library: calls the bulkupsert.v1.BulkUpsert service of a
 * bulkupsertd server over nng req/rep. Requests and replies are the
 * protobuf-c messages generated from proto/bulkupsert/v1/bulkupsert.proto;
 * each call is looked up by name in the generated service descriptor, and
 * the library turns it into an RpcRequest envelope and the RpcResponse back
 * into a reply message or a status.
 *
 * Two forms of every call. The synchronous ones (bulkupsert_submit, ...)
 * block the calling thread until the reply, the timeout or the last retry.
 * The asynchronous ones (bulkupsert_submit_async, bulkupsert_call_start,
 * ...) return at once with a bulkupsert_call handle; the call runs on nng's
 * own threads (aio callbacks, no thread per call) and either runs a done
 * callback or is polled or waited for. A synchronous call is the
 * asynchronous one followed by bulkupsert_call_result: one code path.
 *
 * Threads: a bulkupsert_client may be used from several threads at once
 * (each call has its own nng context), and any number of calls may be in
 * flight on one client. Done callbacks run on an nng thread and must not
 * block (see bulkupsert_done_fn).
 *
 * Errors are values: every call returns a gRPC status code (0 = OK) and fills
 * a struct bulkupsert_status with the server's status (http_status,
 * response_code, message, field errors) or with a transport error
 * (UNAVAILABLE when the server cannot be reached, DEADLINE_EXCEEDED on
 * timeout, CANCELLED for a cancelled call, INTERNAL for a reply that cannot
 * be decoded).
 *
 * Timeouts: each attempt of a call gets the client's timeout
 * (bulkupsert_client_set_timeout) for sending and receiving together. A
 * request that could not be sent within it (no connection) ends with
 * UNAVAILABLE and was certainly not applied; a reply that did not come in
 * time ends with DEADLINE_EXCEEDED, and the request may have been applied.
 * The message of a request that may have been applied names its request id
 * (16 hex digits, the same on every attempt), which the server logs with
 * each call at --log-level debug.
 *
 * Reconnecting: the client dials in the background and redials a lost
 * connection (after 100 ms, backing off to 1 s). When a request finds no
 * connection for a whole timeout, the client also replaces its dialer, so
 * that a dialer nng has given up on (seen after a server was killed and
 * restarted on the same ipc:// path) cannot strand it.
 */
#ifndef BULKUPSERT_H
#define BULKUPSERT_H

#include <stddef.h>
#include <stdint.h>

#include "bulkupsert/v1/bulkupsert.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

// gRPC canonical codes, as in proto's bulkupsert.v1.Code.
enum bulkupsert_code {
    BULKUPSERT_OK = 0,
    BULKUPSERT_CANCELLED = 1,
    BULKUPSERT_UNKNOWN = 2,
    BULKUPSERT_INVALID_ARGUMENT = 3,
    BULKUPSERT_DEADLINE_EXCEEDED = 4,
    BULKUPSERT_NOT_FOUND = 5,
    BULKUPSERT_ALREADY_EXISTS = 6,
    BULKUPSERT_PERMISSION_DENIED = 7,
    BULKUPSERT_RESOURCE_EXHAUSTED = 8,
    BULKUPSERT_FAILED_PRECONDITION = 9,
    BULKUPSERT_UNIMPLEMENTED = 12,
    BULKUPSERT_INTERNAL = 13,
    BULKUPSERT_UNAVAILABLE = 14,
    BULKUPSERT_UNAUTHENTICATED = 16,
};

// Default address of bulkupsertd.
#define BULKUPSERT_DEFAULT_URL "tcp://127.0.0.1:7450"
// Default call timeout.
#define BULKUPSERT_DEFAULT_TIMEOUT_MS 30000
// Largest request the client sends: bulkupsertd's default frame limit,
// which the largest valid request (1000 records of the widest row) fits.
// A larger one is refused with INVALID_ARGUMENT before anything is sent.
#define BULKUPSERT_MAX_REQUEST_BYTES (40u * 1024u * 1024u)
// Largest reply the client accepts (a GetJob page of 1000 records).
#define BULKUPSERT_MAX_REPLY_BYTES (64u * 1024u * 1024u)

struct bulkupsert_field_error {
    int64_t record_index; // -1 when the error is not about one record
    char   *contact_key;  // may be NULL
    char   *column;       // may be NULL
    char   *reason;
};

struct bulkupsert_status {
    int      code;           // enum bulkupsert_code
    unsigned http_status;    // 202, 400, 401, ... (0 for transport errors)
    unsigned response_code;  // FieldError 1, ValidationFails 11, ...
    unsigned retry_after_ms; // with RESOURCE_EXHAUSTED
    char    *message;        // never NULL after a call
    size_t   nerrors;
    struct bulkupsert_field_error *errors;
    unsigned attempts; // attempts the call made (1 + retries); 0 when it
                       // ended before the first (bad argument, cancel)
    int maybe_applied; // 1 when the last attempt sent the request and the
                       // call ended without an answer it could read (no
                       // reply in time, the connection lost before the
                       // reply, a cancel, a reply that does not decode):
                       // the server may have applied the request. 0 when
                       // the request was never sent or code is the
                       // server's answer. Earlier attempts were all
                       // refused unprocessed or never sent (see
                       // bulkupsert_retry), so this covers the whole call.
};

// Retry policy of a client: off until set (bulkupsert_client_set_retry).
// A call is retried only when a retry certainly cannot apply it twice:
// - RESOURCE_EXHAUSTED (429): the server refused the request unprocessed;
// - UNAVAILABLE when the request was never sent (no connection within the
//   timeout), or when the server answered 503 (it is draining, or the
//   table is busy) without acting on it.
// Nothing else is retried: not DEADLINE_EXCEEDED or a dropped connection
// after the request left (it may have been applied), not INTERNAL, not
// any 4xx. Before retry n (1, 2, ...) the call waits
//   min(max_delay_ms, retry_after_ms + J), J uniform in [b/2, b],
//   b = min(max_delay_ms, base_delay_ms * 2^(n-1)),
// where retry_after_ms is the server's hint (0 when none): never earlier
// than the server asked (unless max_delay_ms is smaller), with exponential
// backoff and jitter so that many clients do not come back at once.
// Each attempt gets the whole client timeout, so a call takes at most
// (max_retries + 1) * timeout plus the waits. The call returns the last
// attempt's status; status->attempts says how many were made.
struct bulkupsert_retry {
    unsigned max_retries;   // extra attempts after the first; 0 = never
                            // retry (the default)
    unsigned base_delay_ms; // first backoff (0 = 100)
    unsigned max_delay_ms;  // cap on one wait (0 = 10000)
};

typedef struct bulkupsert_client bulkupsert_client;

// bulkupsert_client_open makes a client for url ("tcp://host:port",
// "ipc:///path") that sends token with every call (token may be NULL and set
// later). It dials lazily: a server that is not up yet is not an error here.
// Returns 0, or BULKUPSERT_INVALID_ARGUMENT (bad url, such as a tcp port
// outside 1 to 65535) / BULKUPSERT_INTERNAL
// (out of memory) with *clientp untouched. Release with
// bulkupsert_client_close.
int bulkupsert_client_open(
    bulkupsert_client **clientp, const char *url, const char *token);

// bulkupsert_client_close cancels the calls in flight on client, waits
// until each has completed (with CANCELLED, unless it had just completed
// otherwise) and its done callback has returned, then closes the
// connection and frees client; NULL is ignored. Call handles stay valid:
// free each with bulkupsert_call_free, before or after. Blocks until the
// done callbacks return, so it must not be called from one of them; no
// other thread may use client once close has begun (a done callback that
// starts a new call on it gets CANCELLED).
void bulkupsert_client_close(bulkupsert_client *client);

// bulkupsert_client_set_token replaces the token sent with later calls (it
// is copied). Returns 0 or BULKUPSERT_INTERNAL.
int bulkupsert_client_set_token(bulkupsert_client *client, const char *token);

// bulkupsert_client_set_timeout sets the timeout of later calls (> 0 ms).
void bulkupsert_client_set_timeout(bulkupsert_client *client, int timeout_ms);

// bulkupsert_client_set_retry sets the retry policy of later calls (*retry
// is copied; NULL turns retries off). See struct bulkupsert_retry. Safe
// from any thread; calls already started keep the policy they began with.
void bulkupsert_client_set_retry(
    bulkupsert_client *client, const struct bulkupsert_retry *retry);

// ---------------------------------------------------------------------
// Asynchronous calls.

// A call in flight, or completed and not yet freed.
typedef struct bulkupsert_call bulkupsert_call;

// A done callback: runs exactly once per call that was started, when the
// call has completed (OK, failed, timed out, cancelled, or cancelled by
// bulkupsert_client_close), unless the call was freed before completing.
// It runs on an nng thread with no library lock held, so it must not
// block: no synchronous calls, no bulkupsert_call_wait on another call, no
// bulkupsert_client_close. It may call bulkupsert_call_result and
// bulkupsert_call_free on call, start new asynchronous calls, and hand
// work to the application's own threads (e.g. write to an eventfd).
typedef void (*bulkupsert_done_fn)(bulkupsert_call *call, void *arg);

// bulkupsert_call_start calls the method of bulkupsert.v1.BulkUpsert
// named method ("SubmitBulkUpsert", "GetJob", ...) without waiting. The
// request is packed before this returns, so the caller may free it at once;
// the client's token, timeout and retry policy are those of this moment.
// On success *callp is the call; the caller owns it and must release it
// with bulkupsert_call_free (after it completed, or to cancel it). done
// (may be NULL: then poll or wait) runs once on completion, with arg, on
// an nng thread, possibly before this function has returned (*callp is
// set first).
// Returns 0; or INVALID_ARGUMENT (client, request or callp NULL), INTERNAL
// (out of memory) or CANCELLED (client is closing), with *callp untouched
// and done never run. Any other problem, an unknown method or a request of
// the wrong type, with a NULL string inside or over
// BULKUPSERT_MAX_REQUEST_BYTES included, completes the call with that
// status. Never blocks.
int bulkupsert_call_start(bulkupsert_client *client, const char *method,
    const ProtobufCMessage *request,
    bulkupsert_done_fn      done, // may be NULL
    void                   *arg,
    bulkupsert_call       **callp); // OUT

// bulkupsert_submit_async is bulkupsert_call_start for SubmitBulkUpsert;
// the reply is a Bulkupsert__V1__SubmitBulkUpsertResponse.
int bulkupsert_submit_async(bulkupsert_client     *client,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *request,
    bulkupsert_done_fn                             done, // may be NULL
    void                                          *arg,
    bulkupsert_call                              **callp); // OUT

// bulkupsert_get_job_async is bulkupsert_call_start for GetJob; the reply
// is a Bulkupsert__V1__Job.
int bulkupsert_get_job_async(bulkupsert_client *client,
    const Bulkupsert__V1__GetJobRequest        *request,
    bulkupsert_done_fn                          done, // may be NULL
    void                                       *arg,
    bulkupsert_call                           **callp); // OUT

// bulkupsert_call_poll returns 1 when call has completed, else 0. Never
// blocks.
int bulkupsert_call_poll(bulkupsert_call *call);

// bulkupsert_call_wait blocks until call has completed. Its done callback
// may still be running when this returns. Not from a done callback (except
// on the callback's own, completed, call).
void bulkupsert_call_wait(bulkupsert_call *call);

// bulkupsert_call_result waits for call (as bulkupsert_call_wait), then
// hands over its outcome and returns its code. On OK, *replyp (if replyp is
// not NULL) gets the reply message, whose type is the method's output
// (cast it: (Bulkupsert__V1__Job *) reply) and which the caller frees with
// protobuf_c_message_free_unpacked (or the type's free_unpacked); on any
// other code *replyp is NULL. status (may be NULL) is overwritten, not
// cleared first, with the call's status; clear it with
// bulkupsert_status_clear. The reply and the status move out: a second
// bulkupsert_call_result returns the same code, a NULL reply and a status
// holding the code only.
int bulkupsert_call_result(bulkupsert_call *call,
    ProtobufCMessage                      **replyp, // OUT, may be NULL
    struct bulkupsert_status               *status);              // OUT, may be NULL

// bulkupsert_call_cancel asks call to stop. A call that has not completed
// completes soon with CANCELLED (its message says whether the request had
// been sent, and so may have been applied); a reply that arrives first
// wins. Its done callback runs as usual. No effect on a completed call.
// Never blocks; safe from any thread, done callbacks included.
void bulkupsert_call_cancel(bulkupsert_call *call);

// bulkupsert_call_free releases the caller's handle on call; NULL is
// ignored. A call that has not completed is cancelled, and its done
// callback will not run. Returns 1 when the done callback has run, is
// running or is about to run (it completed just before; the callback then
// still owns its arg), 0 when it never will (NULL call, no callback, or
// freed before completing). The memory goes once the library is done with
// it too. Never blocks; may be called from the call's own done callback.
int bulkupsert_call_free(bulkupsert_call *call);

// ---------------------------------------------------------------------
// Synchronous calls. Each one is the asynchronous call, waited for; each
// blocks up to (max_retries + 1) * timeout plus the retry waits.

// bulkupsert_submit calls SubmitBulkUpsert. On OK, *replyp holds the reply
// (job_id, total, duplicate); free it with
// bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL).
// On any other code *replyp is NULL. status is filled in either case; clear
// it with bulkupsert_status_clear. Returns status->code.
int bulkupsert_submit(bulkupsert_client           *client,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *request,
    Bulkupsert__V1__SubmitBulkUpsertResponse     **replyp, // OUT
    struct bulkupsert_status                      *status);                     // OUT

// bulkupsert_get_job calls GetJob. On OK, *jobp holds the job; free it with
// bulkupsert__v1__job__free_unpacked(job, NULL). Returns status->code
// (NOT_FOUND for an unknown job id or another tenant's job).
int bulkupsert_get_job(bulkupsert_client *client,
    const Bulkupsert__V1__GetJobRequest  *request,
    Bulkupsert__V1__Job                 **jobp, // OUT
    struct bulkupsert_status             *status);          // OUT

// bulkupsert_cancel_job calls CancelJob: a job still QUEUED becomes
// CANCELLED and is never applied. On OK, *jobp holds the job (free with
// bulkupsert__v1__job__free_unpacked). FAILED_PRECONDITION (400) when the
// job is running or finished; NOT_FOUND for unknown or foreign jobs.
int bulkupsert_cancel_job(bulkupsert_client *client,
    const Bulkupsert__V1__CancelJobRequest  *request,
    Bulkupsert__V1__Job                    **jobp, // OUT
    struct bulkupsert_status                *status);             // OUT

// bulkupsert_list_jobs calls ListJobs: the caller's tenant's jobs, newest
// first, one page at a time (pass the reply's next_page_token back as
// request->page_token; it is unset on the last page). Free *replyp with
// bulkupsert__v1__list_jobs_response__free_unpacked. INVALID_ARGUMENT for a
// page_size over 1000, a bad page_token, state or time bound.
int bulkupsert_list_jobs(bulkupsert_client *client,
    const Bulkupsert__V1__ListJobsRequest  *request,
    Bulkupsert__V1__ListJobsResponse      **replyp, // OUT
    struct bulkupsert_status               *status);

// bulkupsert_describe_table calls DescribeTable: the tenant's columns and
// their metadata. Free *replyp with
// bulkupsert__v1__describe_table_response__free_unpacked.
int bulkupsert_describe_table(bulkupsert_client *client,
    const Bulkupsert__V1__DescribeTableRequest  *request,
    Bulkupsert__V1__DescribeTableResponse      **replyp, // OUT
    struct bulkupsert_status                    *status);                   // OUT

// bulkupsert_add_column calls AddColumn (a custom text column). Free
// *replyp with bulkupsert__v1__add_column_response__free_unpacked.
// ALREADY_EXISTS when the name is taken; INVALID_ARGUMENT for a bad name or
// length; FAILED_PRECONDITION when the row would be too wide.
int bulkupsert_add_column(bulkupsert_client *client,
    const Bulkupsert__V1__AddColumnRequest  *request,
    Bulkupsert__V1__AddColumnResponse      **replyp, // OUT
    struct bulkupsert_status                *status);               // OUT

// bulkupsert_set_import_enabled calls SetImportEnabled. Free *replyp with
// bulkupsert__v1__set_import_enabled_response__free_unpacked.
int bulkupsert_set_import_enabled(bulkupsert_client *client,
    const Bulkupsert__V1__SetImportEnabledRequest   *request,
    Bulkupsert__V1__SetImportEnabledResponse       **replyp, // OUT
    struct bulkupsert_status                        *status);                       // OUT

// bulkupsert_status_clear frees what a call put in status and zeroes it.
void bulkupsert_status_clear(struct bulkupsert_status *status);

// bulkupsert_code_name returns "OK", "INVALID_ARGUMENT", ... for code.
const char *bulkupsert_code_name(int code);

// bulkupsert_job_state_name returns "QUEUED", "RUNNING", "COMPLETED", ...
const char *bulkupsert_job_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif // BULKUPSERT_H
