// SPDX-License-Identifier: MIT
/*
 * Job application. Records are sorted by (contact_key, index): the last of
 * each key wins and the earlier ones are reported as superseded by it, and
 * the winners are written in key order, which keeps B-tree page writes
 * local. Results are kept per input index and stored as one JobRecords
 * blob, which GetJob pages through.
 */
#include "work/apply.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "base/err.h"
#include "base/log.h"
#include "base/thread.h"
#include "base/utf8.h"
#include "valid/validate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct apply_rec {
    const char *key; // NULL for an invalid record
    size_t      index;
};

static int
apply_rec_cmp(const void *a, const void *b)
{
    const struct apply_rec *x = a;
    const struct apply_rec *y = b;
    int                     c = strcmp(x->key, y->key);
    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

bool
bu_apply_job_fault(int rv)
{
    switch (rv) {
    case BU_OK:
    case BU_EPARSE:  // the stored request does not decode
    case BU_EINVAL:  // a record the store refuses
    case BU_ETOOBIG: // a statement past SQLite's limits
    case BU_EEXIST:  // a constraint the validator did not foresee
    case BU_ESTORE:  // an SQL error particular to this job's columns
        return true;
    default:
        return false;
    }
}

enum bu_job_state
bu_apply_state(const struct bu_job_counts *c)
{
    return c->failed > 0 || c->not_found > 0 ? BU_JOB_COMPLETED_WITH_ERRORS
                                             : BU_JOB_COMPLETED;
}

// Per-job working memory, freed in one place.
struct apply_ctx {
    int                                      prep_rv; // of apply_prepare
    struct bu_job_counts                     counts;  // total, failed
    struct bu_arena                          arena;   // holds req
    Bulkupsert__V1__SubmitBulkUpsertRequest *req;
    struct bu_verdict                        verdict;
    Bulkupsert__V1__RecordResult            *results; // one per record
    Bulkupsert__V1__RecordResult **presults; // pointers for JobRecords
    Bulkupsert__V1__FieldError    *errors;   // from the verdict
    Bulkupsert__V1__FieldError   **perrors;
    char            **warnings; // per record: two slots for static warnings
    struct apply_rec *order;
    struct bu_cell   *cells;
    uint8_t          *blob;
};

static void
apply_ctx_fini(struct apply_ctx *a)
{
    bu_verdict_fini(&a->verdict);
    bu_free(a->results);
    bu_free(a->presults);
    bu_free(a->errors);
    bu_free(a->perrors);
    bu_free(a->warnings);
    bu_free(a->order);
    bu_free(a->cells);
    bu_free(a->blob);
    bu_arena_fini(&a->arena);
}

// apply_record_key returns record r's contact_key when it is a string of
// valid UTF-8 (results go to clients as protobuf strings), else NULL.
static const char *
apply_record_key(const Bulkupsert__V1__SubmitBulkUpsertRequest *req, size_t r)
{
    const Bulkupsert__V1__ContactData *rec = req->contact_datas[r];
    for (size_t i = 0; i < req->n_columns && i < rec->n_values; i++) {
        const Bulkupsert__V1__Value *val = rec->values[i];
        if (strcmp(req->columns[i], BU_COL_CONTACT_KEY) == 0
            && val->kind_case == BULKUPSERT__V1__VALUE__KIND_STRING_VALUE) {
            size_t      chars;
            const char *k = val->string_value;
            return bu_utf8_count(k, strlen(k), &chars) ? k : NULL;
        }
    }
    return NULL;
}

static const char *apply_warn_lowercased = "email stored lowercased";
static const char *apply_warn_plus = "leading + removed from gsm";

// apply_results_attach hands each verdict error to its record's result.
static int
apply_results_attach(struct apply_ctx *a)
{
    struct bu_verdict *v = &a->verdict;
    if (v->nerrors == 0) {
        return BU_OK;
    }
    a->errors = bu_calloc(v->nerrors, sizeof(*a->errors));
    a->perrors = bu_calloc(v->nerrors, sizeof(*a->perrors));
    if (a->errors == NULL || a->perrors == NULL) {
        return BU_ENOMEM;
    }
    if (v->shape_failed) {
        // One request-level error applies to every record.
        bulkupsert__v1__field_error__init(&a->errors[0]);
        a->errors[0].column = (char *) v->errors[0].column;
        a->errors[0].reason = (char *) v->errors[0].reason;
        a->perrors[0] = &a->errors[0];
        for (size_t r = 0; r < a->req->n_contact_datas; r++) {
            a->results[r].n_errors = 1;
            a->results[r].errors = &a->perrors[0];
        }
        return BU_OK;
    }
    // Errors are in record order, so each record's run is contiguous.
    for (size_t e = 0; e < v->nerrors; e++) {
        const struct bu_field_error *fe = &v->errors[e];
        Bulkupsert__V1__FieldError  *pe = &a->errors[e];
        bulkupsert__v1__field_error__init(pe);
        pe->has_record_index = 1;
        pe->record_index = (uint32_t) fe->record_index;
        pe->column = (char *) fe->column;
        pe->reason = (char *) fe->reason;
        a->perrors[e] = pe;
        Bulkupsert__V1__RecordResult *rr = &a->results[fe->record_index];
        if (rr->n_errors == 0) {
            rr->errors = &a->perrors[e];
        }
        rr->n_errors++;
    }
    return BU_OK;
}

static int
apply_records(struct bu_tenant_db *db, const struct bu_schema *schema,
    struct apply_ctx *a, struct bu_job_counts *c)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = a->req;
    size_t                                   nrec = req->n_contact_datas;
    size_t                                   ncol = req->n_columns;
    int                                      insert_missing
        = !req->has_insert_if_not_exists || req->insert_if_not_exists;
    int key_col = -1;
    for (size_t i = 0; i < ncol; i++) {
        if (strcmp(req->columns[i], BU_COL_CONTACT_KEY) == 0) {
            key_col = (int) i;
        }
    }
    size_t nvalid = 0;
    for (size_t r = 0; r < nrec; r++) {
        if (!a->verdict.bad[r]) {
            a->order[nvalid].key
                = req->contact_datas[r]->values[key_col]->string_value;
            a->order[nvalid].index = r;
            nvalid++;
        }
    }
    qsort(a->order, nvalid, sizeof(*a->order), apply_rec_cmp);

    char reason[160];
    int  rv = BU_OK;
    for (size_t k = 0; rv == BU_OK && k < nvalid; k++) {
        size_t                        r = a->order[k].index;
        Bulkupsert__V1__RecordResult *rr = &a->results[r];
        if (k + 1 < nvalid
            && strcmp(a->order[k].key, a->order[k + 1].key) == 0) {
            // The last record of a key wins: find it for superseded_by.
            size_t w = k + 1;
            while (w + 1 < nvalid
                && strcmp(a->order[w].key, a->order[w + 1].key) == 0) {
                w++;
            }
            rr->outcome = BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_SUPERSEDED;
            rr->has_superseded_by = 1;
            rr->superseded_by = (uint32_t) a->order[w].index;
            c->superseded++;
            continue;
        }
        Bulkupsert__V1__ContactData *rec = req->contact_datas[r];
        for (size_t i = 0; i < ncol; i++) {
            // Validated (and normalised) already; this makes the cell.
            (void) bu_validate_cell(&schema->cols[a->verdict.colmap[i]],
                rec->values[i], &a->cells[i], NULL, reason, sizeof(reason));
        }
        unsigned               all_notes = a->verdict.notes[r];
        enum bu_upsert_outcome out;
        rv = bu_tenant_db_upsert(db, schema, a->verdict.colmap, ncol, a->cells,
            insert_missing, &out);
        if (rv != BU_OK) {
            break;
        }
        rr->outcome = (Bulkupsert__V1__RecordOutcome) out;
        switch (out) {
        case BU_UPSERT_INSERTED:
            c->inserted++;
            break;
        case BU_UPSERT_UPDATED:
            c->updated++;
            break;
        case BU_UPSERT_UNCHANGED:
            c->unchanged++;
            break;
        case BU_UPSERT_NOT_FOUND:
            c->not_found++;
            break;
        }
        if (out != BU_UPSERT_NOT_FOUND && all_notes != 0) {
            char **w = &a->warnings[2 * r];
            size_t nw = 0;
            if (all_notes & BU_CELL_NOTE_LOWERCASED) {
                w[nw++] = (char *) apply_warn_lowercased;
            }
            if (all_notes & BU_CELL_NOTE_PLUS_STRIPPED) {
                w[nw++] = (char *) apply_warn_plus;
            }
            rr->n_warnings = nw;
            rr->warnings = w;
        }
    }
    return rv;
}

