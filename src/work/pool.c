// SPDX-License-Identifier: MIT
/*
 * Worker threads. Each worker owns one pull socket and a small cache of
 * open tenant databases (writer handles). The
 * message format is text: "<seq> <job_id> <tenant>".
 *
 * Stop: the dispatcher ends first; then each worker gets an empty message
 * (POOL_STOP) behind whatever its pipe still holds, skips those jobs and
 * exits after the one it is applying. The sockets close only after every
 * thread that used them has been joined: nng 1.5.2 may still be expiring a
 * timed receive (each batch ends in one) when a socket closes, and its
 * timer then locks the freed socket's mutex (a panic at stop, seen).
 *
 * Storage trouble (a full disk, an I/O error, a lock held by another
 * program) never skips a job. The worker holds the tenant: its jobs not
 * yet applied, and every later job of the tenant behind them, wait in the
 * worker's held list (bounded by the service's queue limits), in order
 * (DESIGN inv 3), and are tried again after a pause that grows, while the
 * worker goes on with its other tenants. Only a database that is not one,
 * or is corrupt, fails its jobs for good. A stop leaves held jobs
 * unfinished in queue.db: the next start resumes them. A job dropped for
 * lack of memory (to pass it on, or to hold it) sets its tenant aside
 * until the next start (pool_set_aside), so that no later job of the
 * tenant applies before it.
 */
#include "work/pool.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/queue.h"
#include "base/thread.h"
#include "store/tenant.h"
#include "work/apply.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define POOL_MAX_WORKERS 64
// A held tenant is tried again 500 ms after its first failure, then at
// doubling intervals up to 30 s (each try against a lock also waits out
// SQLite's busy timeout, 5 s).
#define POOL_RETRY_FIRST_MS 500
#define POOL_RETRY_MAX_MS   30000
// A batch: the jobs taken from the pipe at once, and the request bytes one
// transaction holds in memory. Random keys dirty a page per row until most
// of the table's pages are dirty, so the more rows a transaction holds, the
// fewer pages each row costs in the WAL and the checkpoint: at 1M rows, 128
// jobs a batch gave 10-16% more updates/s and 7% more inserts/s than 64,
// and 16 a fifth less; 256 gained little more and took 20-30 MB more of
// peak RSS (bench/README.md).
#define POOL_BATCH_JOBS  128
#define POOL_BATCH_BYTES (64u * 1024u * 1024u)
// How long a worker waits for the next job of a batch.
#define POOL_BATCH_WAIT_MS 3

// The set of tenants set aside: a job of theirs was dropped (no memory to
// pass it on or hold it), so their later jobs must not apply before it.
// A bit per hash: a tenant sharing a set-aside tenant's bit waits too.
#define POOL_ASIDE_BITS 1024

// The pause after a failed receive or stop message before the next try.
#define POOL_RECV_PAUSE_MS 10

// The message that tells a worker to stop: empty (a job's never is).
#define POOL_STOP_LEN 0

struct pool_held;

struct pool_tenant {
    char                 name[64];
    struct bu_tenant_db *db;
    uint64_t             last_used;
    int64_t              last_purge_ms;
};

struct pool_worker {
    struct bu_pool     *pool;
    int                 index;
    pthread_t           thread;
    int                 started;
    nng_socket          push;    // used by the dispatcher
    nng_socket          pull;    // used by the worker thread
    struct bu_jobs     *jobs;    // reader; owned by the worker thread
    struct pool_tenant *tenants; // max_open_tenants; worker thread only
    uint64_t            clock;   // LRU tick; worker thread only
    struct pool_held   *held;    // tenants held by storage trouble
    size_t              nheld, held_cap; // worker thread only
};

// A job on its way to a worker's pipe.
struct pool_outgoing {
    struct bu_qnode node; // first: the queue's node is the item
    int             worker;
    size_t          len;
    char            text[160]; // "<seq> <job_id> <tenant>"
    char            tenant[64];
};

