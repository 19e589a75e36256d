// SPDX-License-Identifier: MIT
/*
 * The sending half of `submit` and `import`, kept in one place so that the
 * two commands build, send and report requests the same way. A sender owns
 * the reader and at most two chunks: the one handed out and, reading ahead
 * (submit), the one behind it. That read-ahead is why bad input stops
 * submit one request early. Memory never holds more than two chunks.
 */
// getopt_long's option names come from <getopt.h> in the commands.
#define _DEFAULT_SOURCE

#include "sender.h"

#include "base/alloc.h"
#include "base/err.h"
#include "progress.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The server's ResponseCode for "record values are invalid" (400).
#define SEND_RC_VALIDATION_FAILS 11

// Backoff of the client's retry policy. The server's retry_after_ms (a
// second for a full queue) comes on top of the first waits, and a wait is
// never longer than half a minute.
#define SEND_RETRY_BASE_MS 250u
#define SEND_RETRY_MAX_MS  30000u
// How often send_chunk looks at its stop flag while a call runs.
#define SEND_SLICE_MS 100

struct sender {
    struct records       *rec;
    struct records_chunk *cur;  // handed out by the last sender_next
    struct records_chunk *next; // read ahead; NULL at the end
    size_t                batch;
    int                   ahead; // read one chunk ahead
    char                 *name;
    void (*on_error)(void *); // called before an input message
    void *on_error_arg;
};

void
send_opts_init(struct send_opts *o, long retries)
{
    memset(o, 0, sizeof(*o));
    o->batch = RECORDS_MAX_PER_REQUEST;
    o->retries = retries;
}

int
send_option(struct send_opts *o, int opt, const char *arg, const char *cmd)
{
    long n;

    switch (opt) {
    case SEND_OPT_FORMAT:
        if (strcmp(arg, "csv") == 0) {
            o->format = RECORDS_CSV;
        } else if (strcmp(arg, "ndjson") == 0 || strcmp(arg, "jsonl") == 0) {
            o->format = RECORDS_NDJSON;
        } else {
            return cli_usage_error(
                cmd, "--format '%s' is not csv or ndjson", arg);
        }
        o->format_set = 1;
        return CLI_EXIT_OK;
    case SEND_OPT_BATCH:
        if (cli_parse_long(arg, 1, RECORDS_MAX_PER_REQUEST, &n) != 0) {
            return cli_usage_error(cmd,
                "--batch '%s' is not a number from 1 to %d", arg,
                RECORDS_MAX_PER_REQUEST);
        }
        o->batch = (size_t) n;
        return CLI_EXIT_OK;
    case SEND_OPT_NO_FAIL:
        o->no_fail_on_error = 1;
        return CLI_EXIT_OK;
    case SEND_OPT_NO_INSERT:
        o->no_insert = 1;
        return CLI_EXIT_OK;
    case SEND_OPT_RETRIES:
        if (cli_parse_long(arg, 0, 100, &o->retries) != 0) {
            return cli_usage_error(
                cmd, "--retries '%s' is not a number from 0 to 100", arg);
        }
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(cmd, "unexpected option");
    }
}

int
send_client_open(const struct cli_conn *conn, const struct send_opts *o,
    const char *cmd, bulkupsert_client **clientp)
{
    bulkupsert_client      *client = NULL;
    struct bulkupsert_retry retry = {
        .max_retries = (unsigned) o->retries,
        .base_delay_ms = SEND_RETRY_BASE_MS,
        .max_delay_ms = SEND_RETRY_MAX_MS,
    };

    int rv = cli_client_open(conn, cmd, &client);
    if (rv != CLI_EXIT_OK) {
        return rv;
    }
    bulkupsert_client_set_retry(client, &retry);
    *clientp = client;
    return CLI_EXIT_OK;
}

