// SPDX-License-Identifier: MIT
/*
 * The durable job queue, DATA/queue.db: one row per accepted job with its
 * request payload, tenant, idempotency key, state, timestamps and counts.
 * `seq` (INTEGER PRIMARY KEY) is the acceptance order.
 *
 * One writer connection (the journal thread) makes every change, so writes
 * never contend; any number of reader connections (RPC handlers, workers)
 * read. A bu_jobs handle belongs to one thread at a time.
 */
#ifndef BU_STORE_JOBS_H
#define BU_STORE_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/sql.h"

// A job id is a UUIDv7 in its 36-character text form.
#define BU_JOB_ID_SIZE 37

// Same numbers as bulkupsert.v1.JobState.
enum bu_job_state {
    BU_JOB_QUEUED = 1,
    BU_JOB_RUNNING = 2,
    BU_JOB_COMPLETED = 3,
    BU_JOB_COMPLETED_WITH_ERRORS = 4,
    BU_JOB_FAILED = 5,
    BU_JOB_CANCELLED = 6,
};

struct bu_job_counts {
    uint32_t total;
    uint32_t inserted;
    uint32_t updated;
    uint32_t unchanged;
    uint32_t superseded;
    uint32_t not_found;
    uint32_t failed;
};

struct bu_job_info {
    int64_t              seq;
    char                 job_id[BU_JOB_ID_SIZE];
    char                 tenant[64];
    enum bu_job_state    state;
    int64_t              accepted_at_ms;
    int64_t              started_at_ms;  // 0 until running
    int64_t              finished_at_ms; // 0 until finished
    struct bu_job_counts counts;
    char                 error[256]; // why it FAILED, or why it waits
    uint8_t digest[16]; // of the request payload (zeros when unknown)
};

struct bu_jobs;

// bu_jobs_open opens DATA/queue.db (path is the file). A writer creates the
// file and schema; a reader needs it to exist. Returns BU_ENOENT, BU_ESTORE,
// BU_ENOMEM. Release with bu_jobs_close.
int bu_jobs_open(
    struct bu_jobs **jobsp, const char *path, enum bu_sql_mode mode);

// bu_jobs_close releases jobs; NULL is ignored.
void bu_jobs_close(struct bu_jobs *jobs);

// bu_jobs_defer_checkpoints stops commits on this connection from
// checkpointing the WAL (another connection does it: bu_jobs_checkpoint).
int bu_jobs_defer_checkpoints(struct bu_jobs *jobs);

// bu_jobs_checkpoint copies what it can of the WAL into queue.db without
// waiting for writers or readers (SQLite's PASSIVE checkpoint). *framesp
// and *donep (either may be NULL) get the WAL's frames and how many of
// them are now in the database. Returns BU_OK (also when another
// checkpoint was running) or a storage error.
int bu_jobs_checkpoint(struct bu_jobs *jobs, int *framesp, int *donep);

// bu_jobs_begin / bu_jobs_commit / bu_jobs_rollback group several writes
// into one transaction (writer only). commit is durable on return.
int  bu_jobs_begin(struct bu_jobs *jobs);
int  bu_jobs_commit(struct bu_jobs *jobs);
void bu_jobs_rollback(struct bu_jobs *jobs);

// bu_jobs_insert records a new QUEUED job. idem may be NULL. The payload is
// copied. *seqp gets its acceptance number. Returns BU_EEXIST when the job id
// or (tenant, idem) is already taken, BU_ESTORE, BU_EIO.
int bu_jobs_insert(struct bu_jobs *jobs, const char *job_id,
    const char *tenant,
    const char *idem,              // may be NULL
    const void *payload, size_t n, // serialized SubmitBulkUpsertRequest
    const uint8_t *digest,         // 16 bytes, or NULL
    uint32_t       total,          // number of records
    int64_t        accepted_at_ms,
    int64_t       *seqp); // OUT

