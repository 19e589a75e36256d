// SPDX-License-Identifier: MIT
/*
 * Group commit. Each turn takes the whole backlog of the queue:
 *
 *   BEGIN; for each item: insert job | claim | cancel | finish; COMMIT
 *   then, in order: answer each item, bu_pool_dispatch() for new jobs
 *
 * A failed transaction fails every item of the turn (submits answer 500
 * and nothing was accepted; claims and cancels get the error). Its events
 * of finished jobs are kept and written again in a turn of their own (so
 * that one of them failing for good cannot fail every later submit), after
 * a pause that doubles from JOURNAL_RETRY_MIN_MS to JOURNAL_RETRY_MAX_MS
 * while those turns keep failing: a job applied in its tenant's database
 * must not stay RUNNING (and counted against the queue limits) until a
 * restart.
 * Only a stop drops them; recovery then redoes them from the tenant
 * databases' applied-markers. Notes (events of unfinished jobs) are
 * dropped.
 *
 * Between turns the thread waits at most a purge interval, so finished jobs
 * past their retention are deleted even when nothing else happens.
 *
 * Checkpoints of queue.db's WAL are not on the commit path: a second
 * thread, on its own connection, runs a PASSIVE checkpoint every
 * JOURNAL_CHECKPOINT_MS while the journal keeps committing (WAL lets a
 * checkpoint and a writer run at once). Otherwise every ~30 accepted
 * requests one commit, and the acks waiting on it, would pay for copying
 * the WAL into the database and two more fsyncs.
 */
#include "queue/journal.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/countmap.h"
#include "base/err.h"
#include "base/log.h"
#include "base/queue.h"
#include "base/thread.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JOURNAL_DEFAULT_RETENTION_MS (7LL * 24 * 3600 * 1000)
#define JOURNAL_PURGE_BATCH          1000
#define JOURNAL_CHECKPOINT_MS        100
#define JOURNAL_RETRY_MIN_MS         100
#define JOURNAL_RETRY_MAX_MS         5000
// A turn this slow is logged (every answer waits on it), once a minute.
#define JOURNAL_SLOW_TURN_MS  1000
#define JOURNAL_SLOW_EVERY_MS 60000

enum journal_kind {
    JOURNAL_SUBMIT,
    JOURNAL_EVENT,
    JOURNAL_CLAIM,
    JOURNAL_CANCEL,
};

// A claim or cancel: its caller waits on cv until done.
struct journal_sync {
    pthread_mutex_t     mu;
    pthread_cond_t      cv;
    bool                done;   // guarded by mu
    int                 rv;     // valid once done
    const char         *job_id; // JOURNAL_CANCEL
    const char         *tenant; // JOURNAL_CANCEL
    struct bu_job_info *info;   // JOURNAL_CANCEL
    const char *const  *ids;    // JOURNAL_CLAIM: n jobs, each answered
    size_t              n;      // in rvs
    int                *rvs;
};

// One queued node: a submit (the caller's struct), a worker's event, or a
// waiting claim or cancel.
struct journal_item {
    struct bu_qnode           node;
    enum journal_kind         kind;
    struct bu_journal_submit *submit;   // JOURNAL_SUBMIT
    struct bu_job_event       ev;       // JOURNAL_EVENT
    struct journal_sync      *sync;     // JOURNAL_CLAIM, JOURNAL_CANCEL
    bool                      finished; // EVENT/CANCEL: a job left the queue
};

struct bu_journal {
    struct bu_queue     queue; // of journal_item
    struct bu_jobs     *jobs;  // writer; the journal thread's once started
    struct bu_jobs     *ckpt;  // the checkpoint thread's connection
    pthread_t           ckpt_thread;
    bool                ckpt_started;
    pthread_mutex_t     ckpt_mu;
    pthread_cond_t      ckpt_cv;
    bool                ckpt_stop; // guarded by ckpt_mu
    struct bu_pool     *pool;
    pthread_t           thread;
    bool                started;
    bool                closed; // bu_journal_close has run (its caller's)
    int64_t             retention_ms;
    int64_t             last_purge_ms; // journal thread only
    struct bu_qnode    *retry; // events of failed turns; journal thread only
    int                 retry_attempt;  // failed tries of them in a row; ditto
    int64_t             retry_due_ms;   // bu_mono_ms of the next try; ditto
    int64_t             slow_logged_ms; // bu_mono_ms of the last slow note
    atomic_size_t       pending;        // accepted, not finished
    struct bu_countmap *pending_by_tenant;
};

