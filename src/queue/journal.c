// SPDX-License-Identifier: MIT
/*
 * Group commit. Each turn takes the whole backlog of the queue:
 *
 *   BEGIN; for each node: insert job | mark running | mark finished; COMMIT
 *   then, in order: submit->done(), bu_pool_dispatch() for new jobs
 *
 * A failed transaction fails every submit of the turn (their callers answer
 * 500 and nothing was accepted) and drops its events, which recovery redoes
 * from the tenant databases' applied-markers.
 */
#include "queue/journal.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/queue.h"
#include "base/thread.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

enum journal_kind {
    JOURNAL_SUBMIT,
    JOURNAL_EVENT,
};

// One queued node: a submit (the caller's struct) or a worker's event.
struct journal_item {
    struct bu_qnode node;
    enum journal_kind kind;
    struct bu_journal_submit *submit; // JOURNAL_SUBMIT
    struct bu_job_event ev;           // JOURNAL_EVENT
};

struct bu_journal {
    struct bu_queue queue;   // of bu_journal_submit and journal_event
    struct bu_jobs *jobs;    // writer; the journal thread's once started
    struct bu_pool *pool;
    pthread_t thread;
    bool started;
    atomic_size_t pending;   // accepted, not finished
};

int
bu_journal_open(struct bu_journal **jp, const char *data_dir)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/queue.db", data_dir);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        return BU_EINVAL;
    }
    struct bu_journal *j;
    if (BU_ALLOC_STRUCT(j) == NULL) {
        return BU_ENOMEM;
    }
    int rv = bu_queue_init(&j->queue);
    if (rv != BU_OK) {
        bu_free(j);
        return rv;
    }
    rv = bu_jobs_open(&j->jobs, path, BU_SQL_WRITER);
    if (rv != BU_OK) {
        bu_queue_fini(&j->queue);
        bu_free(j);
        return rv;
    }
    atomic_init(&j->pending, 0);
    *jp = j;
    return BU_OK;
}

struct journal_recovery {
    struct bu_pool *pool;
    size_t n;
};

static int
journal_recover_one(void *arg, const struct bu_job_info *info)
{
    struct journal_recovery *r = arg;
    r->n++;
    return bu_pool_dispatch(r->pool, info->tenant, info->seq, info->job_id);
}

int
bu_journal_recover(struct bu_journal *j, struct bu_pool *pool, size_t *np)
{
    struct journal_recovery r = { .pool = pool };
    int rv = bu_jobs_each_unfinished(j->jobs, journal_recover_one, &r);
    atomic_store(&j->pending, r.n);
    *np = r.n;
    return rv;
}

size_t
bu_journal_pending(struct bu_journal *j)
{
    return atomic_load(&j->pending);
}

int
bu_journal_submit(struct bu_journal *j, struct bu_journal_submit *s)
{
    struct journal_item *it;
    if (BU_ALLOC_STRUCT(it) == NULL) {
        return BU_ENOMEM;
    }
    it->kind = JOURNAL_SUBMIT;
    it->submit = s;
    int rv = bu_queue_put(&j->queue, &it->node);
    if (rv != BU_OK) {
        bu_free(it);
    }
    return rv;
}

void
bu_journal_job_event(void *arg, const struct bu_job_event *ev)
{
    struct bu_journal *j = arg;
    struct journal_item *it;
    if (BU_ALLOC_STRUCT(it) == NULL) {
        BU_ERROR("job %s: event lost (out of memory); recovery will redo it",
            ev->job_id);
        return;
    }
    it->kind = JOURNAL_EVENT;
    it->ev = *ev;
    if (bu_queue_put(&j->queue, &it->node) != BU_OK) {
        bu_free(it);
    }
}

