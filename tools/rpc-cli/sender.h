// SPDX-License-Identifier: MIT
/*
 * What `submit` and `import` share: the options that shape requests
 * (--format, --batch, --no-fail-on-error, --no-insert, --retries), the
 * reader that hands out chunks (one request ahead of the sender, for
 * submit), the one
 * place where a chunk becomes a SubmitBulkUpsert call, and the report of a
 * request the server did not accept.
 *
 * Retries: a client opened with send_client_open carries the C client's
 * retry policy (bulkupsert_client_set_retry), which resends only what the
 * server refused unprocessed (429, 503) or what never left the process.
 * The only other resend in rpc-cli is import's, of a request that got no
 * answer (the client says it may have been applied: status maybe_applied),
 * which its idempotency key makes safe.
 *
 * Single-threaded, as all of rpc-cli.
 */
#ifndef BU_RPC_CLI_SENDER_H
#define BU_RPC_CLI_SENDER_H

#include <signal.h>
#include <stddef.h>

#include "cli.h"
#include "records.h"

// Options that decide what the requests carry and how they are sent.
struct send_opts {
    enum records_format format;
    int                 format_set; // --format given
    size_t              batch;      // records per request
    int                 no_fail_on_error;
    int                 no_insert;
    long                retries; // resends of a busy/unavailable refusal
};

// getopt_long values of the send options; commands number their own
// options from SEND_OPT_FIRST_LOCAL.
enum send_opt {
    SEND_OPT_FORMAT = CLI_OPT_FIRST_LOCAL,
    SEND_OPT_BATCH,
    SEND_OPT_NO_FAIL,
    SEND_OPT_NO_INSERT,
    SEND_OPT_RETRIES,
    SEND_OPT_FIRST_LOCAL,
};

// The long options of struct send_opts, for a getopt_long table.
// clang-format off
#define SEND_LONGOPTS                                                        \
    { "format", required_argument, NULL, SEND_OPT_FORMAT },                  \
    { "batch", required_argument, NULL, SEND_OPT_BATCH },                    \
    { "no-fail-on-error", no_argument, NULL, SEND_OPT_NO_FAIL },             \
    { "no-insert", no_argument, NULL, SEND_OPT_NO_INSERT },                  \
    { "retries", required_argument, NULL, SEND_OPT_RETRIES }
// clang-format on

// Help text of the send options (--retries is described by each command,
// whose default differs).
// clang-format off
#define SEND_HELP                                                            \
    "  --format csv|ndjson   input format (default: from the extension,\n"   \
    "                        .csv, .ndjson or .jsonl; otherwise csv)\n"      \
    "  --batch N             records per request, 1 to 1000 (default 1000)\n" \
    "  --no-fail-on-error    queue the valid records and report invalid ones\n" \
    "                        in the job result (default: one invalid record\n" \
    "                        rejects its whole request)\n"                   \
    "  --no-insert           only update existing contacts; unknown keys are\n" \
    "                        reported as not found\n"
// clang-format on

// send_opts_init fills o with the defaults: 1000 records a request, the
// server's defaults for the flags, and retries resends.
void send_opts_init(struct send_opts *o, long retries);

// send_option applies one send option (opt is a SEND_OPT_ value) with its
// argument. Returns CLI_EXIT_OK, or CLI_EXIT_USAGE after printing why the
// value is refused.
int send_option(
    struct send_opts *o, int opt, const char *arg, const char *cmd);

// send_client_open opens a client as cli_client_open does and gives it the
// retry policy of o. Returns CLI_EXIT_OK with *clientp (release with
// bulkupsert_client_close), or an exit code after printing the reason.
int send_client_open(const struct cli_conn *conn, const struct send_opts *o,
    const char *cmd, bulkupsert_client **clientp);

struct sender;

// sender_open opens path ("-" is standard input) in o->format (from the
// extension unless --format was given; o is updated) and reads the first
// chunk. With ahead, sender_next reads each chunk's successor before
// handing it out; without, only the first chunk is read early. Returns
// CLI_EXIT_OK with *senderp (release with sender_close), or CLI_EXIT_USAGE /
// CLI_EXIT_FAIL after printing the reason: the file cannot be opened, its
// first request is malformed, or it holds no record.
int sender_open(struct sender **senderp, const char *path, struct send_opts *o,
    int ahead, const char *cmd);

// sender_close frees s and the chunks it holds; NULL is ignored.
void sender_close(struct sender *s);

// sender_next hands out the next chunk. Reading ahead, it first reads the
// one behind it, so that malformed input further on stops the command
// before this chunk is sent. Returns CLI_EXIT_OK with *chunkp (borrowed:
// valid until the next call; NULL at the end of the input) and *lastp (1
// when no chunk follows; without read-ahead only known at the end), or,
// after printing "FILE:LINE: what is wrong", CLI_EXIT_USAGE (bad input) /
// CLI_EXIT_FAIL (read error, out of memory). Blocks on reading the file.
int sender_next(struct sender *s, struct records_chunk **chunkp, int *lastp);

// sender_on_error makes s call fn(arg) before it prints a message about
// the input (so that a progress bar can get out of the way).
void sender_on_error(struct sender *s, void (*fn)(void *), void *arg);

// sender_offset returns the bytes of input read so far (with read-ahead,
// one chunk beyond the chunks handed out).
long long sender_offset(const struct sender *s);

// sender_path returns the input name for messages: the path, or "stdin".
const char *sender_path(const struct sender *s);

// send_chunk sets the flags of o and idem (copied; NULL for none) on the
// chunk's request and calls SubmitBulkUpsert, through the client's retry
// policy. On OK, *replyp holds the reply (free it with
// bulkupsert__v1__submit_bulk_upsert_response__free_unpacked). status is
// filled in either case (clear with bulkupsert_status_clear;
// status->attempts counts the tries). Returns the status code, or
// BULKUPSERT_INTERNAL when out of memory. Blocks for the call, retry
// waits included; when stop is not NULL and *stop becomes nonzero (a
// signal handler sets it), the call gets SEND_STOP_GRACE_MS more to end
// by itself and is then cancelled: it ends CANCELLED, its message saying
// whether the request may have been applied.
int send_chunk(bulkupsert_client *client, const struct send_opts *o,
    struct records_chunk *chunk, const char *idem,
    const volatile sig_atomic_t               *stop,   // may be NULL
    Bulkupsert__V1__SubmitBulkUpsertResponse **replyp, // OUT
    struct bulkupsert_status                  *status);                 // OUT

// How long send_chunk lets a call run on after a stop: an answer on its
// way is taken, a retry wait is not sat out.
#define SEND_STOP_GRACE_MS 1000

// send_report prints a refused request on stderr: the status with the
// input line of each record error, then, when it is not the only request
// (nr > 1 or more follow), which request it was and how many went before.
// A request that may have been applied (maybe_applied: the client's
// status->maybe_applied, the request was sent and got no answer) is said
// to have got no answer, not to have been refused; resending it is safe
// only with an idempotency key.
void send_report(const struct bulkupsert_status *status, int maybe_applied,
    const struct records_chunk *chunk, const char *path, long nr, int several);

// send_is_rejection tells whether status refuses the records of a request
// (ValidationFails: invalid values, listed per record) rather than the
// request itself or the call. Further requests may still be accepted.
int send_is_rejection(const struct bulkupsert_status *status);

#endif // BU_RPC_CLI_SENDER_H