int
bu_journal_open(struct bu_journal **jp, const char *data_dir)
{
    char path[4096];
    int  n = snprintf(path, sizeof(path), "%s/queue.db", data_dir);
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
    rv = bu_countmap_alloc(&j->pending_by_tenant);
    if (rv == BU_OK) {
        rv = bu_jobs_open(&j->jobs, path, BU_SQL_WRITER);
    }
    if (rv == BU_OK) {
        rv = bu_jobs_defer_checkpoints(j->jobs);
    }
    if (rv == BU_OK) {
        rv = bu_jobs_open(&j->ckpt, path, BU_SQL_WRITER);
    }
    if (rv == BU_OK && pthread_mutex_init(&j->ckpt_mu, NULL) != 0) {
        rv = BU_ENOMEM;
    } else if (rv == BU_OK && pthread_cond_init(&j->ckpt_cv, NULL) != 0) {
        pthread_mutex_destroy(&j->ckpt_mu);
        rv = BU_ENOMEM;
    }
    if (rv != BU_OK) {
        bu_jobs_close(j->ckpt);
        bu_jobs_close(j->jobs);
        bu_countmap_free(j->pending_by_tenant);
        bu_queue_fini(&j->queue);
        bu_free(j);
        return rv;
    }
    j->retention_ms = JOURNAL_DEFAULT_RETENTION_MS;
    atomic_init(&j->pending, 0);
    *jp = j;
    return BU_OK;
}

void
bu_journal_set_retention(struct bu_journal *j, int64_t retention_ms)
{
    j->retention_ms = retention_ms;
}

// journal_count adds delta to the pending counts of tenant.
static void
journal_count(struct bu_journal *j, const char *tenant, int delta)
{
    if (delta > 0) {
        atomic_fetch_add(&j->pending, (size_t) delta);
    } else {
        atomic_fetch_sub(&j->pending, (size_t) -delta);
    }
    if (bu_countmap_add(j->pending_by_tenant, tenant, delta, -1, NULL)
        != BU_OK) {
        BU_WARN(
            "tenant %s: queued-job count not updated (out of memory)", tenant);
    }
}

struct journal_recovery {
    struct bu_journal *j;
    struct bu_pool    *pool;
    size_t             n;
};

static int
journal_recover_one(void *arg, const struct bu_job_info *info)
{
    struct journal_recovery *r = arg;
    r->n++;
    journal_count(r->j, info->tenant, 1);
    return bu_pool_dispatch(r->pool, info->tenant, info->seq, info->job_id);
}

int
bu_journal_recover(struct bu_journal *j, struct bu_pool *pool, size_t *np)
{
    struct journal_recovery r = { .j = j, .pool = pool };
    int rv = bu_jobs_each_unfinished(j->jobs, journal_recover_one, &r);
    *np = r.n;
    return rv;
}

size_t
bu_journal_pending(struct bu_journal *j)
{
    return atomic_load(&j->pending);
}

size_t
bu_journal_pending_tenant(struct bu_journal *j, const char *tenant)
{
    return (size_t) bu_countmap_get(j->pending_by_tenant, tenant);
}

static int
journal_put(struct bu_journal *j, struct journal_item *it)
{
    int rv = bu_queue_put(&j->queue, &it->node);
    if (rv != BU_OK) {
        bu_free(it);
    }
    return rv;
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
    return journal_put(j, it);
}

void
bu_journal_job_event(void *arg, const struct bu_job_event *ev)
{
    struct bu_journal   *j = arg;
    struct journal_item *it;
    if (BU_ALLOC_STRUCT(it) == NULL) {
        BU_ERROR("job %s: event lost (out of memory); recovery will redo it",
            ev->job_id);
        return;
    }
    it->kind = JOURNAL_EVENT;
    it->ev = *ev;
    (void) journal_put(j, it);
}

