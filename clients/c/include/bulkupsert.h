// SPDX-License-Identifier: MIT
/*
 * bulkupsert client library: calls the bulkupsert.v1.BulkUpsert service of a
 * bulkupsertd server over nng req/rep. Requests and replies are the
 * protobuf-c messages generated from proto/bulkupsert/v1/bulkupsert.proto;
 * each call is looked up by name in the generated service descriptor and
 * made through the service's invoke, which this library implements: it turns
 * a method call into an RpcRequest envelope and the RpcResponse back into a
 * reply message or a status.
 *
 * Threads: a bulkupsert_client may be used from several threads at once
 * (each call opens its own nng context). Calls block up to the client's
 * timeout.
 *
 * Errors are values: every call returns a gRPC status code (0 = OK) and fills
 * a struct bulkupsert_status with the server's status (http_status,
 * response_code, message, field errors) or with a transport error
 * (UNAVAILABLE when the server cannot be reached, DEADLINE_EXCEEDED on
 * timeout, INTERNAL for a reply that cannot be decoded).
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
};

typedef struct bulkupsert_client bulkupsert_client;

// bulkupsert_client_open makes a client for url ("tcp://host:port",
// "ipc:///path") that sends token with every call (token may be NULL and set
// later). It dials lazily: a server that is not up yet is not an error here.
// Returns 0, or BULKUPSERT_INVALID_ARGUMENT (bad url) / BULKUPSERT_INTERNAL
// (out of memory) with *clientp untouched. Release with
// bulkupsert_client_close.
int bulkupsert_client_open(
    bulkupsert_client **clientp, const char *url, const char *token);

// bulkupsert_client_close closes the connection and frees client; NULL is
// ignored. No call may be running on client.
void bulkupsert_client_close(bulkupsert_client *client);

// bulkupsert_client_set_token replaces the token sent with later calls (it
// is copied). Returns 0 or BULKUPSERT_INTERNAL.
int bulkupsert_client_set_token(bulkupsert_client *client, const char *token);

// bulkupsert_client_set_timeout sets the timeout of later calls (> 0 ms).
void bulkupsert_client_set_timeout(bulkupsert_client *client, int timeout_ms);

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
