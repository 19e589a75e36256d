// SPDX-License-Identifier: MIT
/*
 * The worker pool: N worker threads, each fed by its own nng push/pull pair
 * (inproc). A tenant always maps to the same worker (a hash of its id), so
 * one thread is the only writer of a tenant's database and the tenant's jobs
 * apply in the order they were dispatched, which is acceptance order
 * (DESIGN inv 3), while different tenants proceed in parallel.
 *
 * A message carries only the job's identity; the worker reads the request
 * payload from queue.db, so queued work costs disk, not memory. A worker
 * takes every job waiting in its pipe (up to a bound), and applies each
 * tenant's jobs among them in one transaction: larger transactions are
 * where SQLite's throughput comes from.
 *
 * Threads: bu_pool_dispatch may be called from any one thread at a time (the
 * journal thread, or main during recovery) and never blocks: it queues the
 * job for the pool's dispatcher thread, which feeds the workers' pipes in
 * order and is the one to wait when a pipe is full. The journal must never
 * wait on a worker: a worker waits on the journal to claim its jobs, so a
 * journal blocked on a full pipe would hold both for good. The queue is
 * bounded by the accepted, unfinished jobs (the service's queue limits).
 * Job events are reported through the callback, from worker threads.
 */
#ifndef BU_WORK_POOL_H
#define BU_WORK_POOL_H

#include <stdint.h>

#include "store/jobs.h"

// A job finished: its final state and counts. Or, with state RUNNING, a
// note that is not final: the job waits out storage trouble (error says
// which) and its worker tries it again.
struct bu_job_event {
    char                 job_id[BU_JOB_ID_SIZE];
    char                 tenant[64];
    enum bu_job_state    state;
    struct bu_job_counts counts;
    char                 error[256];
    int64_t              at_ms;
};

// Called from a worker thread for each job event; must not block for long.
// ev is only valid during the call.
typedef void (*bu_job_event_fn)(void *arg, const struct bu_job_event *ev);

// Called from a worker thread before it applies jobs; may block. For each
// of the n jobs, rvs[i] gets BU_OK to go ahead or anything else to skip it
// (e.g. it was cancelled). Returns BU_OK, or an error for all of them.
typedef int (*bu_job_claim_fn)(
    void *arg, const char *const *job_ids, size_t n, int *rvs);

struct bu_pool_config {
    const char *data_dir;     // holds queue.db and tenants/
    int         nworkers;     // 1..64
    int     max_open_tenants; // per worker; least recently used closes first
    int64_t retention_ms;     // applied-job records older than this go
    bu_job_claim_fn claim;    // may be NULL: every job goes ahead
    bu_job_event_fn on_event;
    void           *event_arg; // for claim and on_event
};

struct bu_pool;

// bu_pool_start opens the pipes and starts the workers. queue.db must exist.
// Returns BU_EINVAL (bad config), BU_ENOMEM, BU_ECONNECT (nng), BU_ESTORE.
int bu_pool_start(struct bu_pool **poolp, const struct bu_pool_config *cfg);

// bu_pool_dispatch queues a job for the worker that owns tenant. Returns
// BU_ECLOSED once the pool is stopping, BU_ENOMEM; the job then stays
// QUEUED in queue.db for the next start.
int bu_pool_dispatch(
    struct bu_pool *pool, const char *tenant, int64_t seq, const char *job_id);

// bu_pool_stop stops the workers after the job each is applying (jobs still
// in the pipes or the outbox stay QUEUED in queue.db and are resumed at the
// next start), joins them, then closes the pipes; later dispatches return
// BU_ECLOSED. Waits for a worker's job in progress, and for its claim
// (the journal must still be running). NULL is ignored.
void bu_pool_stop(struct bu_pool *pool);

// bu_pool_free frees a stopped pool, once no thread can dispatch to it.
void bu_pool_free(struct bu_pool *pool);

#endif // BU_WORK_POOL_H