// journal_sync_run queues a claim or cancel and waits for its answer.
static int
journal_sync_run(
    struct bu_journal *j, enum journal_kind kind, struct journal_sync *sync)
{
    struct journal_item *it;
    if (BU_ALLOC_STRUCT(it) == NULL) {
        return BU_ENOMEM;
    }
    it->kind = kind;
    it->sync = sync;
    sync->done = false;
    if (pthread_mutex_init(&sync->mu, NULL) != 0) {
        bu_free(it);
        return BU_ENOMEM;
    }
    if (pthread_cond_init(&sync->cv, NULL) != 0) {
        pthread_mutex_destroy(&sync->mu);
        bu_free(it);
        return BU_ENOMEM;
    }
    int rv = journal_put(j, it);
    if (rv == BU_OK) {
        pthread_mutex_lock(&sync->mu);
        while (!sync->done) {
            pthread_cond_wait(&sync->cv, &sync->mu);
        }
        pthread_mutex_unlock(&sync->mu);
        rv = sync->rv;
    }
    pthread_cond_destroy(&sync->cv);
    pthread_mutex_destroy(&sync->mu);
    return rv;
}

int
bu_journal_claim(void *arg, const char *const *job_ids, size_t n, int *rvs)
{
    struct journal_sync sync = { .ids = job_ids, .n = n, .rvs = rvs };
    return journal_sync_run(arg, JOURNAL_CLAIM, &sync);
}

// journal_write_claims claims each job of a sync; per-job answers in rvs.
static int
journal_write_claims(struct bu_journal *j, struct journal_sync *sync)
{
    int64_t now = bu_now_ms();
    for (size_t i = 0; i < sync->n; i++) {
        int rv = bu_jobs_claim(j->jobs, sync->ids[i], now);
        sync->rvs[i] = rv;
        if (rv != BU_OK && rv != BU_ENOENT) {
            return rv;
        }
    }
    return BU_OK;
}

int
bu_journal_cancel(struct bu_journal *j, const char *tenant, const char *job_id,
    struct bu_job_info *infop)
{
    struct journal_sync sync = {
        .job_id = job_id,
        .tenant = tenant,
        .info = infop,
    };
    return journal_sync_run(j, JOURNAL_CANCEL, &sync);
}

// journal_write_submit inserts one submit's job (or finds its earlier one).
static int
journal_write_submit(struct bu_journal *j, struct bu_journal_submit *s)
{
    s->duplicate = false;
    s->conflict = false;
    if (s->idem != NULL) {
        int rv = bu_jobs_find_idem(j->jobs, s->tenant, s->idem, &s->existing);
        if (rv == BU_OK) {
            s->duplicate
                = memcmp(s->existing.digest, s->digest, BU_DIGEST_SIZE) == 0;
            s->conflict = !s->duplicate;
            return BU_OK;
        }
        if (rv != BU_ENOENT) {
            return rv;
        }
    }
    memset(&s->existing, 0, sizeof(s->existing));
    int rv = bu_jobs_insert(j->jobs, s->job_id, s->tenant, s->idem, s->payload,
        s->len, s->idem != NULL ? s->digest : NULL, s->total, bu_now_ms(),
        &s->existing.seq);
    if (rv == BU_OK) {
        snprintf(
            s->existing.job_id, sizeof(s->existing.job_id), "%s", s->job_id);
        snprintf(
            s->existing.tenant, sizeof(s->existing.tenant), "%s", s->tenant);
        s->existing.state = BU_JOB_QUEUED;
        s->existing.counts.total = s->total;
    }
    return rv;
}

