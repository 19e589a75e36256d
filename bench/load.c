// SPDX-License-Identifier: MIT
/*
 * The client load (see load.h). Each thread owns one bulkupsert_client (one
 * nng req socket, one TCP connection) and one set of request buffers that it
 * refills for every batch, so making a request allocates nothing and the
 * client side costs little of the CPU the server also needs. Only the
 * bulkupsert_submit call is timed as the ack latency.
 *
 * After the threads are joined, the main thread walks each tenant's jobs in
 * submission order (a tenant's jobs finish in acceptance order, so at most
 * one unfinished job per tenant is polled at a time) and stops the clock
 * when the last one is seen finished.
 */
#include "load.h"

#include "bulkupsert.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define LOAD_TIMEOUT_MS  120000
#define LOAD_STACK_BYTES (256 * 1024)
#define LOAD_POLL_MS     10

// The request's column names. protobuf-c types repeated strings as char **
// although packing only reads them; filled by load_cols_init.
static char *load_cols[ROWS_NCOLS];

// load_cols_init fills load_cols (main thread, before any client thread).
static void
load_cols_init(void)
{
    for (int j = 0; j < ROWS_NCOLS; j++) {
        load_cols[j] = (char *) rows_columns[j];
    }
}

// One tenant's progress. next is shared by the threads; job_ids[b] is
// written once, by the thread that submitted batch b, and read after join.
struct load_tstate {
    atomic_size_t next;
    size_t        nbatches;
    char        **job_ids;
};

struct load_state {
    const struct load_spec *spec;
    struct load_tstate     *ts;
    double                 *lat_ms; // one slot per batch, taken with nlat
    atomic_size_t           nlat;
    atomic_size_t           retries;
    atomic_size_t           records;
    atomic_size_t           payload;
    atomic_int              stop;
    pthread_mutex_t         mtx; // guards err, nready, go
    pthread_cond_t          cv;
    char                    err[512]; // the first error
    int                     nready;   // threads connected and waiting for go
    bool                    go;       // the clock has started
    double                  t_go;     // when it started (load_now)
};

struct load_thread {
    struct load_state *st;
    int                index;
    pthread_t          tid;
    bool               started;
    size_t             rr;       // round robin over own tenants
    double             last_ack; // monotonic seconds of this thread's last 202
    double             due;      // with a rate: when the next submit is due
    size_t             cur_tenant; // tenant whose token the client carries
    bulkupsert_client *client;
    Bulkupsert__V1__SubmitBulkUpsertRequest req;
    Bulkupsert__V1__ContactData            *cds;
    Bulkupsert__V1__ContactData           **cdp;
    Bulkupsert__V1__Value                  *vals;
    Bulkupsert__V1__Value                 **valp;
    struct rows_row                        *rows;
};

static double
load_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
load_sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

// load_sleep_until sleeps until the monotonic time t (load_now seconds).
static void
load_sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t) t;
    ts.tv_nsec = (long) ((t - (double) ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
        == EINTR) { }
}