struct bu_pool {
    struct bu_pool_config cfg;
    char                  queue_path[4096];
    int                   nworkers;
    struct pool_worker    workers[POOL_MAX_WORKERS];
    struct bu_queue       outbox; // of pool_outgoing, for the dispatcher
    bool                  outbox_ready;
    pthread_t             dispatcher;
    bool                  dispatcher_started;
    atomic_bool           stopping; // set by bu_pool_stop
    // Tenants set aside until the next start (pool_set_aside), a bit each.
    _Atomic uint64_t aside[POOL_ASIDE_BITS / 64];
    // Copies the tenants' WALs back while the workers report and gather.
    struct bu_checkpointer *checkpointer;
};

// FNV-1a: a stable tenant -> worker map.
static uint32_t
pool_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t) *s) * 16777619u;
    }
    return h;
}

static void
pool_tenant_close(struct pool_tenant *t)
{
    bu_tenant_db_close(t->db);
    memset(t, 0, sizeof(*t));
}

// pool_tenant_get returns the worker's open handle for tenant, opening it
// (and closing the least recently used one) when needed.
static int
pool_tenant_get(
    struct pool_worker *w, const char *tenant, struct pool_tenant **tp)
{
    int                 max = w->pool->cfg.max_open_tenants;
    struct pool_tenant *victim = &w->tenants[0];
    for (int i = 0; i < max; i++) {
        struct pool_tenant *t = &w->tenants[i];
        if (t->db != NULL && strcmp(t->name, tenant) == 0) {
            t->last_used = ++w->clock;
            *tp = t;
            return BU_OK;
        }
        if (t->last_used < victim->last_used) {
            victim = t;
        }
    }
    pool_tenant_close(victim);
    int rv = bu_tenant_db_open(
        &victim->db, w->pool->cfg.data_dir, tenant, BU_SQL_WRITER);
    if (rv != BU_OK) {
        pool_tenant_close(victim);
        return rv;
    }
    bu_tenant_db_checkpoint_with(victim->db, w->pool->checkpointer);
    snprintf(victim->name, sizeof(victim->name), "%s", tenant);
    victim->last_used = ++w->clock;
    *tp = victim;
    return BU_OK;
}

// pool_tenant_purge drops applied-job records past their retention, at most
// once a minute (or a tenth of the retention) per tenant. The records of the
// tenant's jobs still unfinished in queue.db stay, whatever their age: a
// job whose finished event did not reach queue.db is applied again at the
// next start, and only its record makes that change nothing.
static void
pool_tenant_purge(struct pool_worker *w, struct pool_tenant *t)
{
    int64_t keep = w->pool->cfg.retention_ms;
    int64_t every = keep / 10 < 60000 ? keep / 10 : 60000;
    int64_t now = bu_now_ms();
    if (keep <= 0 || now - t->last_purge_ms < every) {
        return;
    }
    t->last_purge_ms = now;
    int64_t below = INT64_MAX;
    int     rv = bu_jobs_oldest_unfinished(w->jobs, t->name, &below);
    if (rv != BU_OK && rv != BU_ENOENT) {
        BU_WARN("tenant %s: purge of old job results put off: %s", t->name,
            bu_strerror(rv));
        return;
    }
    rv = bu_tenant_db_purge(t->db, now - keep, below);
    if (rv != BU_OK) {
        BU_WARN("tenant %s: purge of old job results: %s", t->name,
            bu_strerror(rv));
    }
}

// One dispatched job, as the pipe carries it.
struct pool_job {
    int64_t seq;
    char    job_id[BU_JOB_ID_SIZE];
    char    tenant[64];
};

// A tenant held by storage trouble: its jobs, in dispatch order, wait here
// until a try at them succeeds.
struct pool_held {
    char             tenant[64];
    struct pool_job *jobs;
    size_t           n, cap;
    int              attempt; // tries that failed
    int64_t          next_ms; // bu_mono_ms of the next try
};

// pool_permanent tells storage trouble that no retry can mend (the file is
// not a database, or is corrupt) from the kind that passes.
static bool
pool_permanent(int rv)
{
    return rv == BU_ECORRUPT || rv == BU_EINVAL;
}