// apply_prepare decodes item's request, checks it against schema and lays
// out its results (a->counts gets total and failed). It touches no
// database, so it may run on another thread than the writer. Returns
// BU_OK, BU_EPARSE (the payload does not decode) or BU_ENOMEM.
static int
apply_prepare(const struct bu_schema *schema, const struct bu_apply_item *item,
    struct apply_ctx *a)
{
    bu_arena_init(&a->arena, 8 * item->len + 4096);
    a->req = bulkupsert__v1__submit_bulk_upsert_request__unpack(
        &a->arena.allocator, item->len, item->payload);
    if (a->req == NULL) {
        return a->arena.oom ? BU_ENOMEM : BU_EPARSE;
    }
    // A shape error now means the columns changed since the job was
    // accepted: every record fails with it.
    int rv = bu_validate(schema, a->req, &a->verdict);
    if (rv != BU_OK) {
        return rv;
    }
    size_t nrec = a->req->n_contact_datas;
    a->results = bu_calloc(nrec, sizeof(*a->results));
    a->presults = bu_calloc(nrec, sizeof(*a->presults));
    a->warnings = bu_calloc(2 * nrec, sizeof(*a->warnings));
    a->order = bu_calloc(nrec, sizeof(*a->order));
    a->cells = bu_calloc(a->req->n_columns, sizeof(*a->cells));
    if (a->verdict.bad == NULL) {
        a->verdict.bad = bu_alloc(nrec);
    }
    if (a->results == NULL || a->presults == NULL || a->warnings == NULL
        || a->order == NULL || a->cells == NULL || a->verdict.bad == NULL) {
        return BU_ENOMEM;
    }
    if (a->verdict.shape_failed) {
        memset(a->verdict.bad, 1, nrec);
    }
    for (size_t r = 0; r < nrec; r++) {
        Bulkupsert__V1__RecordResult *rr = &a->results[r];
        bulkupsert__v1__record_result__init(rr);
        rr->has_index = 1;
        rr->index = (uint32_t) r;
        rr->has_outcome = 1;
        a->presults[r] = rr;
        if (a->verdict.bad[r]) {
            rr->outcome = BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_FAILED;
            a->counts.failed++;
        }
        if (!a->verdict.shape_failed) {
            rr->contact_key = (char *) apply_record_key(a->req, r);
        }
    }
    a->counts.total = (uint32_t) nrec;
    return apply_results_attach(a);
}