// bu_jobs_find_idem looks up the job of tenant with idempotency key idem.
// Returns BU_ENOENT when there is none; on BU_OK *infop holds it.
int bu_jobs_find_idem(struct bu_jobs *jobs, const char *tenant,
    const char *idem, struct bu_job_info *infop);

// bu_jobs_set_running marks a QUEUED job RUNNING at started_at_ms.
int bu_jobs_set_running(
    struct bu_jobs *jobs, const char *job_id, int64_t started_at_ms);

// bu_jobs_claim moves a QUEUED (or, after a restart, RUNNING) job to
// RUNNING at started_at_ms. Returns BU_ENOENT when the job is in no such
// state (cancelled, finished, purged).
int bu_jobs_claim(
    struct bu_jobs *jobs, const char *job_id, int64_t started_at_ms);

// bu_jobs_cancel marks a QUEUED job CANCELLED and drops its payload.
// Returns BU_ENOENT when the job is not QUEUED.
int bu_jobs_cancel(struct bu_jobs *jobs, const char *job_id, int64_t at_ms);

// bu_jobs_purge deletes at most limit finished jobs that finished before
// before_ms; *np gets how many.
int bu_jobs_purge(
    struct bu_jobs *jobs, int64_t before_ms, int limit, size_t *np);

// bu_jobs_set_finished records the final state, counts and error (may be
// NULL) and drops the request payload, which is no longer needed.
int bu_jobs_set_finished(struct bu_jobs *jobs, const char *job_id,
    enum bu_job_state state, const struct bu_job_counts *counts,
    const char *error, // may be NULL
    int64_t     finished_at_ms);

// bu_jobs_note records why an unfinished job waits (storage trouble its
// worker retries) in its error, where GetJob shows it;
// bu_jobs_set_finished replaces it. Returns BU_ENOENT when the job is
// unknown or finished.
int bu_jobs_note(struct bu_jobs *jobs, const char *job_id, const char *note);

// bu_jobs_oldest_unfinished writes the seq of the tenant's oldest job
// still QUEUED or RUNNING into *seqp. Returns BU_ENOENT when there is none,
// BU_ESTORE.
int bu_jobs_oldest_unfinished(
    struct bu_jobs *jobs, const char *tenant, int64_t *seqp);

// bu_jobs_get reads the job with job_id. Returns BU_ENOENT when unknown.
int bu_jobs_get(
    struct bu_jobs *jobs, const char *job_id, struct bu_job_info *infop);

// What bu_jobs_list returns: one tenant's jobs, newest first.
struct bu_jobs_filter {
    int64_t  before_seq;         // only seq < this; 0: no bound
    int64_t  accepted_after_ms;  // only accepted_at >= this
    int64_t  accepted_before_ms; // only accepted_at < this; 0: no bound
    uint32_t states;             // bit (1 << state) per state; 0: any
};

// bu_jobs_list fills infos with at most max jobs of tenant that pass filter,
// newest (highest seq) first; *np gets how many. Page on with
// filter->before_seq = the last info's seq.
int bu_jobs_list(struct bu_jobs *jobs, const char *tenant,
    const struct bu_jobs_filter *filter,
    struct bu_job_info          *infos, // OUT, max of them
    size_t max, size_t *np);

// bu_jobs_payload copies the request payload of job_id into *payloadp
// (release with bu_free). Returns BU_ENOENT when the job or its payload is
// gone (finished jobs drop it).
int bu_jobs_payload(
    struct bu_jobs *jobs, const char *job_id, uint8_t **payloadp, size_t *np);

// bu_jobs_each_unfinished calls fn for every QUEUED or RUNNING job in
// acceptance order; a non-zero return from fn stops the walk and is
// returned.
int bu_jobs_each_unfinished(struct bu_jobs *jobs,
    int (*fn)(void *arg, const struct bu_job_info *info), void *arg);

// bu_job_state_final returns true for the states a job never leaves.
bool bu_job_state_final(enum bu_job_state state);

#endif // BU_STORE_JOBS_H