// pool_report sends the finished event of one applied (or failed) item.
static void
pool_report(struct pool_worker *w, const char *tenant,
    const struct bu_apply_item *item)
{
    const struct bu_pool_config *cfg = &w->pool->cfg;
    struct bu_job_event          ev = { 0 };
    snprintf(ev.job_id, sizeof(ev.job_id), "%s", item->job_id);
    snprintf(ev.tenant, sizeof(ev.tenant), "%s", tenant);
    if (item->rv == BU_OK) {
        ev.counts = item->counts;
        ev.state = bu_apply_state(&ev.counts);
    } else {
        // A fault of the job itself (bu_apply_job_fault): it fails for good.
        ev.state = BU_JOB_FAILED;
        snprintf(ev.error, sizeof(ev.error),
            "the job could not be applied: %s", bu_strerror(item->rv));
        BU_ERROR("job %s (tenant %s) failed: %s", item->job_id, tenant,
            bu_strerror(item->rv));
    }
    ev.at_ms = bu_now_ms();
    cfg->on_event(cfg->event_arg, &ev);
}

// pool_note tells the journal why jobs[0..n) wait (GetJob shows it as
// their error until they are claimed again or finish).
static void
pool_note(struct pool_worker *w, const struct pool_job *jobs, size_t n, int rv)
{
    const struct bu_pool_config *cfg = &w->pool->cfg;
    struct bu_job_event          ev = { .state = BU_JOB_RUNNING };
    if (rv == BU_EBUSY) {
        snprintf(ev.error, sizeof(ev.error),
            "waiting to be applied: the tenant's database is locked by "
            "another program; the server keeps trying");
    } else {
        snprintf(ev.error, sizeof(ev.error),
            "waiting to be applied: storage error (%s); the server keeps "
            "trying",
            bu_strerror(rv));
    }
    ev.at_ms = bu_now_ms();
    for (size_t i = 0; i < n; i++) {
        snprintf(ev.tenant, sizeof(ev.tenant), "%s", jobs[i].tenant);
        snprintf(ev.job_id, sizeof(ev.job_id), "%s", jobs[i].job_id);
        cfg->on_event(cfg->event_arg, &ev);
    }
}

// pool_apply_jobs claims, applies and reports jobs[0..n) of one tenant
// (n <= POOL_BATCH_JOBS), in order, in transactions of up to
// POOL_BATCH_BYTES of requests. A tenant database that cannot be used at
// all fails the claimed jobs left (FAILED). Returns BU_OK when every job
// is done with (applied, failed, cancelled); or the storage trouble that
// stopped it, with *donep the number of jobs done with before the first
// that was not, which stays claimed (RUNNING) or QUEUED.
static int
pool_apply_jobs(struct pool_worker *w, const struct pool_job *jobs, size_t n,
    size_t *donep)
{
    const struct bu_pool_config *cfg = &w->pool->cfg;
    const char                  *tenant = jobs[0].tenant;
    const char                  *ids[POOL_BATCH_JOBS];
    int                          claimed[POOL_BATCH_JOBS];
    struct bu_apply_item         items[POOL_BATCH_JOBS];
    uint8_t                     *payloads[POOL_BATCH_JOBS] = { 0 };
    *donep = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = jobs[i].job_id;
        claimed[i] = BU_OK;
    }
    if (cfg->claim != NULL) {
        // A claim that queue.db could not take leaves the jobs QUEUED:
        // storage trouble like any other, so they are held and tried
        // again, and the tenant's later jobs wait behind them.
        int rv = cfg->claim(cfg->event_arg, ids, n, claimed);
        if (rv != BU_OK) {
            if (rv != BU_ECLOSED) {
                BU_ERROR("worker %d: tenant %s: claiming %zu jobs: %s",
                    w->index, tenant, n, bu_strerror(rv));
            }
            return pool_permanent(rv) ? BU_ESTORE : rv;
        }
    }
    struct pool_tenant *t = NULL;
    int                 rv = pool_tenant_get(w, tenant, &t);
    size_t              first = 0, i = 0;
    while (rv == BU_OK && i < n) {
        // One chunk: claimed jobs whose payloads fit the byte bound.
        size_t k = 0, bytes = 0;
        first = i;
        for (; i < n && (k == 0 || bytes < POOL_BATCH_BYTES); i++) {
            if (claimed[i] != BU_OK) {
                continue; // cancelled, or finished by an earlier dispatch
            }
            size_t   len = 0;
            uint8_t *p = NULL;
            rv = bu_jobs_payload(w->jobs, ids[i], &p, &len);
            if (rv == BU_ENOENT) {
                rv = BU_OK; // purged: nothing to apply
                continue;
            }
            if (rv != BU_OK) {
                BU_ERROR("job %s: reading its request: %s", ids[i],
                    bu_strerror(rv));
                break;
            }
            payloads[k] = p;
            items[k] = (struct bu_apply_item) {
                .job_id = ids[i],
                .seq = jobs[i].seq,
                .payload = p,
                .len = len,
            };
            k++;
            bytes += len;
        }
        int64_t t0 = bu_mono_ms();
        if (rv == BU_OK && k > 0) {
            rv = bu_apply_batch(t->db, items, k);
        }
        BU_DEBUG("worker %d: tenant %s: %zu jobs, %zu bytes in %lld ms",
            w->index, tenant, k, bytes, (long long) (bu_mono_ms() - t0));
        for (size_t x = 0; x < k; x++) {
            if (rv == BU_OK) {
                pool_report(w, tenant, &items[x]);
            }
            bu_free(payloads[x]);
            payloads[x] = NULL;
        }
    }
    if (rv == BU_OK) {
        *donep = n;
        pool_tenant_purge(w, t);
        return BU_OK;
    }
    if (!pool_permanent(rv)) {
        *donep = first;
        return rv;
    }
    for (size_t x = first; x < n; x++) {
        if (claimed[x] == BU_OK) {
            struct bu_apply_item item = { .job_id = ids[x], .rv = rv };
            pool_report(w, tenant, &item);
        }
    }
    *donep = n;
    return BU_OK;
}