// journal_write_cancel cancels a QUEUED job of the sync's tenant.
static int
journal_write_cancel(struct bu_journal *j, struct journal_item *it)
{
    struct journal_sync *sync = it->sync;
    int                  rv = bu_jobs_get(j->jobs, sync->job_id, sync->info);
    if (rv == BU_OK && strcmp(sync->info->tenant, sync->tenant) != 0) {
        rv = BU_ENOENT; // another tenant's job does not exist (inv 4)
    }
    if (rv == BU_OK) {
        int64_t now = bu_now_ms();
        rv = bu_jobs_cancel(j->jobs, sync->job_id, now);
        if (rv == BU_ENOENT) {
            rv = BU_EBUSY; // it exists but is no longer queued
        } else if (rv == BU_OK) {
            sync->info->state = BU_JOB_CANCELLED;
            sync->info->finished_at_ms = now;
            it->finished = true;
        }
    }
    return rv;
}

// journal_write_item writes one item inside the turn's transaction and
// returns its own result; a storage failure (not a per-item answer like
// ENOENT) is what fails the whole turn.
static int
journal_write_item(struct bu_journal *j, struct journal_item *it)
{
    switch (it->kind) {
    case JOURNAL_SUBMIT:
        return it->submit->rv = journal_write_submit(j, it->submit);
    case JOURNAL_EVENT:
        if (!bu_job_state_final(it->ev.state)) {
            return bu_jobs_note(j->jobs, it->ev.job_id, it->ev.error);
        }
        it->finished = true;
        return bu_jobs_set_finished(j->jobs, it->ev.job_id, it->ev.state,
            &it->ev.counts, it->ev.error, it->ev.at_ms);
    case JOURNAL_CLAIM:
        return it->sync->rv = journal_write_claims(j, it->sync);
    case JOURNAL_CANCEL:
        return it->sync->rv = journal_write_cancel(j, it);
    }
    return BU_EINVAL;
}

static bool
journal_turn_fails(int rv)
{
    return rv != BU_OK && rv != BU_ENOENT && rv != BU_EBUSY && rv != BU_EEXIST;
}