// journal_write_submit inserts one submit's job (or finds its duplicate).
static int
journal_write_submit(struct bu_journal *j, struct bu_journal_submit *s)
{
    s->duplicate = false;
    if (s->idem != NULL) {
        int rv = bu_jobs_find_idem(j->jobs, s->tenant, s->idem, &s->existing);
        if (rv == BU_OK) {
            s->duplicate = true;
            return BU_OK;
        }
        if (rv != BU_ENOENT) {
            return rv;
        }
    }
    memset(&s->existing, 0, sizeof(s->existing));
    int rv = bu_jobs_insert(j->jobs, s->job_id, s->tenant, s->idem, s->payload,
        s->len, s->total, bu_now_ms(), &s->existing.seq);
    if (rv == BU_OK) {
        snprintf(s->existing.job_id, sizeof(s->existing.job_id), "%s",
            s->job_id);
        snprintf(s->existing.tenant, sizeof(s->existing.tenant), "%s",
            s->tenant);
        s->existing.state = BU_JOB_QUEUED;
        s->existing.counts.total = s->total;
    }
    return rv;
}

static int
journal_write_event(struct bu_journal *j, const struct bu_job_event *ev)
{
    if (ev->kind == BU_JOB_EVENT_RUNNING) {
        return bu_jobs_set_running(j->jobs, ev->job_id, ev->at_ms);
    }
    return bu_jobs_set_finished(j->jobs, ev->job_id, ev->state, &ev->counts,
        ev->error, ev->at_ms);
}

// journal_turn writes one backlog chain in one transaction and completes it.
static void
journal_turn(struct bu_journal *j, struct bu_qnode *chain)
{
    int rv = bu_jobs_begin(j->jobs);
    for (struct bu_qnode *n = chain; rv == BU_OK && n != NULL; n = n->next) {
        struct journal_item *it = (struct journal_item *) n;
        if (it->kind == JOURNAL_SUBMIT) {
            it->submit->rv = journal_write_submit(j, it->submit);
            // A taken job id (never expected) fails only that submit.
            if (it->submit->rv != BU_OK && it->submit->rv != BU_EEXIST) {
                rv = it->submit->rv;
            }
        } else {
            rv = journal_write_event(j, &it->ev);
        }
    }
    if (rv == BU_OK) {
        rv = bu_jobs_commit(j->jobs);
    }
    if (rv != BU_OK) {
        BU_ERROR("queue.db write: %s", bu_strerror(rv));
        bu_jobs_rollback(j->jobs);
    }
    struct bu_qnode *next;
    for (struct bu_qnode *n = chain; n != NULL; n = next) {
        next = n->next;
        struct journal_item *it = (struct journal_item *) n;
        if (it->kind == JOURNAL_SUBMIT) {
            struct bu_journal_submit *s = it->submit;
            if (rv != BU_OK) {
                s->rv = rv;
            }
            bool fresh = s->rv == BU_OK && !s->duplicate;
            struct bu_job_info info = s->existing;
            if (fresh) {
                atomic_fetch_add(&j->pending, 1);
            }
            s->done(s); // s belongs to its caller again
            if (fresh && j->pool != NULL) {
                int prv = bu_pool_dispatch(
                    j->pool, info.tenant, info.seq, info.job_id);
                if (prv != BU_OK) {
                    BU_WARN("job %s stays queued for the next start: %s",
                        info.job_id, bu_strerror(prv));
                }
            }
        } else if (rv == BU_OK && it->ev.kind == BU_JOB_EVENT_FINISHED) {
            atomic_fetch_sub(&j->pending, 1);
        }
        bu_free(it);
    }
}

static void *
journal_main(void *arg)
{
    struct bu_journal *j = arg;
    struct bu_qnode *chain;
    while ((chain = bu_queue_get_all(&j->queue)) != NULL) {
        journal_turn(j, chain);
    }
    return NULL;
}

int
bu_journal_start(struct bu_journal *j, struct bu_pool *pool)
{
    j->pool = pool;
    int rv = bu_thread_start(&j->thread, "bu-journal", 0, journal_main, j);
    j->started = rv == BU_OK;
    return rv;
}

void
bu_journal_stop(struct bu_journal *j)
{
    if (j == NULL) {
        return;
    }
    bu_queue_close(&j->queue);
    if (j->started) {
        pthread_join(j->thread, NULL);
    } else {
        // Never started: complete whatever was queued, without a pool.
        struct bu_qnode *chain;
        while ((chain = bu_queue_get_all(&j->queue)) != NULL) {
            journal_turn(j, chain);
        }
    }
    bu_jobs_close(j->jobs);
    bu_queue_fini(&j->queue);
    bu_free(j);
}
