// SPDX-License-Identifier: MIT
/*
 * The journal: the one thread that writes DATA/queue.db. Submits, claims,
 * cancels and job events from any thread are queued to it; it takes the
 * whole backlog, writes it in one transaction and commits with one fsync
 * (group commit), then answers each operation: a submit's caller replies
 * 202 only now (DESIGN inv 1), and new jobs are dispatched to the worker
 * pool in acceptance order (inv 3).
 *
 * Because every state change passes through this one thread, a job is
 * either claimed by its worker (QUEUED -> RUNNING) or cancelled, never both,
 * and an idempotency key can never create two jobs.
 *
 * It also keeps the number of accepted, unfinished jobs, in all and per
 * tenant, for the queue limits, and purges finished jobs past their
 * retention.
 *
 * Threads: submit/claim/cancel/job_event from any thread (claim and cancel
 * block until their turn commits); done callbacks run on the journal thread
 * and must not block. Lifecycle: open -> recover -> start -> stop.
 */
#ifndef BU_QUEUE_JOURNAL_H
#define BU_QUEUE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/jobs.h"
#include "work/pool.h"

struct bu_journal;

#define BU_DIGEST_SIZE 16

// A submit in flight. The caller fills the inputs, keeps the struct and the
// memory it points to alive until done runs, and owns it again then.
struct bu_journal_submit {
    // Inputs.
    char        job_id[BU_JOB_ID_SIZE]; // the new job's id
    char        tenant[64];
    const char *idem;                   // idempotency key or NULL
    uint8_t     digest[BU_DIGEST_SIZE]; // of the payload; with idem only
    const void *payload;                // serialized request
    size_t      len;
    uint32_t    total; // records in the request
    void (*done)(struct bu_journal_submit *s);
    void *arg; // the caller's
    // Outputs, valid in done.
    int                rv;        // BU_OK: durable
    bool               duplicate; // idem matched the same request...
    bool               conflict;  // ...or a different one (rv BU_OK)
    struct bu_job_info existing;  // the job (new or earlier)
};

// bu_journal_open opens (creating) data_dir/queue.db. Returns BU_ENOMEM,
// BU_ESTORE, BU_EIO. Release with bu_journal_stop.
int bu_journal_open(struct bu_journal **jp, const char *data_dir);

// bu_journal_set_retention keeps finished jobs (and their idempotency keys)
// for retention_ms, then purges them. Default 7 days. Call before start.
void bu_journal_set_retention(struct bu_journal *j, int64_t retention_ms);

// bu_journal_recover dispatches every unfinished job to pool in acceptance
// order and counts them as pending. Call once, from main, before start.
// Never waits on the workers (bu_pool_dispatch queues). *np gets the
// number of jobs.
int bu_journal_recover(struct bu_journal *j, struct bu_pool *pool, size_t *np);

// bu_journal_start starts the journal thread, which dispatches to pool.
int bu_journal_start(struct bu_journal *j, struct bu_pool *pool);

// bu_journal_submit queues s. Returns BU_OK, after which s->done runs exactly
// once on the journal thread; or BU_ECLOSED (stopping) or BU_ENOMEM, and
// done never runs.
int bu_journal_submit(struct bu_journal *j, struct bu_journal_submit *s);

// bu_journal_claim moves each job from QUEUED (or RUNNING, after a
// restart) to RUNNING, for the worker about to apply them, in one turn;
// blocks until committed. rvs[i]: BU_OK, or BU_ENOENT (cancelled, finished
// or purged: skip it). Returns BU_OK, BU_ECLOSED, or a storage error. A
// bu_job_claim_fn; arg is the journal.
int bu_journal_claim(
    void *arg, const char *const *job_ids, size_t n, int *rvs);

// bu_journal_cancel cancels tenant's job_id if it is still QUEUED; blocks
// until committed. *infop gets the job as it is after the call. Returns
// BU_OK (cancelled), BU_ENOENT (no such job of this tenant), BU_EBUSY (not
// QUEUED any more: *infop says its state), BU_ECLOSED, storage errors.
int bu_journal_cancel(struct bu_journal *j, const char *tenant,
    const char *job_id, struct bu_job_info *infop);

// bu_journal_job_event records a worker's job event (a bu_job_event_fn;
// arg is the journal): a final state, or a note of why an unfinished job
// waits (bu_jobs_note). Never blocks; an event that cannot be queued is
// logged and left to recovery (the tenant database holds the truth).
void bu_journal_job_event(void *arg, const struct bu_job_event *ev);

// bu_journal_pending returns the number of accepted, unfinished jobs.
size_t bu_journal_pending(struct bu_journal *j);

// bu_journal_pending_tenant returns that number for one tenant.
size_t bu_journal_pending_tenant(struct bu_journal *j, const char *tenant);

// bu_journal_close writes what is queued and stops the thread; later
// submits, claims and events are refused (BU_ECLOSED), so workers that
// still run get an answer, while j stays valid for them until
// bu_journal_stop. Called by the thread that calls bu_journal_stop; a
// second call does nothing.
void bu_journal_close(struct bu_journal *j);

// bu_journal_stop closes j as bu_journal_close (unless done), then closes
// queue.db and frees j; NULL is ignored. Operations still queued complete.
// No worker may use j any more: stop the pool first.
void bu_journal_stop(struct bu_journal *j);

#endif // BU_QUEUE_JOURNAL_H