// pool_held_find returns the worker's held entry of tenant, or NULL.
static struct pool_held *
pool_held_find(struct pool_worker *w, const char *tenant)
{
    for (size_t i = 0; i < w->nheld; i++) {
        if (strcmp(w->held[i].tenant, tenant) == 0) {
            return &w->held[i];
        }
    }
    return NULL;
}

// pool_held_add appends jobs[0..n) to the tenant's held entry, making one
// when needed. Returns the entry, or NULL when out of memory (the jobs
// then stay unfinished in queue.db until the next start).
static struct pool_held *
pool_held_add(struct pool_worker *w, const struct pool_job *jobs, size_t n)
{
    struct pool_held *h = pool_held_find(w, jobs[0].tenant);
    if (h == NULL) {
        if (w->nheld == w->held_cap) {
            size_t            cap = w->held_cap > 0 ? 2 * w->held_cap : 4;
            struct pool_held *p = bu_realloc(w->held, cap * sizeof(*p));
            if (p == NULL) {
                return NULL;
            }
            w->held = p;
            w->held_cap = cap;
        }
        h = &w->held[w->nheld++];
        memset(h, 0, sizeof(*h));
        snprintf(h->tenant, sizeof(h->tenant), "%s", jobs[0].tenant);
    }
    if (h->n + n > h->cap) {
        size_t cap = h->cap > 0 ? h->cap : POOL_BATCH_JOBS;
        while (cap < h->n + n) {
            cap *= 2;
        }
        struct pool_job *p = bu_realloc(h->jobs, cap * sizeof(*p));
        if (p == NULL) {
            if (h->n == 0) {
                w->nheld--; // the entry just made, still empty (the last)
            }
            return NULL;
        }
        h->jobs = p;
        h->cap = cap;
    }
    memcpy(h->jobs + h->n, jobs, n * sizeof(*jobs));
    h->n += n;
    return h;
}

// pool_held_drop ends the held entry h (all its jobs done with).
static void
pool_held_drop(struct pool_worker *w, struct pool_held *h)
{
    bu_free(h->jobs);
    *h = w->held[--w->nheld];
}

