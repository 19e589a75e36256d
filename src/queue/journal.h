// SPDX-License-Identifier: MIT
/*
 * The journal: the one thread that writes DATA/queue.db. Submits and job
 * events from any thread are queued to it; it takes the whole backlog,
 * writes it in one transaction and commits with one fsync (group commit),
 * then completes each submit (whose caller replies 202 only now: DESIGN
 * inv 1) and dispatches the new jobs to the worker pool in acceptance
 * order (inv 3).
 *
 * Idempotency keys are checked inside the same transaction, so two submits
 * with one key can never both create a job.
 *
 * Threads: bu_journal_submit and bu_journal_job_event from any thread; the
 * done callbacks run on the journal thread and must not block.
 * Lifecycle: open (creates queue.db) -> recover + start -> stop.
 */
#ifndef BU_QUEUE_JOURNAL_H
#define BU_QUEUE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/jobs.h"
#include "work/pool.h"

struct bu_journal;

// A submit in flight. The caller fills the inputs, keeps the struct and the
// memory it points to alive until done runs, and owns it again then.
struct bu_journal_submit {
    // Inputs.
    char job_id[BU_JOB_ID_SIZE];       // the new job's id
    char tenant[64];
    const char *idem;                  // idempotency key or NULL
    const void *payload;               // serialized request
    size_t len;
    uint32_t total;                    // records in the request
    void (*done)(struct bu_journal_submit *s);
    void *arg;                         // the caller's
    // Outputs, valid in done.
    int rv;                            // BU_OK: durable
    bool duplicate;                    // idem matched an earlier job...
    struct bu_job_info existing;       // ...which is this one
};

// bu_journal_open opens (creating) data_dir/queue.db. Returns BU_ENOMEM,
// BU_ESTORE, BU_EIO. Release with bu_journal_stop.
int bu_journal_open(struct bu_journal **jp, const char *data_dir);

// bu_journal_recover dispatches every unfinished job to pool in acceptance
// order and counts them as pending. Call once, from main, before start.
// Blocks while the workers' pipes are full. *np gets the number of jobs.
int bu_journal_recover(
    struct bu_journal *j, struct bu_pool *pool, size_t *np);

// bu_journal_start starts the journal thread, which dispatches to pool.
int bu_journal_start(struct bu_journal *j, struct bu_pool *pool);

// bu_journal_submit queues s. Returns BU_OK, after which s->done runs exactly
// once on the journal thread; or BU_ECLOSED (stopping) or BU_ENOMEM, and
// done never runs.
int bu_journal_submit(struct bu_journal *j, struct bu_journal_submit *s);

// bu_journal_job_event records a worker's job event (a bu_job_event_fn;
// arg is the journal). Never blocks; an event that cannot be queued is
// logged and left to recovery (the tenant database holds the truth).
void bu_journal_job_event(void *arg, const struct bu_job_event *ev);

// bu_journal_pending returns the number of accepted, unfinished jobs.
size_t bu_journal_pending(struct bu_journal *j);

// bu_journal_stop writes what is queued, stops the thread and closes
// queue.db; NULL is ignored. Submits still queued complete (done runs).
void bu_journal_stop(struct bu_journal *j);

#endif // BU_QUEUE_JOURNAL_H