// Reads the next chunk into *chunkp (NULL at the end). Returns an exit
// code after printing the reader's message.
static int
sender_read(struct sender *s, struct records_chunk **chunkp)
{
    int rv = records_next(s->rec, s->batch, chunkp);
    if (rv == BU_OK) {
        return CLI_EXIT_OK;
    }
    *chunkp = NULL;
    if (s->on_error != NULL) {
        s->on_error(s->on_error_arg);
    }
    cli_error("%s", records_error(s->rec));
    return rv == BU_EPARSE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

int
sender_open(struct sender **senderp, const char *path, struct send_opts *o,
    int ahead, const char *cmd)
{
    struct sender *s = bu_alloc(sizeof(*s));
    char           err[512];

    if (!o->format_set) {
        o->format = records_format_of_path(path);
    }
    if (s == NULL
        || (s->name = bu_strdup(strcmp(path, "-") == 0 ? "stdin" : path))
            == NULL) {
        bu_free(s);
        cli_error("%s: out of memory", cmd);
        return CLI_EXIT_FAIL;
    }
    s->batch = o->batch;
    s->ahead = ahead;
    int rv = records_open(&s->rec, path, o->format, err, sizeof(err));
    if (rv != BU_OK) {
        cli_error("%s", err);
        sender_close(s);
        return rv == BU_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
    }
    if ((rv = sender_read(s, &s->next)) != CLI_EXIT_OK) {
        sender_close(s);
        return rv;
    }
    if (s->next == NULL) {
        cli_error("%s: no records to send", s->name);
        sender_close(s);
        return CLI_EXIT_USAGE;
    }
    *senderp = s;
    return CLI_EXIT_OK;
}

void
sender_close(struct sender *s)
{
    if (s == NULL) {
        return;
    }
    records_chunk_free(s->cur);
    records_chunk_free(s->next);
    records_close(s->rec);
    bu_free(s->name);
    bu_free(s);
}

int
sender_next(struct sender *s, struct records_chunk **chunkp, int *lastp)
{
    records_chunk_free(s->cur);
    s->cur = NULL;
    *chunkp = NULL;
    *lastp = 1;
    if (!s->ahead) {
        // The first chunk was read by sender_open; later ones here.
        int rv = CLI_EXIT_OK;
        if (s->next != NULL) {
            s->cur = s->next;
            s->next = NULL;
        } else {
            rv = sender_read(s, &s->cur);
        }
        *chunkp = s->cur;
        *lastp = s->cur == NULL;
        return rv;
    }
    s->cur = s->next;
    s->next = NULL;
    if (s->cur == NULL) {
        return CLI_EXIT_OK;
    }
    int rv = sender_read(s, &s->next);
    if (rv != CLI_EXIT_OK) {
        return rv;
    }
    *chunkp = s->cur;
    *lastp = s->next == NULL;
    return CLI_EXIT_OK;
}

void
sender_on_error(struct sender *s, void (*fn)(void *), void *arg)
{
    s->on_error = fn;
    s->on_error_arg = arg;
}

long long
sender_offset(const struct sender *s)
{
    return records_offset(s->rec);
}

const char *
sender_path(const struct sender *s)
{
    return s->name;
}

// Done callback of send_stoppable (an nng thread): wakes the waiting
// thread through the pipe whose writing end is arg.
static void
send_wake(bulkupsert_call *call, void *arg)
{
    char b = 1;

    (void) call;
    ssize_t n = write((int) (intptr_t) arg, &b, 1);
    (void) n; // a pipe of one byte cannot be full
}

// Waits for call, which wakes the pipe fds when it completes, looking at
// *stop every SEND_SLICE_MS (a signal also ends the wait early); cancels
// the call SEND_STOP_GRACE_MS after *stop became nonzero. Returns once
// the done callback has written its byte, so the pipe may then be closed.
static void
send_wait(
    bulkupsert_call *call, const int fds[2], const volatile sig_atomic_t *stop)
{
    struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
    int64_t       cancel_at = -1;
    char          b;

    while (poll(&pfd, 1, SEND_SLICE_MS) <= 0 || !(pfd.revents & POLLIN)) {
        int64_t now = progress_now_ms();
        if (*stop != 0 && cancel_at < 0) {
            cancel_at = now + SEND_STOP_GRACE_MS;
        }
        if (cancel_at >= 0 && now >= cancel_at) {
            bulkupsert_call_cancel(call); // no effect after the first
        }
    }
    while (read(fds[0], &b, 1) < 0 && errno == EINTR) { }
}

// Calls SubmitBulkUpsert with req as bulkupsert_submit does, but
// asynchronously, so that a stop is seen during the call and its retry
// waits (see send_chunk). Returns the status code.
static int
send_stoppable(bulkupsert_client                  *client,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *req,
    const volatile sig_atomic_t                   *stop,
    Bulkupsert__V1__SubmitBulkUpsertResponse     **replyp,
    struct bulkupsert_status                      *status)
{
    bulkupsert_call *call = NULL;
    int              fds[2];

    memset(status, 0, sizeof(*status));
    if (pipe(fds) != 0) {
        status->code = BULKUPSERT_INTERNAL;
        return BULKUPSERT_INTERNAL;
    }
    int code = bulkupsert_submit_async(
        client, req, send_wake, (void *) (intptr_t) fds[1], &call);
    if (code == BULKUPSERT_OK) {
        send_wait(call, fds, stop);
        code = bulkupsert_call_result(
            call, (ProtobufCMessage **) replyp, status);
        bulkupsert_call_free(call);
    } else {
        status->code = code;
    }
    close(fds[0]);
    close(fds[1]);
    return code;
}

int
send_chunk(bulkupsert_client *client, const struct send_opts *o,
    struct records_chunk *chunk, const char *idem,
    const volatile sig_atomic_t               *stop,
    Bulkupsert__V1__SubmitBulkUpsertResponse **replyp,
    struct bulkupsert_status                  *status)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = chunk->request;

    *replyp = NULL;
    if (o->no_fail_on_error) {
        req->has_fail_on_error = 1;
        req->fail_on_error = 0;
    }
    if (o->no_insert) {
        req->has_insert_if_not_exists = 1;
        req->insert_if_not_exists = 0;
    }
    // malloc'd: the request is freed with its __free_unpacked.
    free(req->idempotency_key);
    req->idempotency_key = NULL;
    if (idem != NULL && (req->idempotency_key = strdup(idem)) == NULL) {
        memset(status, 0, sizeof(*status));
        status->code = BULKUPSERT_INTERNAL;
        return BULKUPSERT_INTERNAL;
    }
    if (stop != NULL) {
        return send_stoppable(client, req, stop, replyp, status);
    }
    return bulkupsert_submit(client, req, replyp, status);
}