// load_fail records the first error and tells every thread to stop.
static void load_fail(struct load_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
load_fail(struct load_state *st, const char *fmt, ...)
{
    pthread_mutex_lock(&st->mtx);
    if (st->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->err, sizeof(st->err), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&st->mtx);
    atomic_store(&st->stop, 1);
}

// load_take tries to take the next batch of tenant t.
static int
load_take(struct load_state *st, size_t t, size_t *bp)
{
    struct load_tstate *ts = &st->ts[t];
    if (atomic_load(&ts->next) >= ts->nbatches) {
        return 0;
    }
    size_t b = atomic_fetch_add(&ts->next, 1);
    if (b >= ts->nbatches) {
        return 0;
    }
    *bp = b;
    return 1;
}

// load_pick chooses the next (tenant, batch): own tenants in turn, then any.
static int
load_pick(struct load_thread *th, size_t *tp, size_t *bp)
{
    const struct load_spec *spec = th->st->spec;
    size_t                  nt = spec->ntenants;
    size_t                  nc = (size_t) spec->nclients;
    size_t                  i = (size_t) th->index;
    size_t                  nown = nc >= nt ? 1 : (nt - i + nc - 1) / nc;
    for (size_t k = 0; k < nown; k++) {
        size_t j = (th->rr + k) % nown;
        size_t t = nc >= nt ? i % nt : i + j * nc;
        if (load_take(th->st, t, bp)) {
            th->rr = j + 1;
            *tp = t;
            return 1;
        }
    }
    for (size_t t = 0; t < nt; t++) {
        if (load_take(th->st, t, bp)) {
            *tp = t;
            return 1;
        }
    }
    return 0;
}

// load_build fills the thread's request with batch b of tenant t.
static size_t
load_build(struct load_thread *th, size_t t, size_t b)
{
    const struct load_spec   *spec = th->st->spec;
    const struct load_tenant *lt = &spec->tenants[t];
    size_t                    first = b * spec->batch;
    size_t k = lt->n - first < spec->batch ? lt->n - first : spec->batch;
    size_t bytes = 0;
    for (size_t r = 0; r < k; r++) {
        struct rows_row *row = &th->rows[r];
        uint32_t         id = lt->id_base + lt->ids[first + r];
        rows_make(row, spec->salt, spec->space, id, spec->version);
        bytes += rows_payload_bytes(row);
        for (int j = 0; j < ROWS_NCOLS; j++) {
            Bulkupsert__V1__Value *v = &th->vals[r * ROWS_NCOLS + j];
            if (j == ROWS_BOOL_COL) {
                v->kind_case = BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE;
                v->bool_value = row->flag;
            } else {
                v->kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
                // protobuf-c types the field as char *; it is only read.
                v->string_value = (char *) row->text[j];
            }
        }
    }
    th->req.n_contact_datas = k;
    atomic_fetch_add(&th->st->payload, bytes);
    return k;
}

// load_submit sends the built request until it is accepted (retrying 429)
// and keeps the job id. Returns 0, or -1 after load_fail.
static int
load_submit(struct load_thread *th, size_t t, size_t b, size_t k)
{
    struct load_state      *st = th->st;
    const struct load_spec *spec = st->spec;
    if (th->cur_tenant != t) {
        if (bulkupsert_client_set_token(th->client, spec->tenants[t].token)
            != 0) {
            load_fail(st, "out of memory setting a token");
            return -1;
        }
        th->cur_tenant = t;
    }
    // Open loop: the ack time of a submit runs from when it was due, 429
    // retries included.
    double due = 0;
    if (spec->rate > 0) {
        due = th->due;
        th->due += (double) spec->nclients * (double) spec->batch / spec->rate;
        load_sleep_until(due);
    }
    while (!atomic_load(&st->stop)) {
        struct bulkupsert_status status;
        memset(&status, 0, sizeof(status));
        Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;
        double t0 = spec->rate > 0 ? due : load_now();
        int    code = bulkupsert_submit(th->client, &th->req, &reply, &status);
        double t1 = load_now();
        if (code == BULKUPSERT_OK) {
            char *id = reply->job_id != NULL ? strdup(reply->job_id) : NULL;
            bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(
                reply, NULL);
            bulkupsert_status_clear(&status);
            if (id == NULL) {
                load_fail(st,
                    "submit: a reply without a job id, or out "
                    "of memory");
                return -1;
            }
            st->ts[t].job_ids[b] = id;
            size_t slot = atomic_fetch_add(&st->nlat, 1);
            st->lat_ms[slot] = (t1 - t0) * 1000.0;
            atomic_fetch_add(&st->records, k);
            th->last_ack = t1;
            return 0;
        }
        if (code == BULKUPSERT_RESOURCE_EXHAUSTED) {
            unsigned wait
                = status.retry_after_ms > 0 ? status.retry_after_ms : 1;
            bulkupsert_status_clear(&status);
            atomic_fetch_add(&st->retries, 1);
            load_sleep_ms(wait);
            continue;
        }
        load_fail(st, "submit (tenant %zu, batch %zu): %s (http %u): %s", t, b,
            bulkupsert_code_name(code), status.http_status,
            status.message != NULL ? status.message : "");
        bulkupsert_status_clear(&status);
        return -1;
    }
    return -1;
}

// load_warm_up makes the client connect before the clock starts: any
// answer of the service will do.
static void
load_warm_up(struct load_thread *th)
{
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "bench-warm-up";
    struct bulkupsert_status status;
    memset(&status, 0, sizeof(status));
    Bulkupsert__V1__Job *job = NULL;
    int code = bulkupsert_get_job(th->client, &req, &job, &status);
    if (code == BULKUPSERT_UNAVAILABLE || code == BULKUPSERT_DEADLINE_EXCEEDED
        || code == BULKUPSERT_UNAUTHENTICATED) {
        load_fail(th->st, "first call: %s: %s", bulkupsert_code_name(code),
            status.message != NULL ? status.message : "");
    }
    bulkupsert__v1__job__free_unpacked(job, NULL);
    bulkupsert_status_clear(&status);
}

static void *
load_thread_main(void *arg)
{
    struct load_thread *th = arg;
    struct load_state  *st = th->st;
    char                name[16];
    snprintf(name, sizeof(name), "bench-cli-%d", th->index);
    prctl(PR_SET_NAME, name, 0, 0, 0);

    load_warm_up(th);
    pthread_mutex_lock(&st->mtx);
    st->nready++;
    pthread_cond_broadcast(&st->cv);
    while (!st->go) {
        pthread_cond_wait(&st->cv, &st->mtx);
    }
    // With a rate, the clients' schedules are spread over one interval.
    const struct load_spec *spec = st->spec;
    th->due = st->t_go
        + (spec->rate > 0
                ? (double) th->index * (double) spec->batch / spec->rate
                : 0);
    pthread_mutex_unlock(&st->mtx);
    size_t t, b;
    while (!atomic_load(&st->stop) && load_pick(th, &t, &b)) {
        size_t k = load_build(th, t, b);
        if (load_submit(th, t, b, k) != 0) {
            break;
        }
    }
    return NULL;
}

// load_thread_init opens the client and the request buffers. Returns 0 or
// -1 (out of memory, bad url).
static int
load_thread_init(struct load_thread *th, struct load_state *st, int index)
{
    const struct load_spec *spec = st->spec;
    th->st = st;
    th->index = index;
    size_t own = (size_t) index % spec->ntenants;
    th->cur_tenant = own;
    if (bulkupsert_client_open(
            &th->client, spec->url, spec->tenants[own].token)
        != 0) {
        return -1;
    }
    bulkupsert_client_set_timeout(th->client, LOAD_TIMEOUT_MS);
    size_t nv = spec->batch * ROWS_NCOLS;
    th->cds = calloc(spec->batch, sizeof(*th->cds));
    th->cdp = calloc(spec->batch, sizeof(*th->cdp));
    th->vals = calloc(nv, sizeof(*th->vals));
    th->valp = calloc(nv, sizeof(*th->valp));
    th->rows = calloc(spec->batch, sizeof(*th->rows));
    if (th->cds == NULL || th->cdp == NULL || th->vals == NULL
        || th->valp == NULL || th->rows == NULL) {
        return -1;
    }
    for (size_t i = 0; i < nv; i++) {
        bulkupsert__v1__value__init(&th->vals[i]);
        th->valp[i] = &th->vals[i];
    }
    for (size_t r = 0; r < spec->batch; r++) {
        bulkupsert__v1__contact_data__init(&th->cds[r]);
        th->cds[r].n_values = ROWS_NCOLS;
        th->cds[r].values = &th->valp[r * ROWS_NCOLS];
        th->cdp[r] = &th->cds[r];
    }
    bulkupsert__v1__submit_bulk_upsert_request__init(&th->req);
    th->req.n_columns = ROWS_NCOLS;
    th->req.columns = load_cols;
    th->req.contact_datas = th->cdp;
    return 0;
}

static void
load_thread_fini(struct load_thread *th)
{
    bulkupsert_client_close(th->client);
    free(th->cds);
    free(th->cdp);
    free(th->vals);
    free(th->valp);
    free(th->rows);
    memset(th, 0, sizeof(*th));
}

// load_wait polls every tenant's jobs in order until all are finished,
// summing their counts. Returns 0 or -1 after load_fail.
static int
load_wait(struct load_state *st, struct load_result *res)
{
    const struct load_spec *spec = st->spec;
    bulkupsert_client      *c = NULL;
    if (bulkupsert_client_open(&c, spec->url, NULL) != 0) {
        load_fail(st, "cannot make a client for %s", spec->url);
        return -1;
    }
    bulkupsert_client_set_timeout(c, LOAD_TIMEOUT_MS);
    size_t *cursor = calloc(spec->ntenants, sizeof(*cursor));
    if (cursor == NULL) {
        bulkupsert_client_close(c);
        load_fail(st, "out of memory");
        return -1;
    }
    int rv = 0;
    for (;;) {
        int progress = 0, left = 0;
        for (size_t t = 0; rv == 0 && t < spec->ntenants; t++) {
            struct load_tstate *ts = &st->ts[t];
            if (cursor[t] == ts->nbatches) {
                continue;
            }
            (void) bulkupsert_client_set_token(c, spec->tenants[t].token);
            while (cursor[t] < ts->nbatches) {
                Bulkupsert__V1__GetJobRequest req
                    = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
                req.job_id = ts->job_ids[cursor[t]];
                struct bulkupsert_status status;
                memset(&status, 0, sizeof(status));
                Bulkupsert__V1__Job *job = NULL;
                int code = bulkupsert_get_job(c, &req, &job, &status);
                if (code != BULKUPSERT_OK) {
                    load_fail(st, "GetJob %s: %s: %s", req.job_id,
                        bulkupsert_code_name(code),
                        status.message != NULL ? status.message : "");
                    bulkupsert_status_clear(&status);
                    rv = -1;
                    break;
                }
                bulkupsert_status_clear(&status);
                int final = job->state
                    >= BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED;
                if (final) {
                    const Bulkupsert__V1__JobCounts *n = job->counts;
                    if (n != NULL) {
                        res->inserted += n->inserted;
                        res->updated += n->updated;
                        res->unchanged += n->unchanged;
                        res->superseded += n->superseded;
                        res->not_found += n->not_found;
                        res->failed += n->failed;
                    }
                    if (job->state
                        != BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED) {
                        res->jobs_not_completed++;
                        if (res->jobs_not_completed == 1) {
                            fprintf(stderr,
                                "bulkupsert-bench: job %s "
                                "ended %s%s%s\n",
                                req.job_id,
                                bulkupsert_job_state_name((int) job->state),
                                job->error != NULL ? ": " : "",
                                job->error != NULL ? job->error : "");
                        }
                    }
                    cursor[t]++;
                    progress = 1;
                }
                bulkupsert__v1__job__free_unpacked(job, NULL);
                if (!final) {
                    break;
                }
            }
            left |= cursor[t] < ts->nbatches;
        }
        if (rv != 0 || !left) {
            break;
        }
        if (!progress) {
            load_sleep_ms(LOAD_POLL_MS);
        }
    }
    free(cursor);
    bulkupsert_client_close(c);
    return rv;
}

// load_touch_one submits one record as tenant t and waits for its job.
static int
load_touch_one(bulkupsert_client *c, const struct load_spec *spec, uint32_t id,
    char *err, size_t errlen)
{
    Bulkupsert__V1__Value        vals[ROWS_NCOLS];
    Bulkupsert__V1__Value       *valp[ROWS_NCOLS];
    Bulkupsert__V1__ContactData  cd = BULKUPSERT__V1__CONTACT_DATA__INIT;
    Bulkupsert__V1__ContactData *cdp = &cd;
    Bulkupsert__V1__SubmitBulkUpsertRequest req
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_REQUEST__INIT;
    struct rows_row row;
    rows_make(&row, spec->salt, spec->space, id, spec->version);
    for (int j = 0; j < ROWS_NCOLS; j++) {
        bulkupsert__v1__value__init(&vals[j]);
        if (j == ROWS_BOOL_COL) {
            vals[j].kind_case = BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE;
            vals[j].bool_value = row.flag;
        } else {
            vals[j].kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
            vals[j].string_value = (char *) row.text[j];
        }
        valp[j] = &vals[j];
    }
    cd.n_values = ROWS_NCOLS;
    cd.values = valp;
    req.n_columns = ROWS_NCOLS;
    req.columns = load_cols;
    req.n_contact_datas = 1;
    req.contact_datas = &cdp;

    struct bulkupsert_status status;
    memset(&status, 0, sizeof(status));
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;
    int                                       code;
    while ((code = bulkupsert_submit(c, &req, &reply, &status))
        == BULKUPSERT_RESOURCE_EXHAUSTED) {
        unsigned wait = status.retry_after_ms > 0 ? status.retry_after_ms : 1;
        bulkupsert_status_clear(&status);
        load_sleep_ms(wait);
    }
    if (code != BULKUPSERT_OK) {
        snprintf(err, errlen, "first submit of a tenant: %s (http %u): %s",
            bulkupsert_code_name(code), status.http_status,
            status.message != NULL ? status.message : "");
        bulkupsert_status_clear(&status);
        return -1;
    }
    bulkupsert_status_clear(&status);
    Bulkupsert__V1__GetJobRequest greq = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    greq.job_id = reply->job_id;
    int rv = -1;
    for (;;) {
        Bulkupsert__V1__Job *job = NULL;
        memset(&status, 0, sizeof(status));
        code = bulkupsert_get_job(c, &greq, &job, &status);
        if (code != BULKUPSERT_OK) {
            snprintf(err, errlen, "GetJob %s: %s: %s", greq.job_id,
                bulkupsert_code_name(code),
                status.message != NULL ? status.message : "");
            bulkupsert_status_clear(&status);
            break;
        }
        bulkupsert_status_clear(&status);
        int final
            = job->state >= BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED;
        bulkupsert__v1__job__free_unpacked(job, NULL);
        if (final) {
            rv = 0;
            break;
        }
        load_sleep_ms(LOAD_POLL_MS);
    }
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    return rv;
}

int
load_touch_tenants(
    const struct load_spec *spec, uint32_t first_id, char *err, size_t errlen)
{
    load_cols_init();
    bulkupsert_client *c = NULL;
    if (bulkupsert_client_open(&c, spec->url, NULL) != 0) {
        snprintf(err, errlen, "cannot make a client for %s", spec->url);
        return -1;
    }
    bulkupsert_client_set_timeout(c, LOAD_TIMEOUT_MS);
    int rv = 0;
    for (size_t t = 0; rv == 0 && t < spec->ntenants; t++) {
        if (bulkupsert_client_set_token(c, spec->tenants[t].token) != 0) {
            snprintf(err, errlen, "out of memory");
            rv = -1;
        } else {
            rv = load_touch_one(c, spec, first_id + (uint32_t) t, err, errlen);
        }
    }
    bulkupsert_client_close(c);
    return rv;
}

static int
load_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a;
    double y = *(const double *) b;
    return x < y ? -1 : x > y;
}