// apply_write applies one prepared job inside the open transaction, under
// its own savepoint. Returns BU_OK (applied now, or found applied before:
// inv 2), the job's own fault from apply_prepare (nothing of it written),
// or a storage error.
static int
apply_write(struct bu_tenant_db *db, const struct bu_schema *schema,
    struct bu_apply_item *item, struct apply_ctx *a)
{
    struct bu_job_counts c = { 0 };
    int                  rv = bu_tenant_db_savepoint(db);
    if (rv != BU_OK) {
        return rv;
    }
    rv = bu_tenant_db_applied(db, item->job_id, &c);
    if (rv == BU_OK) {
        item->counts = c; // a replay: nothing is written twice
        return bu_tenant_db_release(db);
    }
    rv = rv == BU_ENOENT ? a->prep_rv : rv;
    c = a->counts;
    if (rv == BU_OK && !a->verdict.shape_failed) {
        rv = apply_records(db, schema, a, &c);
    }
    if (rv == BU_OK) {
        Bulkupsert__V1__JobRecords jr = BULKUPSERT__V1__JOB_RECORDS__INIT;
        jr.n_records = a->req->n_contact_datas;
        jr.records = a->presults;
        size_t len = bulkupsert__v1__job_records__get_packed_size(&jr);
        a->blob = bu_alloc(len);
        if (a->blob == NULL) {
            rv = BU_ENOMEM;
        } else {
            bulkupsert__v1__job_records__pack(&jr, a->blob);
            rv = bu_tenant_db_mark_applied(
                db, item->job_id, item->seq, &c, a->blob, len);
        }
    }
    if (rv == BU_OK) {
        rv = bu_tenant_db_release(db);
    } else {
        bu_tenant_db_rollback_to(db);
    }
    if (rv == BU_OK) {
        item->counts = c;
    }
    return rv;
}

// The jobs of a batch are prepared (decoded, checked) on a helper thread
// at most APPLY_LOOKAHEAD jobs ahead of the writer, so that the CPU work
// of job i+1 overlaps the B-tree work of job i. Everything below mu is
// shared between the two threads.
#define APPLY_LOOKAHEAD 2

struct apply_pipe {
    const struct bu_schema     *schema;
    const struct bu_apply_item *items;
    struct apply_ctx           *ctxs;
    size_t                      n;
    pthread_mutex_t             mu;
    pthread_cond_t              cv;
    size_t                      prepared; // ctxs[0, prepared) are ready
    size_t                      written;  // ctxs[0, written) are done
    bool                        stop;     // the writer gave up
};