// pool_held_failed records a failed try (rv) at h and schedules the next.
static void
pool_held_failed(struct pool_worker *w, struct pool_held *h, int rv)
{
    int64_t pause_ms = POOL_RETRY_FIRST_MS;
    for (int i = 0; i < h->attempt && pause_ms < POOL_RETRY_MAX_MS; i++) {
        pause_ms *= 2;
    }
    pause_ms = pause_ms < POOL_RETRY_MAX_MS ? pause_ms : POOL_RETRY_MAX_MS;
    h->attempt++;
    h->next_ms = bu_mono_ms() + pause_ms;
    BU_ERROR("worker %d: tenant %s: %s; its %zu jobs wait, trying again in "
             "%lld ms",
        w->index, h->tenant,
        rv == BU_EBUSY ? "locked by another program" : bu_strerror(rv), h->n,
        (long long) pause_ms);
    pool_note(w, h->jobs, h->n, rv);
}

static uint32_t
pool_aside_bit(const char *tenant)
{
    uint32_t h = pool_hash(tenant);
    return (h ^ (h >> 16)) % POOL_ASIDE_BITS; // not the worker's choice
}

// pool_set_aside is called where a job of tenant is dropped: it stays
// QUEUED in queue.db, and so must every later job of the tenant, or the
// next start would apply the dropped one over newer values (DESIGN inv 3).
// From any thread.
static void
pool_set_aside(struct bu_pool *pool, const char *tenant, const char *why)
{
    uint32_t b = pool_aside_bit(tenant);
    uint64_t bit = UINT64_C(1) << (b % 64);
    if ((atomic_fetch_or(&pool->aside[b / 64], bit) & bit) == 0) {
        BU_ERROR("tenant %s: a job could not be passed on (%s); it and the "
                 "tenant's later jobs stay queued until the next start, "
                 "which applies them in order",
            tenant, why);
    }
}

static bool
pool_is_aside(struct bu_pool *pool, const char *tenant)
{
    uint32_t b = pool_aside_bit(tenant);
    return (atomic_load(&pool->aside[b / 64]) & (UINT64_C(1) << (b % 64)))
        != 0;
}

// pool_run_group runs the jobs of one tenant, in order: behind the jobs
// already held for that tenant, or now; the ones that meet storage
// trouble are held.
static void
pool_run_group(struct pool_worker *w, struct pool_job *const *jobs, size_t n)
{
    struct pool_job copy[POOL_BATCH_JOBS];
    for (size_t i = 0; i < n; i++) {
        copy[i] = *jobs[i];
    }
    if (pool_is_aside(w->pool, copy[0].tenant)) {
        return; // they stay QUEUED, behind the dropped one
    }
    struct pool_held *h = pool_held_find(w, copy[0].tenant);
    if (h != NULL) {
        if (pool_held_add(w, copy, n) == NULL) {
            pool_set_aside(w->pool, copy[0].tenant, "out of memory");
        }
        return;
    }
    size_t done = 0;
    int    rv = pool_apply_jobs(w, copy, n, &done);
    if (rv == BU_OK || rv == BU_ECLOSED) {
        return;
    }
    if ((h = pool_held_add(w, copy + done, n - done)) == NULL) {
        pool_set_aside(w->pool, copy[0].tenant, "out of memory");
        return;
    }
    pool_held_failed(w, h, rv);
}

// pool_run_held tries again the held tenants whose time has come, each
// from its first job on, POOL_BATCH_JOBS at a time.
static void
pool_run_held(struct pool_worker *w)
{
    int64_t now = bu_mono_ms();
    for (size_t i = 0; i < w->nheld;) {
        struct pool_held *h = &w->held[i];
        if (h->next_ms > now) {
            i++;
            continue;
        }
        int rv = BU_OK;
        while (rv == BU_OK && h->n > 0) {
            size_t k = h->n < POOL_BATCH_JOBS ? h->n : POOL_BATCH_JOBS;
            size_t done = 0;
            rv = pool_apply_jobs(w, h->jobs, k, &done);
            memmove(h->jobs, h->jobs + done, (h->n - done) * sizeof(*h->jobs));
            h->n -= done;
        }
        if (rv == BU_OK) {
            BU_INFO("worker %d: tenant %s: its held jobs are applied",
                w->index, h->tenant);
            pool_held_drop(w, h); // the last entry moved into slot i
        } else if (rv == BU_ECLOSED) {
            return;
        } else {
            pool_held_failed(w, h, rv);
            i++;
        }
    }
}