// journal_answer completes one item after the turn (rv: the turn's result).
static void
journal_answer(struct bu_journal *j, struct journal_item *it, int rv)
{
    switch (it->kind) {
    case JOURNAL_SUBMIT: {
        struct bu_journal_submit *s = it->submit;
        if (rv != BU_OK) {
            s->rv = rv;
        }
        bool fresh = s->rv == BU_OK && !s->duplicate && !s->conflict;
        struct bu_job_info info = s->existing;
        if (fresh) {
            journal_count(j, info.tenant, 1);
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
        break;
    }
    case JOURNAL_EVENT:
        if (rv == BU_OK && it->finished) {
            journal_count(j, it->ev.tenant, -1);
        }
        break;
    case JOURNAL_CLAIM:
    case JOURNAL_CANCEL: {
        struct journal_sync *sync = it->sync;
        if (rv == BU_OK && it->kind == JOURNAL_CANCEL && it->finished) {
            journal_count(j, sync->tenant, -1);
        }
        pthread_mutex_lock(&sync->mu);
        if (rv != BU_OK) {
            sync->rv = rv;
        }
        sync->done = true;
        pthread_cond_signal(&sync->cv);
        pthread_mutex_unlock(&sync->mu);
        break;
    }
    }
}

// journal_keep_for_retry tells the items a failed turn keeps: the events
// of finished jobs.
static bool
journal_keep_for_retry(const struct journal_item *it)
{
    return it->kind == JOURNAL_EVENT && bu_job_state_final(it->ev.state);
}

// journal_turn writes one backlog chain in one transaction and answers it;
// when it fails, the events to write again go to j->retry, in order.
// Returns the transaction's result.
static int
journal_turn(struct bu_journal *j, struct bu_qnode *chain)
{
    int64_t t0 = bu_mono_ms();
    size_t  nitems = 0;
    int     rv = bu_jobs_begin(j->jobs);
    for (struct bu_qnode *n = chain; rv == BU_OK && n != NULL; n = n->next) {
        int irv = journal_write_item(j, (struct journal_item *) n);
        if (journal_turn_fails(irv)) {
            rv = irv;
        }
        nitems++;
    }
    int64_t t1 = bu_mono_ms();
    if (rv == BU_OK) {
        rv = bu_jobs_commit(j->jobs);
    }
    int64_t t2 = bu_mono_ms();
    BU_DEBUG("journal: %zu items written in %lld ms, committed in %lld ms",
        nitems, (long long) (t1 - t0), (long long) (t2 - t1));
    if (t2 - t0 >= JOURNAL_SLOW_TURN_MS
        && (j->slow_logged_ms == 0
            || t2 - j->slow_logged_ms >= JOURNAL_SLOW_EVERY_MS)) {
        j->slow_logged_ms = t2;
        BU_WARN("queue.db is slow: %zu items took %lld ms to write and %lld "
                "ms to commit; every answer waits on it",
            nitems, (long long) (t1 - t0), (long long) (t2 - t1));
    }
    if (rv != BU_OK) {
        BU_ERROR("queue.db write: %s", bu_strerror(rv));
        bu_jobs_rollback(j->jobs);
    }
    struct bu_qnode **tail = &j->retry;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    struct bu_qnode *next;
    for (struct bu_qnode *n = chain; n != NULL; n = next) {
        next = n->next;
        struct journal_item *it = (struct journal_item *) n;
        if (rv != BU_OK && journal_keep_for_retry(it)) {
            it->finished = false;
            n->next = NULL;
            *tail = n;
            tail = &n->next;
            continue;
        }
        journal_answer(j, it, rv);
        bu_free(n);
    }
    return rv;
}

// journal_retry_wait_ms is the pause before events of failed turns are
// written again.
static int
journal_retry_wait_ms(const struct bu_journal *j)
{
    int64_t wait = JOURNAL_RETRY_MIN_MS;
    for (int i = 0; i < j->retry_attempt && wait < JOURNAL_RETRY_MAX_MS; i++) {
        wait *= 2;
    }
    return wait > JOURNAL_RETRY_MAX_MS ? JOURNAL_RETRY_MAX_MS : (int) wait;
}

// journal_retry runs the kept events as a turn of their own and sets the
// time of the next try should it fail too.
static void
journal_retry(struct bu_journal *j)
{
    struct bu_qnode *chain = j->retry;
    j->retry = NULL;
    int rv = journal_turn(j, chain);
    j->retry_attempt = rv == BU_OK ? 0 : j->retry_attempt + 1;
    j->retry_due_ms = bu_mono_ms() + journal_retry_wait_ms(j);
}

// journal_drop_retries forgets the events still kept at a stop.
static void
journal_drop_retries(struct bu_journal *j)
{
    size_t           n = 0;
    struct bu_qnode *next;
    for (struct bu_qnode *q = j->retry; q != NULL; q = next) {
        next = q->next;
        bu_free(q);
        n++;
    }
    j->retry = NULL;
    if (n > 0) {
        BU_WARN("%zu finished jobs not recorded in queue.db; the next start "
                "finds them applied and records them",
            n);
    }
}

// journal_purge deletes finished jobs past retention, a batch at a time.
static void
journal_purge(struct bu_journal *j)
{
    int64_t now = bu_now_ms();
    size_t  total = 0, n = 0;
    j->last_purge_ms = now;
    do {
        int rv = bu_jobs_begin(j->jobs);
        if (rv == BU_OK) {
            rv = bu_jobs_purge(
                j->jobs, now - j->retention_ms, JOURNAL_PURGE_BATCH, &n);
        }
        if (rv == BU_OK) {
            rv = bu_jobs_commit(j->jobs);
        }
        if (rv != BU_OK) {
            bu_jobs_rollback(j->jobs);
            BU_WARN("purge of finished jobs: %s", bu_strerror(rv));
            return;
        }
        total += n;
    } while (n == JOURNAL_PURGE_BATCH);
    if (total > 0) {
        BU_INFO("purged %zu finished jobs past retention", total);
    }
}

// The wait between turns: often enough that purges happen on time.
static int
journal_purge_interval_ms(const struct bu_journal *j)
{
    int64_t every = j->retention_ms / 10;
    if (every > 3600 * 1000) {
        every = 3600 * 1000;
    }
    return every < 100 ? 100 : (int) every;
}

static void *
journal_main(void *arg)
{
    struct bu_journal *j = arg;
    int                every = journal_purge_interval_ms(j);
    journal_purge(j);
    for (;;) {
        bool    closed;
        int64_t wait = every;
        if (j->retry != NULL) {
            wait = j->retry_due_ms - bu_mono_ms();
            wait = wait < 0 ? 0 : wait > every ? every : wait;
        }
        struct bu_qnode *chain
            = bu_queue_get_all_until(&j->queue, (int) wait, &closed);
        if (chain == NULL && closed) {
            // One last try at the kept events, then the stop drops them.
            if (j->retry != NULL) {
                journal_retry(j);
            }
            journal_drop_retries(j);
            break;
        }
        if (j->retry != NULL && bu_mono_ms() >= j->retry_due_ms) {
            journal_retry(j);
        }
        bool had_retry = j->retry != NULL;
        if (chain != NULL && journal_turn(j, chain) != BU_OK && !had_retry
            && j->retry != NULL) {
            // This turn's failure kept events: their first try is due
            // after the shortest pause.
            j->retry_attempt = 0;
            j->retry_due_ms = bu_mono_ms() + JOURNAL_RETRY_MIN_MS;
        }
        if (bu_now_ms() - j->last_purge_ms >= every) {
            journal_purge(j);
        }
    }
    return NULL;
}

// journal_checkpoint_main checkpoints queue.db every JOURNAL_CHECKPOINT_MS
// until bu_journal_stop, then once more.
static void *
journal_checkpoint_main(void *arg)
{
    struct bu_journal *j = arg;
    pthread_mutex_lock(&j->ckpt_mu);
    while (!j->ckpt_stop) {
        struct timespec until = bu_deadline_after(JOURNAL_CHECKPOINT_MS);
        pthread_cond_timedwait(&j->ckpt_cv, &j->ckpt_mu, &until);
        pthread_mutex_unlock(&j->ckpt_mu);
        (void) bu_jobs_checkpoint(j->ckpt, NULL, NULL);
        pthread_mutex_lock(&j->ckpt_mu);
    }
    pthread_mutex_unlock(&j->ckpt_mu);
    return NULL;
}

int
bu_journal_start(struct bu_journal *j, struct bu_pool *pool)
{
    j->pool = pool;
    int rv = bu_thread_start(
        &j->ckpt_thread, "bu-checkpoint", 0, journal_checkpoint_main, j);
    j->ckpt_started = rv == BU_OK;
    if (rv == BU_OK) {
        rv = bu_thread_start(&j->thread, "bu-journal", 0, journal_main, j);
        j->started = rv == BU_OK;
    }
    return rv;
}

void
bu_journal_close(struct bu_journal *j)
{
    if (j == NULL || j->closed) {
        return;
    }
    j->closed = true;
    bu_queue_close(&j->queue);
    if (j->started) {
        pthread_join(j->thread, NULL);
    } else {
        // Never started: answer whatever was queued, without a pool.
        struct bu_qnode *chain;
        while ((chain = bu_queue_get_all(&j->queue)) != NULL) {
            journal_turn(j, chain);
        }
        journal_drop_retries(j);
    }
}

void
bu_journal_stop(struct bu_journal *j)
{
    if (j == NULL) {
        return;
    }
    bu_journal_close(j);
    if (j->ckpt_started) {
        pthread_mutex_lock(&j->ckpt_mu);
        j->ckpt_stop = true;
        pthread_cond_signal(&j->ckpt_cv);
        pthread_mutex_unlock(&j->ckpt_mu);
        pthread_join(j->ckpt_thread, NULL);
    }
    // The last turn's frames go into the database before the files close.
    (void) bu_jobs_checkpoint(j->ckpt, NULL, NULL);
    pthread_cond_destroy(&j->ckpt_cv);
    pthread_mutex_destroy(&j->ckpt_mu);
    bu_jobs_close(j->ckpt);
    bu_jobs_close(j->jobs);
    bu_countmap_free(j->pending_by_tenant);
    bu_queue_fini(&j->queue);
    bu_free(j);
}