// load_pct returns the q-quantile (nearest rank) of sorted v[0 .. n-1].
static double
load_pct(const double *v, size_t n, double q)
{
    if (n == 0) {
        return 0;
    }
    size_t rank = (size_t) (q * (double) n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return v[rank - 1];
}

static void
load_state_free(struct load_state *st)
{
    for (size_t t = 0; st->ts != NULL && t < st->spec->ntenants; t++) {
        for (size_t b = 0; st->ts[t].job_ids != NULL && b < st->ts[t].nbatches;
             b++) {
            free(st->ts[t].job_ids[b]);
        }
        free(st->ts[t].job_ids);
    }
    free(st->ts);
    free(st->lat_ms);
}

int
load_run(const struct load_spec *spec, struct load_result *outp, char *err,
    size_t errlen)
{
    load_cols_init();
    struct load_state st;
    memset(&st, 0, sizeof(st));
    st.spec = spec;
    pthread_mutex_init(&st.mtx, NULL);
    pthread_cond_init(&st.cv, NULL);
    struct load_result res;
    memset(&res, 0, sizeof(res));
    int                 nc = spec->nclients;
    struct load_thread *th = calloc((size_t) nc, sizeof(*th));
    st.ts = calloc(spec->ntenants, sizeof(*st.ts));
    size_t total_batches = 0;
    int    rv = th != NULL && st.ts != NULL ? 0 : -1;
    for (size_t t = 0; rv == 0 && t < spec->ntenants; t++) {
        size_t nb = (spec->tenants[t].n + spec->batch - 1) / spec->batch;
        st.ts[t].nbatches = nb;
        atomic_init(&st.ts[t].next, 0);
        st.ts[t].job_ids = calloc(nb > 0 ? nb : 1, sizeof(char *));
        rv = st.ts[t].job_ids != NULL ? 0 : -1;
        total_batches += nb;
    }
    if (rv == 0) {
        st.lat_ms
            = calloc(total_batches > 0 ? total_batches : 1, sizeof(double));
        rv = st.lat_ms != NULL ? 0 : -1;
    }
    for (int i = 0; rv == 0 && i < nc; i++) {
        rv = load_thread_init(&th[i], &st, i);
    }
    if (rv != 0) {
        snprintf(err, errlen,
            "cannot set up %d clients for %s (out of "
            "memory or a bad url)",
            nc, spec->url);
        goto out;
    }

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, LOAD_STACK_BYTES);
    int nstarted = 0;
    for (int i = 0; i < nc; i++) {
        if (pthread_create(&th[i].tid, &attr, load_thread_main, &th[i]) != 0) {
            break;
        }
        th[i].started = true;
        nstarted++;
    }
    pthread_attr_destroy(&attr);
    if (nstarted < nc) {
        load_fail(&st, "cannot start %d client threads", nc);
    }
    // The clock starts once every client is connected.
    pthread_mutex_lock(&st.mtx);
    while (st.nready < nstarted) {
        pthread_cond_wait(&st.cv, &st.mtx);
    }
    double t0 = load_now();
    st.t_go = t0;
    st.go = true;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mtx);
    double last_ack = t0;
    for (int i = 0; i < nc; i++) {
        if (th[i].started) {
            pthread_join(th[i].tid, NULL);
            last_ack = th[i].last_ack > last_ack ? th[i].last_ack : last_ack;
        }
    }
    if (!atomic_load(&st.stop)) {
        (void) load_wait(&st, &res);
    }
    double t1 = load_now();
    if (atomic_load(&st.stop)) {
        snprintf(err, errlen, "%s", st.err);
        rv = -1;
        goto out;
    }

    size_t nlat = atomic_load(&st.nlat);
    qsort(st.lat_ms, nlat, sizeof(double), load_cmp_double);
    res.records = atomic_load(&st.records);
    res.requests = nlat;
    res.retries = atomic_load(&st.retries);
    res.payload_bytes = atomic_load(&st.payload);
    res.accept_s = last_ack - t0;
    res.wall_s = t1 - t0;
    res.ack_p50_ms = load_pct(st.lat_ms, nlat, 0.50);
    res.ack_p90_ms = load_pct(st.lat_ms, nlat, 0.90);
    res.ack_p99_ms = load_pct(st.lat_ms, nlat, 0.99);
    res.ack_max_ms = nlat > 0 ? st.lat_ms[nlat - 1] : 0;
    *outp = res;

out:
    for (int i = 0; th != NULL && i < nc; i++) {
        load_thread_fini(&th[i]);
    }
    free(th);
    load_state_free(&st);
    pthread_cond_destroy(&st.cv);
    pthread_mutex_destroy(&st.mtx);
    return rv;
}