// pool_held_wait_ms returns how long the worker may wait for its pipe
// before a held tenant is due: NNG_DURATION_INFINITE when none is held.
static int
pool_held_wait_ms(const struct pool_worker *w)
{
    if (w->nheld == 0) {
        return NNG_DURATION_INFINITE;
    }
    int64_t next = w->held[0].next_ms;
    for (size_t i = 1; i < w->nheld; i++) {
        next = w->held[i].next_ms < next ? w->held[i].next_ms : next;
    }
    int64_t wait = next - bu_mono_ms();
    return wait <= 0 ? 0 : wait > 60000 ? 60000 : (int) wait;
}

// pool_parse reads "<seq> <job_id> <tenant>" from a pipe message.
static int
pool_parse(nng_msg *msg, struct pool_job *job)
{
    char   text[256];
    size_t len = nng_msg_len(msg);
    if (len >= sizeof(text)) {
        len = sizeof(text) - 1;
    }
    memcpy(text, nng_msg_body(msg), len);
    text[len] = '\0';
    long long seq;
    if (sscanf(text, "%lld %36s %63s", &seq, job->job_id, job->tenant) != 3) {
        BU_ERROR("bad dispatch \"%s\"", text);
        return BU_EPARSE;
    }
    job->seq = seq;
    return BU_OK;
}

// pool_run_batch applies a batch taken from the pipe, tenant by tenant;
// each tenant's jobs keep their dispatch order.
static void
pool_run_batch(struct pool_worker *w, struct pool_job *batch, size_t n)
{
    bool             done[POOL_BATCH_JOBS] = { false };
    struct pool_job *group[POOL_BATCH_JOBS];
    for (size_t i = 0; i < n; i++) {
        if (done[i]) {
            continue;
        }
        size_t k = 0;
        for (size_t j = i; j < n; j++) {
            if (!done[j] && strcmp(batch[j].tenant, batch[i].tenant) == 0) {
                group[k++] = &batch[j];
                done[j] = true;
            }
        }
        pool_run_group(w, group, k);
    }
}

static void *
pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct pool_job    *batch = bu_calloc(POOL_BATCH_JOBS, sizeof(*batch));
    // Applying is background work: acks (handlers, journal) go first when
    // the CPUs are busy, and the worker catches up in the idle time.
    if (bu_thread_background() != BU_OK) {
        BU_WARN("worker %d: cannot lower its priority", w->index);
    }
    for (bool stop = false; !stop;) {
        nng_msg *msg;
        // Stopping, held tenants wait for the next start.
        nng_socket_set_ms(w->pull, NNG_OPT_RECVTIMEO,
            atomic_load(&w->pool->stopping) ? NNG_DURATION_INFINITE
                                            : pool_held_wait_ms(w));
        int rv = nng_recvmsg(w->pull, &msg, 0);
        if (rv == NNG_ETIMEDOUT) {
            if (!atomic_load(&w->pool->stopping)) {
                pool_run_held(w);
            }
            continue;
        }
        if (rv == NNG_ECLOSED) {
            break;
        }
        if (rv != 0) {
            // Out of memory, say: the worker must go on draining its pipe,
            // or the dispatcher (and the stop) would wait on it for good.
            BU_ERROR("worker %d: recv: %s", w->index, nng_strerror(rv));
            nng_msleep(POOL_RECV_PAUSE_MS);
            continue;
        }
        if (batch == NULL) {
            // No memory for a batch: the job stays queued on disk.
            stop = nng_msg_len(msg) == POOL_STOP_LEN;
            nng_msg_free(msg);
            BU_ERROR("worker %d: out of memory", w->index);
            continue;
        }
        // The pipe hands jobs over one at a time as nng's threads get to
        // it, even with a hundred queued: waiting up to POOL_BATCH_WAIT_MS
        // for each next one fills the batch (one transaction for many jobs)
        // and costs an idle worker no more than that once.
        size_t n = 0;
        nng_socket_set_ms(w->pull, NNG_OPT_RECVTIMEO, POOL_BATCH_WAIT_MS);
        do {
            stop = nng_msg_len(msg) == POOL_STOP_LEN;
            if (!stop && pool_parse(msg, &batch[n]) == BU_OK) {
                n++;
            }
            nng_msg_free(msg);
        } while (!stop && n < POOL_BATCH_JOBS
            && nng_recvmsg(w->pull, &msg, 0) == 0);
        // Once the pool is stopping, jobs still coming out of the pipe stay
        // QUEUED in queue.db for the next start.
        if (!atomic_load(&w->pool->stopping)) {
            pool_run_batch(w, batch, n);
            pool_run_held(w);
        }
    }
    bu_free(batch);
    // Held jobs stay unfinished in queue.db for the next start.
    for (size_t i = 0; i < w->nheld; i++) {
        BU_WARN("worker %d: tenant %s: stopping with %zu jobs held; they "
                "resume at the next start",
            w->index, w->held[i].tenant, w->held[i].n);
        bu_free(w->held[i].jobs);
    }
    bu_free(w->held);
    w->held = NULL;
    w->nheld = w->held_cap = 0;
    for (int i = 0; i < w->pool->cfg.max_open_tenants; i++) {
        pool_tenant_close(&w->tenants[i]);
    }
    return NULL;
}

