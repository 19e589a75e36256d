// SPDX-License-Identifier: MIT
/*
 * The state file of `rpc-cli import --resume STATE`: a JSON document
 * (jansson) naming the input file (absolute path, as hex bytes so that any
 * file name round-trips, and as text for people; size, modification time
 * in nanoseconds, BLAKE2b-256 of its first 64 KiB), the options that shape
 * the requests (format, batch, the two flags), a random import id, and,
 * for each request answered so far, in input order, its job id, or null
 * when the server rejected its records; a rejection keeps the server's
 * message and its first IMPORT_REJECTION_ERRORS field errors, so that a
 * resumed import can still list them. Request N carries the idempotency
 * key "<import id>-<N>", so a request whose 202 was lost (a crash between
 * the answer and the next save) is answered with its first job when it is
 * sent again: no job is ever queued twice.
 *
 * The file is replaced atomically: written beside itself under a unique
 * name (mkstemp), fsync'd, renamed over STATE, and the folder fsync'd. One
 * import at a time may use a state file: import_state_lock holds an flock
 * on STATE.lock (beside it, left in place) for the whole run.
 *
 * Single-threaded, as all of rpc-cli.
 */
#ifndef BU_RPC_CLI_IMPORT_STATE_H
#define BU_RPC_CLI_IMPORT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "bulkupsert.h"
#include "records.h"

#define IMPORT_ID_LEN   32 // hex characters
#define IMPORT_JOB_LEN  36 // a UUID
#define IMPORT_HEAD_LEN 64 // hex characters of the head hash
// Field errors kept with each rejection (the rest are counted).
#define IMPORT_REJECTION_ERRORS 1000

// What identifies the input file.
struct import_ident {
    char     *path; // absolute (realpath), malloc'd
    long long size;
    long long mtime_ns;
    char      head[IMPORT_HEAD_LEN + 1];
};

// One field error of a rejection, as the server sent it. The strings are
// malloc'd, NULL when the server sent none.
struct import_field_error {
    long long record_index; // in the request; -1 when not about a record
    char     *contact_key;
    char     *column;
    char     *reason;
};

// A request the server rejected (no job).
struct import_rejection {
    long                       request; // 1-based
    uint32_t                   records;
    char                      *message; // malloc'd
    struct import_field_error *errors;  // the first nerrors, malloc'd
    size_t                     nerrors;
    size_t                     nerrors_all; // the server sent this many
};

struct import_state {
    char                import_id[IMPORT_ID_LEN + 1];
    struct import_ident input;
    enum records_format format;
    size_t              batch;
    int                 fail_on_error;
    int                 insert_if_not_exists;
    // Requests answered, in input order: job_ids[i] is request i+1's job,
    // or "" when it was rejected (see rejections).
    size_t nrequests;
    char (*job_ids)[IMPORT_JOB_LEN + 1];
    size_t                   cap;
    struct import_rejection *rejections;
    size_t                   nrejections;
    size_t                   rejections_cap;
    uint64_t                 records;  // records in those requests
    int                      finished; // the whole input was answered
};

// import_ident_of fills id for the regular file at path. Returns 0, or -1
// with a message in err (not a regular file, unreadable).
int import_ident_of(
    const char *path, struct import_ident *id, char *err, size_t errlen);

// import_ident_compare returns 0 when now is the file that was identified,
// or -1 with the difference in err.
int import_ident_compare(const struct import_ident *was,
    const struct import_ident *now, char *err, size_t errlen);

// import_state_init makes a new state with a random import id; the input
// identity is moved from *input (which is zeroed).
void import_state_init(struct import_state *st, struct import_ident *input,
    enum records_format format, size_t batch, int fail_on_error,
    int insert_if_not_exists);

// import_state_fini frees what st holds.
void import_state_fini(struct import_state *st);

// import_state_load reads file into st (zeroed by the caller). Returns 0;
// 1 when file does not exist; -1 with err when it cannot be read or is not
// a state file of this version.
int import_state_load(
    struct import_state *st, const char *file, char *err, size_t errlen);

// import_state_save writes st to file atomically (see above). Returns 0,
// or -1 with err. Blocks on fsync.
int import_state_save(
    const struct import_state *st, const char *file, char *err, size_t errlen);

// import_state_add records the answer to the next request: job_id, or NULL
// with the rejection's status (its message and first
// IMPORT_REJECTION_ERRORS field errors are copied). Returns 0, or -1 when
// out of memory.
int import_state_add(struct import_state *st, const char *job_id,
    uint32_t records, const struct bulkupsert_status *status);

// import_state_lock takes an exclusive flock on "<file>.lock" (created if
// need be) without waiting. Returns 0 with *fdp (the lock lasts until
// close(*fdp) or the process ends), 1 when another process holds it (err
// then holds the lock file's name), or -1 with err ("LOCKFILE: reason").
int import_state_lock(const char *file, int *fdp, char *err, size_t errlen);

// import_state_rejection returns the rejection of request nr (1-based),
// or NULL.
const struct import_rejection *import_state_rejection(
    const struct import_state *st, long nr);

#endif // BU_RPC_CLI_IMPORT_STATE_H