static void *
apply_prepare_main(void *arg)
{
    struct apply_pipe *p = arg;
    (void) bu_thread_background();
    for (size_t i = 0; i < p->n; i++) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && i >= p->written + APPLY_LOOKAHEAD) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            break;
        }
        p->ctxs[i].prep_rv
            = apply_prepare(p->schema, &p->items[i], &p->ctxs[i]);
        pthread_mutex_lock(&p->mu);
        p->prepared = i + 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

// apply_jobs writes the batch's jobs in order; with helper, each job's
// preparation comes from the helper thread, else it is done here. Returns
// BU_OK or the storage error that stopped it (items[i].rv are set for the
// jobs reached).
static int
apply_jobs(struct bu_tenant_db *db, struct apply_pipe *p, bool helper,
    struct bu_apply_item *items)
{
    int rv = BU_OK;
    for (size_t i = 0; rv == BU_OK && i < p->n; i++) {
        struct apply_ctx *a = &p->ctxs[i];
        if (helper) {
            pthread_mutex_lock(&p->mu);
            while (p->prepared <= i) {
                pthread_cond_wait(&p->cv, &p->mu);
            }
            pthread_mutex_unlock(&p->mu);
        } else {
            a->prep_rv = apply_prepare(p->schema, &items[i], a);
        }
        items[i].rv = apply_write(db, p->schema, &items[i], a);
        if (!bu_apply_job_fault(items[i].rv)) {
            rv = items[i].rv; // storage trouble: nothing commits
        }
        apply_ctx_fini(a);
        if (helper) {
            pthread_mutex_lock(&p->mu);
            p->written = i + 1;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return rv;
}

int
bu_apply_batch(struct bu_tenant_db *db, struct bu_apply_item *items, size_t n)
{
    struct bu_schema *schema = bu_alloc(sizeof(*schema));
    struct apply_ctx *ctxs = bu_calloc(n > 0 ? n : 1, sizeof(*ctxs));
    if (schema == NULL || ctxs == NULL) {
        bu_free(schema);
        bu_free(ctxs);
        return BU_ENOMEM;
    }
    // The columns are read inside the transaction, so a column added or
    // disabled meanwhile is seen by all the batch's jobs alike.
    int rv = bu_tenant_db_begin(db);
    if (rv == BU_OK) {
        rv = bu_tenant_db_schema(db, schema);
    }
    if (rv == BU_OK) {
        struct apply_pipe p
            = { .schema = schema, .items = items, .ctxs = ctxs, .n = n };
        pthread_t helper_thread;
        bool      helper = n > 1 && pthread_mutex_init(&p.mu, NULL) == 0;
        if (helper && pthread_cond_init(&p.cv, NULL) != 0) {
            pthread_mutex_destroy(&p.mu);
            helper = false;
        }
        if (helper
            && bu_thread_start(
                   &helper_thread, "bu-prepare", 0, apply_prepare_main, &p)
                != BU_OK) {
            pthread_cond_destroy(&p.cv);
            pthread_mutex_destroy(&p.mu);
            helper = false;
        }
        rv = apply_jobs(db, &p, helper, items);
        if (helper) {
            pthread_mutex_lock(&p.mu);
            p.stop = true;
            pthread_cond_broadcast(&p.cv);
            pthread_mutex_unlock(&p.mu);
            pthread_join(helper_thread, NULL);
            pthread_cond_destroy(&p.cv);
            pthread_mutex_destroy(&p.mu);
            // Jobs prepared but not written (after a storage error).
            for (size_t i = p.written; i < p.prepared; i++) {
                apply_ctx_fini(&ctxs[i]);
            }
        }
    }
    if (rv == BU_OK) {
        rv = bu_tenant_db_commit(db);
    }
    if (rv != BU_OK) {
        bu_tenant_db_rollback(db);
        for (size_t i = 0; i < n; i++) {
            items[i].rv = rv;
        }
    }
    bu_free(ctxs);
    bu_free(schema);
    return rv;
}

int
bu_apply_job(struct bu_tenant_db *db, const char *job_id, int64_t seq,
    const uint8_t *payload, size_t n, struct bu_job_counts *countsp)
{
    struct bu_apply_item item = {
        .job_id = job_id,
        .seq = seq,
        .payload = payload,
        .len = n,
    };
    int rv = bu_apply_batch(db, &item, 1);
    if (rv == BU_OK) {
        rv = item.rv;
    }
    if (rv == BU_OK) {
        *countsp = item.counts;
    }
    return rv;
}