static int
pool_worker_open(struct bu_pool *pool, struct pool_worker *w)
{
    char url[128];
    snprintf(url, sizeof(url), "inproc://bulkupsert-work-%p-%d", (void *) pool,
        w->index);
    int rv;
    if ((rv = nng_pull0_open(&w->pull)) != 0
        || (rv = nng_socket_set_int(w->pull, NNG_OPT_RECVBUF, 1024)) != 0
        || (rv = nng_listen(w->pull, url, NULL, 0)) != 0
        || (rv = nng_push0_open(&w->push)) != 0
        || (rv = nng_setopt_int(w->push, NNG_OPT_SENDBUF, 1024)) != 0
        || (rv = nng_dial(w->push, url, NULL, 0)) != 0) {
        BU_ERROR("worker %d pipe: %s", w->index, nng_strerror(rv));
        return BU_ECONNECT;
    }
    w->tenants
        = bu_calloc((size_t) pool->cfg.max_open_tenants, sizeof(*w->tenants));
    if (w->tenants == NULL) {
        return BU_ENOMEM;
    }
    return bu_jobs_open(&w->jobs, pool->queue_path, BU_SQL_READER);
}

// pool_dispatcher_main moves queued jobs into the workers' pipes, in
// order, waiting while a pipe is full; it ends when the outbox is closed
// and empty.
static void *
pool_dispatcher_main(void *arg)
{
    struct bu_pool  *pool = arg;
    struct bu_qnode *n;
    while ((n = bu_queue_get(&pool->outbox)) != NULL) {
        struct pool_outgoing *out = (struct pool_outgoing *) n;
        if (atomic_load(&pool->stopping)) {
            bu_free(out); // stays QUEUED in queue.db
            continue;
        }
        int rv = nng_send(
            pool->workers[out->worker].push, out->text, out->len, 0);
        if (rv != 0) {
            pool_set_aside(pool, out->tenant, nng_strerror(rv));
        }
        bu_free(out);
    }
    return NULL;
}