void
send_report(const struct bulkupsert_status *status, int maybe_applied,
    const struct records_chunk *chunk, const char *path, long nr, int several)
{
    if (status->code == BULKUPSERT_INTERNAL && status->message == NULL) {
        cli_error("out of memory");
    } else {
        cli_print_status(status, chunk->lines, chunk->nrecords);
    }
    if (status->attempts > 1) {
        cli_error("request %ld was tried %u times", nr, status->attempts);
    }
    if ((several || nr > 1) && maybe_applied) {
        cli_error("request %ld (records on lines %ld to %ld of %s) got no "
                  "answer and may have been applied; %ld request%s before "
                  "it %s accepted",
            nr, chunk->lines[0], chunk->lines[chunk->nrecords - 1], path,
            nr - 1, nr - 1 == 1 ? "" : "s", nr - 1 == 1 ? "was" : "were");
    } else if (several || nr > 1) {
        cli_error("request %ld (records on lines %ld to %ld of %s) was "
                  "not accepted; %ld request%s before it %s",
            nr, chunk->lines[0], chunk->lines[chunk->nrecords - 1], path,
            nr - 1, nr - 1 == 1 ? "" : "s", nr - 1 == 1 ? "was" : "were");
    }
}

int
send_is_rejection(const struct bulkupsert_status *status)
{
    return status->code == BULKUPSERT_INVALID_ARGUMENT
        && status->response_code == SEND_RC_VALIDATION_FAILS;
}