int
bu_pool_start(struct bu_pool **poolp, const struct bu_pool_config *cfg)
{
    if (cfg->nworkers < 1 || cfg->nworkers > POOL_MAX_WORKERS
        || cfg->max_open_tenants < 1 || cfg->on_event == NULL) {
        return BU_EINVAL;
    }
    struct bu_pool *pool;
    if (BU_ALLOC_STRUCT(pool) == NULL) {
        return BU_ENOMEM;
    }
    pool->cfg = *cfg;
    atomic_init(&pool->stopping, false);
    snprintf(pool->queue_path, sizeof(pool->queue_path), "%s/queue.db",
        cfg->data_dir);
    int rv = bu_queue_init(&pool->outbox);
    pool->outbox_ready = rv == BU_OK;
    if (rv == BU_OK) {
        rv = bu_checkpointer_start(&pool->checkpointer, BU_TENANT_WAL_FRAMES);
    }
    for (int i = 0; rv == BU_OK && i < cfg->nworkers; i++) {
        struct pool_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        pool->nworkers = i + 1;
        rv = pool_worker_open(pool, w);
        if (rv == BU_OK) {
            char name[32];
            snprintf(name, sizeof(name), "bu-worker-%d", i);
            rv = bu_thread_start(&w->thread, name, 0, pool_worker_main, w);
            w->started = rv == BU_OK;
        }
    }
    if (rv == BU_OK) {
        rv = bu_thread_start(
            &pool->dispatcher, "bu-dispatch", 0, pool_dispatcher_main, pool);
        pool->dispatcher_started = rv == BU_OK;
    }
    if (rv != BU_OK) {
        bu_pool_free(pool);
        return rv;
    }
    *poolp = pool;
    return BU_OK;
}

int
bu_pool_dispatch(
    struct bu_pool *pool, const char *tenant, int64_t seq, const char *job_id)
{
    struct pool_outgoing *out;
    if (BU_ALLOC_STRUCT(out) == NULL) {
        pool_set_aside(pool, tenant, "out of memory");
        return BU_ENOMEM;
    }
    snprintf(out->tenant, sizeof(out->tenant), "%s", tenant);
    out->worker = (int) (pool_hash(tenant) % (uint32_t) pool->nworkers);
    int n = snprintf(out->text, sizeof(out->text), "%lld %s %s",
        (long long) seq, job_id, tenant);
    out->len = n < 0                      ? 0
        : (size_t) n >= sizeof(out->text) ? sizeof(out->text) - 1
                                          : (size_t) n;
    int rv = bu_queue_put(&pool->outbox, &out->node);
    if (rv != BU_OK) {
        bu_free(out);
    }
    return rv;
}

void
bu_pool_stop(struct bu_pool *pool)
{
    if (pool == NULL) {
        return;
    }
    // The dispatcher first: it drops what is left in the outbox (those jobs
    // stay QUEUED on disk), and a send it is in finishes as the workers
    // drain their pipes. Then each worker reads its stop message behind the
    // jobs still in its pipe. No socket closes while a thread uses it.
    atomic_store(&pool->stopping, true);
    if (pool->outbox_ready) {
        bu_queue_close(&pool->outbox);
    }
    if (pool->dispatcher_started) {
        pthread_join(pool->dispatcher, NULL);
        pool->dispatcher_started = false;
    }
    for (int i = 0; i < pool->nworkers; i++) {
        struct pool_worker *w = &pool->workers[i];
        // Sent again until it goes (out of memory, say): closing the pull
        // socket under the worker instead is the race told at the top.
        int rv;
        while (w->started
            && (rv = nng_send(w->push, "", POOL_STOP_LEN, 0)) != 0) {
            BU_ERROR("worker %d: stop: %s", i, nng_strerror(rv));
            nng_msleep(POOL_RECV_PAUSE_MS);
        }
    }
    for (int i = 0; i < pool->nworkers; i++) {
        struct pool_worker *w = &pool->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
            w->started = 0;
        }
    }
    for (int i = 0; i < pool->nworkers; i++) {
        nng_close(pool->workers[i].push);
        nng_close(pool->workers[i].pull);
    }
    // The workers closed their tenant databases (a last connection copies
    // its WAL back as it closes).
    bu_checkpointer_stop(pool->checkpointer);
}

void
bu_pool_free(struct bu_pool *pool)
{
    if (pool == NULL) {
        return;
    }
    bu_pool_stop(pool);
    for (int i = 0; i < pool->nworkers; i++) {
        bu_jobs_close(pool->workers[i].jobs);
        bu_free(pool->workers[i].tenants);
    }
    if (pool->outbox_ready) {
        // Closed by bu_pool_stop: this only takes what a dispatcher that
        // never started left behind.
        struct bu_qnode *n;
        while ((n = bu_queue_get(&pool->outbox)) != NULL) {
            bu_free(n);
        }
        bu_queue_fini(&pool->outbox);
    }
    bu_checkpointer_free(pool->checkpointer);
    bu_free(pool);
}
