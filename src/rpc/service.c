// SPDX-License-Identifier: MIT
/*
 * The service's handlers. One svc_call lives from the moment a handler
 * thread takes a transport call until its reply is sent:
 *
 *   svc_serve: envelope -> method -> token -> permission -> payload
 *     -> service.base.invoke(method)  (generated dispatch)
 *        -> svc_submit_bulk_upsert -> journal ... svc_submit_done -> closure
 *        -> svc_get_job -> closure
 *   closure = svc_finish: RpcResponse{status, payload} -> reply -> free
 *
 * Every error path ends in svc_fail + svc_finish, so each call is answered
 * exactly once.
 */
#include "rpc/service.h"

#include "auth/digest.h"
#include "auth/token.h"
#include "auth/token_cache.h"
#include "base/alloc.h"
#include "base/arena.h"
#include "base/clock.h"
#include "base/countmap.h"
#include "base/err.h"
#include "base/log.h"
#include "base/thread.h"
#include "base/utf8.h"
#include "base/uuid.h"
#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "store/jobs.h"
#include "store/schema.h"
#include "store/tenant.h"
#include "valid/validate.h"
#include "valid/wire.h"

#include <stdarg.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SVC_MAX_THREADS    64
#define SVC_MAX_PAGE       1000
#define SVC_IDEM_MAX       128
#define SVC_RETRY_AFTER_MS 1000

// Vendor API ResponseCodes.
enum svc_response_code {
    SVC_RC_NONE = 0,
    SVC_RC_FIELD_ERROR = 1,
    SVC_RC_FORBIDDEN = 10,
    SVC_RC_VALIDATION_FAILS = 11,
    SVC_RC_UNEXPECTED = 999,
};

#define SVC_TENANT_CACHE 8

// A tenant database opened for reading by one handler thread.
struct svc_tenant {
    char                 name[64];
    struct bu_tenant_db *db;
    uint64_t             used;
};

// Everything here belongs to the one handler thread.
struct svc_thread {
    struct bu_service    *svc;
    pthread_t             thread;
    bool                  started;
    struct bu_jobs       *jobs; // reader
    struct svc_tenant     tenants[SVC_TENANT_CACHE];
    uint64_t              tick;
    struct bu_schema      schema; // the current call's tenant columns
    struct bu_token_cache tokens; // tokens this thread has verified
};

struct bu_service {
    // First member: the generated service, so invoke finds its handlers.
    Bulkupsert__V1__BulkUpsert_Service service;
    struct bu_service_config           cfg;
    struct bu_queue     calls; // of bu_rpc_call, via their qnode
    atomic_bool         draining;
    atomic_size_t       ncalls;          // calls held: queued or being handled
    atomic_size_t       inflight_bytes;  // their request bytes
    struct bu_countmap *tenant_inflight; // submits being handled, by tenant
    int                 nthreads;
    struct svc_thread  *threads; // nthreads
};

struct svc_call {
    struct bu_service  *svc;
    struct svc_thread  *thread;
    struct bu_rpc_call *call;
    size_t              bytes; // of the request, counted in inflight_bytes
    int64_t             started_ms;     // when a handler took it (bu_mono_ms)
    int64_t             queued_ms;      // when it was received
    int64_t             journal_ms;     // when handed to the journal, or 0
    int64_t             start_us;       // bu_mono_us when a handler took it
    int64_t             start_cpu_us;   // the handler thread's CPU time then
    int64_t             handler_us;     // time in the handler (wall, CPU),
    int64_t             handler_cpu_us; // set when it lets the call go
    bool                tenant_counted; // counted in tenant_inflight
    // env and input are unpacked into arena and released with it.
    struct bu_arena                  arena;
    Bulkupsert__V1__RpcRequest      *env;
    const ProtobufCMethodDescriptor *method;
    ProtobufCMessage                *input;
    struct bu_claims                 claims;
    // The answer's status.
    Bulkupsert__V1__Code code;
    unsigned             response_code;
    unsigned             retry_after_ms;
    char                 message[512];
    struct bu_verdict    verdict; // field errors of a 400
    // SubmitBulkUpsert in flight.
    struct bu_journal_submit                         submit;
    Bulkupsert__V1__SubmitBulkUpsertResponse_Closure submit_closure;
    // GetJob scratch, freed with the call.
    Bulkupsert__V1__JobRecords    *records;
    Bulkupsert__V1__RecordResult **page;
    char                           next_page_token[24];
};

unsigned
bu_service_http_status(int code, const char *method)
{
    switch ((Bulkupsert__V1__Code) code) {
    case BULKUPSERT__V1__CODE__OK:
        return method != NULL && strcmp(method, "SubmitBulkUpsert") == 0 ? 202
                                                                         : 200;
    case BULKUPSERT__V1__CODE__ALREADY_EXISTS:
        return 409;
    case BULKUPSERT__V1__CODE__INVALID_ARGUMENT:
    case BULKUPSERT__V1__CODE__FAILED_PRECONDITION:
        return 400;
    case BULKUPSERT__V1__CODE__UNAUTHENTICATED:
        return 401;
    case BULKUPSERT__V1__CODE__PERMISSION_DENIED:
        return 403;
    case BULKUPSERT__V1__CODE__NOT_FOUND:
        return 404;
    case BULKUPSERT__V1__CODE__RESOURCE_EXHAUSTED:
        return 429;
    case BULKUPSERT__V1__CODE__UNIMPLEMENTED:
        return 501;
    case BULKUPSERT__V1__CODE__UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

static void svc_fail(struct svc_call *sc, Bulkupsert__V1__Code code,
    unsigned rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

// svc_fail sets the error status of the answer.
static void
svc_fail(struct svc_call *sc, Bulkupsert__V1__Code code, unsigned rc,
    const char *fmt, ...)
{
    sc->code = code;
    sc->response_code = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->message, sizeof(sc->message), fmt, ap);
    va_end(ap);
    bu_utf8_trim(sc->message); // the cut may split a quoted name
}

// A client-supplied string fit to quote in a message: valid UTF-8 and
// short, else a placeholder.
static const char *
svc_quote(const char *s)
{
    size_t chars;
    if (s == NULL || strlen(s) > 200 || !bu_utf8_count(s, strlen(s), &chars)) {
        return "(unprintable)";
    }
    return s;
}

// The caller's request_id for the log: printable ASCII of at most 64
// characters, else a placeholder ("-" when there is none).
static const char *
svc_log_id(const struct svc_call *sc)
{
    const char *id = sc->env != NULL ? sc->env->request_id : NULL;
    if (id == NULL || id[0] == '\0') {
        return "-";
    }
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        if (n == 64 || id[n] < 0x21 || id[n] > 0x7e) {
            return "(unprintable)";
        }
    }
    return id;
}

// svc_handler_done notes the time the handler spent on sc, on the
// handler's thread, when it hands the call on (to the journal) or answers.
static void
svc_handler_done(struct svc_call *sc)
{
    sc->handler_us = bu_mono_us() - sc->start_us;
    sc->handler_cpu_us = bu_thread_cpu_us() - sc->start_cpu_us;
    if (sc->handler_us == 0) {
        sc->handler_us = 1; // set: under a microsecond
    }
}

// svc_release forgets a call that has been answered or dropped.
static void
svc_release(struct bu_service *svc, size_t bytes)
{
    atomic_fetch_sub(&svc->inflight_bytes, bytes);
    atomic_fetch_sub(&svc->ncalls, 1);
}

static void
svc_call_free(struct svc_call *sc)
{
    if (sc->tenant_counted) {
        (void) bu_countmap_add(
            sc->svc->tenant_inflight, sc->claims.tenant, -1, -1, NULL);
    }
    svc_release(sc->svc, sc->bytes);
    bu_verdict_fini(&sc->verdict);
    bu_arena_fini(&sc->arena);
    if (sc->records != NULL) {
        bulkupsert__v1__job_records__free_unpacked(sc->records, NULL);
    }
    bu_free(sc->page);
    bu_free(sc);
}

// svc_finish is the closure of every method: it answers the call with the
// status in sc and, when OK, output as the payload; then frees sc.
static void
svc_finish(const ProtobufCMessage *output, void *closure_data)
{
    struct svc_call             *sc = closure_data;
    Bulkupsert__V1__Status       st = BULKUPSERT__V1__STATUS__INIT;
    Bulkupsert__V1__RpcResponse  resp = BULKUPSERT__V1__RPC_RESPONSE__INIT;
    Bulkupsert__V1__FieldError  *fe = NULL;
    Bulkupsert__V1__FieldError **pfe = NULL;
    uint8_t                     *payload = NULL;
    uint8_t                     *buf = NULL;

    if (output == NULL && sc->code == BULKUPSERT__V1__CODE__OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "the method gave no answer");
    }
    if (output != NULL && sc->code == BULKUPSERT__V1__CODE__OK) {
        size_t n = protobuf_c_message_get_packed_size(output);
        payload = bu_alloc(n);
        if (payload == NULL) {
            svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
                "out of memory");
        } else {
            protobuf_c_message_pack(output, payload);
            resp.has_payload = 1;
            resp.payload.data = payload;
            resp.payload.len = n;
        }
    }
    int64_t now = bu_mono_ms();
    if (sc->handler_us == 0) {
        svc_handler_done(sc); // answered by its handler, not the journal
    }
    BU_DEBUG("%s [%s]: %d after %lld ms (%lld ms waiting for a handler, "
             "%.1f ms in it of which %.1f ms CPU, %lld ms in the journal)",
        sc->method != NULL ? sc->method->name : "?", svc_log_id(sc),
        (int) sc->code, (long long) (now - sc->queued_ms),
        (long long) (sc->started_ms - sc->queued_ms),
        (double) sc->handler_us / 1000.0, (double) sc->handler_cpu_us / 1000.0,
        (long long) (sc->journal_ms > 0 ? now - sc->journal_ms : 0));
    st.has_code = 1;
    st.code = sc->code;
    st.has_http_status = 1;
    st.http_status = bu_service_http_status(
        sc->code, sc->method != NULL ? sc->method->name : NULL);
    if (sc->response_code != SVC_RC_NONE) {
        st.has_response_code = 1;
        st.response_code = sc->response_code;
    }
    if (sc->retry_after_ms > 0) {
        st.has_retry_after_ms = 1;
        st.retry_after_ms = sc->retry_after_ms;
    }
    st.message = sc->code == BULKUPSERT__V1__CODE__OK && sc->message[0] == '\0'
        ? (char *) "ok"
        : sc->message;
    size_t nerr
        = sc->code == BULKUPSERT__V1__CODE__OK ? 0 : sc->verdict.nerrors;
    if (nerr > 0) {
        fe = bu_calloc(nerr, sizeof(*fe));
        pfe = bu_calloc(nerr, sizeof(*pfe));
        if (fe == NULL || pfe == NULL) {
            nerr = 0; // the message still says what failed
        }
    }
    for (size_t i = 0; i < nerr; i++) {
        const struct bu_field_error *e = &sc->verdict.errors[i];
        bulkupsert__v1__field_error__init(&fe[i]);
        if (e->record_index >= 0) {
            fe[i].has_record_index = 1;
            fe[i].record_index = (uint32_t) e->record_index;
        }
        fe[i].contact_key = (char *) e->contact_key;
        fe[i].column = (char *) e->column;
        fe[i].reason = (char *) e->reason;
        pfe[i] = &fe[i];
    }
    st.n_errors = nerr;
    st.errors = pfe;
    resp.status = &st;

    size_t len = bulkupsert__v1__rpc_response__get_packed_size(&resp);
    buf = bu_alloc(len);
    if (buf != NULL) {
        bulkupsert__v1__rpc_response__pack(&resp, buf);
        bu_rpc_call_reply(sc->call, buf, len);
    } else {
        BU_ERROR("reply of %zu bytes: out of memory", len);
        bu_rpc_call_drop(sc->call);
    }
    if (sc->code != BULKUPSERT__V1__CODE__OK) {
        BU_DEBUG("%s [%s]: %s", sc->method != NULL ? sc->method->name : "?",
            svc_log_id(sc), sc->message);
    }
    bu_free(buf);
    bu_free(payload);
    bu_free(fe);
    bu_free(pfe);
    svc_call_free(sc);
}

// ---------------------------------------------------------------------------
// Tenant columns

// svc_tenant_reader returns this thread's read handle on the caller's
// tenant database, or BU_ENOENT while the tenant has none.
static int
svc_tenant_reader(struct svc_call *sc, struct bu_tenant_db **dbp)
{
    struct svc_thread *t = sc->thread;
    struct svc_tenant *victim = &t->tenants[0];
    for (int i = 0; i < SVC_TENANT_CACHE; i++) {
        struct svc_tenant *e = &t->tenants[i];
        if (e->db != NULL && strcmp(e->name, sc->claims.tenant) == 0) {
            e->used = ++t->tick;
            *dbp = e->db;
            return BU_OK;
        }
        if (e->used < victim->used) {
            victim = e;
        }
    }
    bu_tenant_db_close(victim->db);
    memset(victim, 0, sizeof(*victim));
    int rv = bu_tenant_db_open(
        &victim->db, sc->svc->cfg.data_dir, sc->claims.tenant, BU_SQL_READER);
    if (rv != BU_OK) {
        return rv;
    }
    snprintf(victim->name, sizeof(victim->name), "%s", sc->claims.tenant);
    victim->used = ++t->tick;
    *dbp = victim->db;
    return BU_OK;
}

// svc_tenant_schema reads the caller's tenant columns into the thread's
// schema: the standard columns while the tenant has no database yet.
static int
svc_tenant_schema(struct svc_call *sc, struct bu_schema **schemap)
{
    struct bu_schema    *schema = &sc->thread->schema;
    struct bu_tenant_db *db;
    int                  rv = svc_tenant_reader(sc, &db);
    if (rv == BU_OK) {
        rv = bu_tenant_db_schema(db, schema);
    }
    if (rv == BU_ENOENT) {
        bu_schema_standard(schema); // no table of its own yet
        rv = BU_OK;
    }
    if (rv != BU_OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "reading the table's columns: %s", bu_strerror(rv));
        return rv;
    }
    *schemap = schema;
    return BU_OK;
}

// ---------------------------------------------------------------------------
// SubmitBulkUpsert

static void
svc_submit_done(struct bu_journal_submit *s)
{
    struct svc_call *sc = s->arg;
    if (s->rv != BU_OK) {
        BU_ERROR("submit (tenant %s): %s", s->tenant, bu_strerror(s->rv));
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "the job could not be recorded: %s", bu_strerror(s->rv));
        sc->submit_closure(NULL, sc);
        return;
    }
    if (s->conflict) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR,
            "idempotency_key \"%s\" was used for a different request "
            "(job %s); use a new key for a new request",
            svc_quote(s->idem), s->existing.job_id);
        sc->submit_closure(NULL, sc);
        return;
    }
    Bulkupsert__V1__SubmitBulkUpsertResponse resp
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_RESPONSE__INIT;
    resp.job_id = s->existing.job_id;
    resp.has_total = 1;
    resp.total = s->existing.counts.total;
    resp.has_duplicate = 1;
    resp.duplicate = s->duplicate;
    snprintf(sc->message, sizeof(sc->message), "%s",
        s->duplicate ? "accepted earlier under this idempotency key"
                     : "accepted");
    sc->submit_closure(&resp, sc);
}

// svc_submit_seen answers a submit whose idempotency key the tenant used
// before: with the earlier job when the request is the same (digest), 400
// when it differs. Returns false, answering nothing, for a new key (or
// when the lookup fails: the journal's own check then decides).
static bool
svc_submit_seen(struct svc_call *sc, const char *idem,
    Bulkupsert__V1__SubmitBulkUpsertResponse_Closure closure)
{
    struct bu_job_info info;
    if (bu_jobs_find_idem(sc->thread->jobs, sc->claims.tenant, idem, &info)
        != BU_OK) {
        return false;
    }
    struct bu_journal_submit *s = &sc->submit;
    s->idem = idem;
    s->existing = info;
    s->duplicate = memcmp(info.digest, s->digest, sizeof(info.digest)) == 0;
    s->conflict = !s->duplicate;
    s->rv = BU_OK;
    s->arg = sc;
    sc->submit_closure = closure;
    svc_submit_done(s);
    return true;
}

static void
svc_submit_bulk_upsert(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__SubmitBulkUpsertRequest         *input,
    Bulkupsert__V1__SubmitBulkUpsertResponse_Closure       closure,
    void                                                  *closure_data)
{
    struct bu_service *svc = (struct bu_service *) service;
    struct svc_call   *sc = closure_data;
    // The call owns its decoded input; validation normalises it in place.
    Bulkupsert__V1__SubmitBulkUpsertRequest *req
        = (Bulkupsert__V1__SubmitBulkUpsertRequest *) input;
    sc->submit_closure = closure;

    int64_t inflight;
    if (bu_countmap_add(svc->tenant_inflight, sc->claims.tenant, 1,
            (int64_t) svc->cfg.tenant_max_inflight, &inflight)
        != BU_OK) {
        sc->retry_after_ms = SVC_RETRY_AFTER_MS / 4;
        svc_fail(sc, BULKUPSERT__V1__CODE__RESOURCE_EXHAUSTED, SVC_RC_NONE,
            "%zu submits of this tenant are in flight, the limit; retry "
            "later",
            svc->cfg.tenant_max_inflight);
        closure(NULL, sc);
        return;
    }
    sc->tenant_counted = true;

    const char *idem = req->idempotency_key;
    size_t      chars;
    if (idem != NULL && idem[0] == '\0') {
        idem = NULL;
    }
    if (idem != NULL
        && (!bu_utf8_count(idem, strlen(idem), &chars)
            || chars > SVC_IDEM_MAX)) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR,
            "idempotency_key: at most %d characters of valid UTF-8",
            SVC_IDEM_MAX);
        closure(NULL, sc);
        return;
    }
    struct bu_journal_submit *s = &sc->submit;
    // A retry of an accepted request is answered before anything else is
    // checked: limits and columns may have changed since, and its job
    // stands. The journal checks again when it writes (two submits of one
    // key racing each other). The digest tells a retry from another
    // request under the same key, so only keyed requests need one (hashing
    // a 1000-record request is a tenth of a handler's work).
    if (idem != NULL) {
        bu_digest16(sc->env->payload.data, sc->env->payload.len, s->digest);
        if (svc_submit_seen(sc, idem, closure)) {
            return;
        }
    }

    struct bu_schema *schema;
    if (svc_tenant_schema(sc, &schema) != BU_OK) {
        closure(NULL, sc);
        return;
    }
    int rv = bu_validate(schema, req, &sc->verdict);
    if (rv != BU_OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "validation: %s", bu_strerror(rv));
        closure(NULL, sc);
        return;
    }
    if (sc->verdict.shape_failed) {
        const struct bu_field_error *e = &sc->verdict.errors[0];
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "invalid request: %s", e->reason);
        closure(NULL, sc);
        return;
    }
    bool fail_on_error = !req->has_fail_on_error || req->fail_on_error;
    if (sc->verdict.nbad > 0 && fail_on_error) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_VALIDATION_FAILS,
            "%zu of %zu records are invalid; nothing was queued (set "
            "fail_on_error=false to apply the valid ones)",
            sc->verdict.nbad, req->n_contact_datas);
        closure(NULL, sc);
        return;
    }
    // Errors of skipped records are reported in the job, not here.
    bu_verdict_fini(&sc->verdict);
    size_t pending = bu_journal_pending(svc->cfg.journal);
    size_t tpending
        = bu_journal_pending_tenant(svc->cfg.journal, sc->claims.tenant);
    if (pending >= svc->cfg.max_queued_jobs
        || tpending >= svc->cfg.tenant_max_queued) {
        bool mine = tpending >= svc->cfg.tenant_max_queued;
        sc->retry_after_ms = SVC_RETRY_AFTER_MS;
        svc_fail(sc, BULKUPSERT__V1__CODE__RESOURCE_EXHAUSTED, SVC_RC_NONE,
            "%zu jobs are queued%s, the limit is %zu; retry later",
            mine ? tpending : pending, mine ? " for this tenant" : "",
            mine ? svc->cfg.tenant_max_queued : svc->cfg.max_queued_jobs);
        closure(NULL, sc);
        return;
    }

    if (bu_uuid7(s->job_id) != BU_OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "no random source for the job id");
        closure(NULL, sc);
        return;
    }
    snprintf(s->tenant, sizeof(s->tenant), "%s", sc->claims.tenant);
    s->idem = idem;
    s->payload = sc->env->payload.data;
    s->len = sc->env->payload.len;
    s->total = (uint32_t) req->n_contact_datas;
    s->done = svc_submit_done;
    s->arg = sc;
    sc->journal_ms = bu_mono_ms();
    svc_handler_done(sc);
    rv = bu_journal_submit(svc->cfg.journal, s);
    if (rv != BU_OK) {
        svc_fail(sc,
            rv == BU_ECLOSED ? BULKUPSERT__V1__CODE__UNAVAILABLE
                             : BULKUPSERT__V1__CODE__INTERNAL,
            rv == BU_ECLOSED ? SVC_RC_NONE : SVC_RC_UNEXPECTED,
            "the job could not be queued: %s", bu_strerror(rv));
        closure(NULL, sc);
    }
    // Otherwise svc_submit_done answers, on the journal thread.
}

// ---------------------------------------------------------------------------
// GetJob, CancelJob

// svc_job_fill copies a job's row into a Job message (counts in *counts).
static void
svc_job_fill(const struct bu_job_info *info, Bulkupsert__V1__Job *job,
    Bulkupsert__V1__JobCounts *counts)
{
    job->job_id = (char *) info->job_id;
    job->has_state = 1;
    job->state = (Bulkupsert__V1__JobState) info->state;
    job->has_accepted_at_ms = 1;
    job->accepted_at_ms = info->accepted_at_ms;
    job->has_started_at_ms = info->started_at_ms != 0;
    job->started_at_ms = info->started_at_ms;
    job->has_finished_at_ms = info->finished_at_ms != 0;
    job->finished_at_ms = info->finished_at_ms;
    counts->has_total = counts->has_inserted = counts->has_updated = 1;
    counts->has_unchanged = counts->has_superseded = 1;
    counts->has_not_found = counts->has_failed = 1;
    counts->total = info->counts.total;
    counts->inserted = info->counts.inserted;
    counts->updated = info->counts.updated;
    counts->unchanged = info->counts.unchanged;
    counts->superseded = info->counts.superseded;
    counts->not_found = info->counts.not_found;
    counts->failed = info->counts.failed;
    job->counts = counts;
    if (info->error[0] != '\0') {
        job->error = (char *) info->error;
    }
}

static const char *
svc_state_name(enum bu_job_state state)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &bulkupsert__v1__job_state__descriptor, (int) state);
    return v != NULL ? v->name : "UNKNOWN";
}

static void
svc_cancel_job(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__CancelJobRequest        *input,
    Bulkupsert__V1__Job_Closure closure, void *closure_data)
{
    struct bu_service *svc = (struct bu_service *) service;
    struct svc_call   *sc = closure_data;
    const char        *id = input->job_id != NULL ? input->job_id : "";
    struct bu_job_info info;
    int                rv = bu_uuid_valid(id)
                       ? bu_journal_cancel(svc->cfg.journal, sc->claims.tenant, id, &info)
                       : BU_ENOENT;
    if (rv == BU_ENOENT) {
        svc_fail(sc, BULKUPSERT__V1__CODE__NOT_FOUND, SVC_RC_NONE,
            "job \"%s\" not found", svc_quote(id));
    } else if (rv == BU_EBUSY) {
        svc_fail(sc, BULKUPSERT__V1__CODE__FAILED_PRECONDITION,
            SVC_RC_FIELD_ERROR,
            "job %s is %s; only a QUEUED job can be cancelled", id,
            svc_state_name(info.state) + strlen("JOB_STATE_"));
    } else if (rv != BU_OK) {
        svc_fail(sc,
            rv == BU_ECLOSED ? BULKUPSERT__V1__CODE__UNAVAILABLE
                             : BULKUPSERT__V1__CODE__INTERNAL,
            rv == BU_ECLOSED ? SVC_RC_NONE : SVC_RC_UNEXPECTED, "cancel: %s",
            bu_strerror(rv));
    }
    if (rv != BU_OK) {
        closure(NULL, sc);
        return;
    }
    BU_INFO("tenant %s: job %s cancelled by %s", sc->claims.tenant, id,
        sc->claims.sub);
    Bulkupsert__V1__Job       job = BULKUPSERT__V1__JOB__INIT;
    Bulkupsert__V1__JobCounts counts = BULKUPSERT__V1__JOB_COUNTS__INIT;
    svc_job_fill(&info, &job, &counts);
    closure(&job, sc);
}

// svc_job_records fills job->records with one page of the job's results.
static int
svc_job_records(struct svc_call *sc, const Bulkupsert__V1__GetJobRequest *req,
    Bulkupsert__V1__Job *job)
{
    uint32_t start = 0;
    if (req->page_token != NULL && req->page_token[0] != '\0') {
        char         *end;
        unsigned long v = strtoul(req->page_token, &end, 10);
        if (*end != '\0' || req->page_token[0] < '0'
            || req->page_token[0] > '9' || v > UINT32_MAX) {
            svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
                SVC_RC_FIELD_ERROR,
                "page_token: not a token from a previous page");
            return BU_EINVAL;
        }
        start = (uint32_t) v;
    }
    struct bu_tenant_db *db = NULL;
    uint8_t             *blob = NULL;
    size_t               n = 0;
    int                  rv = bu_tenant_db_open(
                         &db, sc->svc->cfg.data_dir, sc->claims.tenant, BU_SQL_READER);
    if (rv == BU_OK) {
        rv = bu_tenant_db_results(db, job->job_id, &blob, &n);
    }
    bu_tenant_db_close(db);
    if (rv == BU_ENOENT) {
        return BU_OK; // not applied yet: no records to show
    }
    if (rv == BU_OK) {
        sc->records = bulkupsert__v1__job_records__unpack(NULL, n, blob);
        rv = sc->records == NULL ? BU_ECORRUPT : BU_OK;
    }
    bu_free(blob);
    if (rv != BU_OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "job results unreadable: %s", bu_strerror(rv));
        return rv;
    }
    uint32_t size
        = req->page_size > SVC_MAX_PAGE ? SVC_MAX_PAGE : req->page_size;
    sc->page = bu_calloc(size, sizeof(*sc->page));
    if (sc->page == NULL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "out of memory");
        return BU_ENOMEM;
    }
    size_t k = 0;
    size_t i = start;
    for (; i < sc->records->n_records && k < size; i++) {
        Bulkupsert__V1__RecordResult *r = sc->records->records[i];
        if (req->errors_only && r->n_errors == 0 && r->n_warnings == 0
            && r->outcome
                != BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_NOT_FOUND) {
            continue;
        }
        sc->page[k++] = r;
    }
    job->n_records = k;
    job->records = sc->page;
    if (i < sc->records->n_records) {
        snprintf(sc->next_page_token, sizeof(sc->next_page_token), "%zu", i);
        job->next_page_token = sc->next_page_token;
    }
    return BU_OK;
}

static void
svc_get_job(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__GetJobRequest        *input,
    Bulkupsert__V1__Job_Closure closure, void *closure_data)
{
    (void) service;
    struct svc_call   *sc = closure_data;
    const char        *id = input->job_id != NULL ? input->job_id : "";
    struct bu_job_info info;
    int rv = bu_uuid_valid(id) ? bu_jobs_get(sc->thread->jobs, id, &info)
                               : BU_ENOENT;
    // Another tenant's job is not found either: never say it exists (inv 4).
    if (rv == BU_ENOENT
        || (rv == BU_OK && strcmp(info.tenant, sc->claims.tenant) != 0)) {
        svc_fail(sc, BULKUPSERT__V1__CODE__NOT_FOUND, SVC_RC_NONE,
            "job \"%s\" not found", svc_quote(id));
        closure(NULL, sc);
        return;
    }
    if (rv != BU_OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "job lookup: %s", bu_strerror(rv));
        closure(NULL, sc);
        return;
    }
    Bulkupsert__V1__Job       job = BULKUPSERT__V1__JOB__INIT;
    Bulkupsert__V1__JobCounts counts = BULKUPSERT__V1__JOB_COUNTS__INIT;
    svc_job_fill(&info, &job, &counts);
    if (input->page_size > 0 && bu_job_state_final(info.state)
        && svc_job_records(sc, input, &job) != BU_OK) {
        closure(NULL, sc);
        return;
    }
    closure(&job, sc);
}

// ---------------------------------------------------------------------------
// ListJobs

#define SVC_LIST_DEFAULT 50
#define SVC_LIST_MAX     1000

// svc_list_filter checks a ListJobsRequest and turns it into a filter;
// fails sc with the field at fault.
static int
svc_list_filter(struct svc_call *sc, const Bulkupsert__V1__ListJobsRequest *in,
    struct bu_jobs_filter *f, size_t *page_size)
{
    memset(f, 0, sizeof(*f));
    if (in->page_size > SVC_LIST_MAX) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "page_size: %u is more than %d", in->page_size,
            SVC_LIST_MAX);
        return BU_EINVAL;
    }
    *page_size = in->page_size == 0 ? SVC_LIST_DEFAULT : in->page_size;
    if (in->page_token != NULL && in->page_token[0] != '\0') {
        char       *end;
        const char *t = in->page_token;
        long long   v = strtoll(t, &end, 10);
        if (*end != '\0' || t[0] < '1' || t[0] > '9' || v <= 0
            || v == LLONG_MAX) {
            svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
                SVC_RC_FIELD_ERROR,
                "page_token: not a token from a previous page");
            return BU_EINVAL;
        }
        f->before_seq = v;
    }
    for (size_t i = 0; i < in->n_states; i++) {
        int st = (int) in->states[i];
        if (st < BU_JOB_QUEUED || st > BU_JOB_CANCELLED) {
            svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
                SVC_RC_FIELD_ERROR, "states[%zu]: %d is not a job state", i,
                st);
            return BU_EINVAL;
        }
        f->states |= 1u << st;
    }
    if ((in->has_accepted_after_ms && in->accepted_after_ms < 0)
        || (in->has_accepted_before_ms && in->accepted_before_ms <= 0)) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "%s: must be a positive Unix time in ms",
            in->has_accepted_after_ms && in->accepted_after_ms < 0
                ? "accepted_after_ms"
                : "accepted_before_ms");
        return BU_EINVAL;
    }
    f->accepted_after_ms
        = in->has_accepted_after_ms ? in->accepted_after_ms : 0;
    f->accepted_before_ms
        = in->has_accepted_before_ms ? in->accepted_before_ms : 0;
    return BU_OK;
}

static void
svc_list_jobs(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__ListJobsRequest        *input,
    Bulkupsert__V1__ListJobsResponse_Closure closure, void *closure_data)
{
    (void) service;
    struct svc_call      *sc = closure_data;
    struct bu_jobs_filter filter;
    size_t                page_size;
    if (svc_list_filter(sc, input, &filter, &page_size) != BU_OK) {
        closure(NULL, sc);
        return;
    }
    // One more than a page tells whether another page follows.
    struct bu_job_info   *infos = bu_calloc(page_size + 1, sizeof(*infos));
    Bulkupsert__V1__Job  *jobs = bu_calloc(page_size, sizeof(*jobs));
    Bulkupsert__V1__Job **pjobs = bu_calloc(page_size, sizeof(*pjobs));
    Bulkupsert__V1__JobCounts *counts = bu_calloc(page_size, sizeof(*counts));
    size_t                     n = 0;
    int rv = infos == NULL || jobs == NULL || pjobs == NULL || counts == NULL
        ? BU_ENOMEM
        : bu_jobs_list(sc->thread->jobs, sc->claims.tenant, &filter, infos,
            page_size + 1, &n);
    if (rv != BU_OK) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "job list: %s", bu_strerror(rv));
        closure(NULL, sc);
    } else {
        Bulkupsert__V1__ListJobsResponse resp
            = BULKUPSERT__V1__LIST_JOBS_RESPONSE__INIT;
        char   token[24];
        size_t k = n > page_size ? page_size : n;
        for (size_t i = 0; i < k; i++) {
            bulkupsert__v1__job__init(&jobs[i]);
            bulkupsert__v1__job_counts__init(&counts[i]);
            svc_job_fill(&infos[i], &jobs[i], &counts[i]);
            pjobs[i] = &jobs[i];
        }
        resp.n_jobs = k;
        resp.jobs = pjobs;
        if (n > page_size) {
            snprintf(
                token, sizeof(token), "%lld", (long long) infos[k - 1].seq);
            resp.next_page_token = token;
        }
        closure(&resp, sc);
    }
    bu_free(counts);
    bu_free(pjobs);
    bu_free(jobs);
    bu_free(infos);
}

// ---------------------------------------------------------------------------
// DescribeTable, AddColumn, SetImportEnabled

// Storage for one ColumnInfo and its allowed values.
struct svc_column_info {
    Bulkupsert__V1__ColumnInfo info;
    char                       allowed[16][2];
    char                      *pallowed[16];
};

static void
svc_column_info(const struct bu_column *c, struct svc_column_info *ci)
{
    Bulkupsert__V1__ColumnInfo *info = &ci->info;
    bulkupsert__v1__column_info__init(info);
    info->name = (char *) c->name;
    info->type = (char *) bu_col_type_name(c->type);
    info->has_max_length = 1;
    info->max_length = c->max_len;
    size_t n = 0;
    for (const char *a = c->allowed; *a != '\0' && n < 16; a++, n++) {
        ci->allowed[n][0] = *a;
        ci->allowed[n][1] = '\0';
        ci->pallowed[n] = ci->allowed[n];
    }
    info->n_allowed_values = n;
    info->allowed_values = ci->pallowed;
    info->has_nullable = 1;
    info->nullable = c->nullable;
    if (c->has_default) {
        info->default_value = (char *) (c->type == BU_COL_BOOL
                ? (strcmp(c->default_value, "1") == 0 ? "true" : "false")
                : c->default_value);
    }
    info->has_custom = 1;
    info->custom = c->custom;
    info->has_import_enabled = 1;
    info->import_enabled = c->import_enabled;
}

static void
svc_describe_table(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__DescribeTableRequest        *input,
    Bulkupsert__V1__DescribeTableResponse_Closure closure, void *closure_data)
{
    (void) service;
    (void) input;
    struct svc_call  *sc = closure_data;
    struct bu_schema *schema;
    if (svc_tenant_schema(sc, &schema) != BU_OK) {
        closure(NULL, sc);
        return;
    }
    struct svc_column_info      *cis = bu_calloc(schema->ncols, sizeof(*cis));
    Bulkupsert__V1__ColumnInfo **pcis
        = bu_calloc(schema->ncols, sizeof(*pcis));
    if (cis == NULL || pcis == NULL) {
        bu_free(cis);
        bu_free(pcis);
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "out of memory");
        closure(NULL, sc);
        return;
    }
    for (size_t i = 0; i < schema->ncols; i++) {
        svc_column_info(&schema->cols[i], &cis[i]);
        pcis[i] = &cis[i].info;
    }
    Bulkupsert__V1__DescribeTableResponse resp
        = BULKUPSERT__V1__DESCRIBE_TABLE_RESPONSE__INIT;
    resp.n_columns = schema->ncols;
    resp.columns = pcis;
    resp.has_row_width = 1;
    resp.row_width = bu_schema_row_width(schema);
    resp.has_max_row_width = 1;
    resp.max_row_width = BU_ROW_WIDTH_MAX;
    closure(&resp, sc);
    bu_free(cis);
    bu_free(pcis);
}

// svc_schema_error turns a schema change's error into the answer.
static void
svc_schema_error(struct svc_call *sc, int rv, const char *name)
{
    switch (rv) {
    case BU_EBUSY:
        sc->retry_after_ms = SVC_RETRY_AFTER_MS;
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAVAILABLE, SVC_RC_NONE,
            "the table is busy; retry");
        break;
    case BU_ENOENT:
        svc_fail(sc, BULKUPSERT__V1__CODE__NOT_FOUND, SVC_RC_FIELD_ERROR,
            "column \"%s\" does not exist", svc_quote(name));
        break;
    default:
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "schema change: %s", bu_strerror(rv));
        break;
    }
}

static void
svc_add_column(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__AddColumnRequest        *input,
    Bulkupsert__V1__AddColumnResponse_Closure closure, void *closure_data)
{
    (void) service;
    struct svc_call *sc = closure_data;
    const char      *name = input->name != NULL ? input->name : "";
    unsigned         max_len
        = input->has_max_length ? input->max_length : BU_CUSTOM_DEFAULT_LEN;
    char reason[128];
    if (!bu_column_name_check(name, reason, sizeof(reason))) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "name: %s", reason);
        closure(NULL, sc);
        return;
    }
    if (max_len < 1 || max_len > BU_CUSTOM_MAX_LEN) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR,
            "max_length: %u; a custom column has 1 to %d "
            "characters",
            max_len, BU_CUSTOM_MAX_LEN);
        closure(NULL, sc);
        return;
    }
    struct bu_tenant_db *db = NULL;
    struct bu_column     col;
    int                  rv = bu_tenant_db_open(
                         &db, sc->svc->cfg.data_dir, sc->claims.tenant, BU_SQL_WRITER);
    if (rv == BU_OK) {
        rv = bu_tenant_db_add_column(db, name, max_len,
            !input->has_import_enabled || input->import_enabled, &col);
    }
    bu_tenant_db_close(db);
    if (rv == BU_EEXIST) {
        svc_fail(sc, BULKUPSERT__V1__CODE__ALREADY_EXISTS, SVC_RC_FIELD_ERROR,
            "column \"%s\" already exists", name);
    } else if (rv == BU_EFULL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__FAILED_PRECONDITION,
            SVC_RC_FIELD_ERROR,
            "a row may be at most %d characters wide (sum of max lengths) "
            "with at most %d columns; %u more does not fit",
            BU_ROW_WIDTH_MAX, BU_SCHEMA_MAX_COLUMNS, max_len);
    } else if (rv != BU_OK) {
        svc_schema_error(sc, rv, name);
    }
    if (rv != BU_OK) {
        closure(NULL, sc);
        return;
    }
    BU_INFO("tenant %s: column %s added (max %u) by %s", sc->claims.tenant,
        name, max_len, sc->claims.sub);
    struct svc_column_info ci;
    svc_column_info(&col, &ci);
    Bulkupsert__V1__AddColumnResponse resp
        = BULKUPSERT__V1__ADD_COLUMN_RESPONSE__INIT;
    resp.column = &ci.info;
    closure(&resp, sc);
}

static void
svc_set_import_enabled(Bulkupsert__V1__BulkUpsert_Service *service,
    const Bulkupsert__V1__SetImportEnabledRequest         *input,
    Bulkupsert__V1__SetImportEnabledResponse_Closure       closure,
    void                                                  *closure_data)
{
    (void) service;
    struct svc_call     *sc = closure_data;
    const char          *name = input->column != NULL ? input->column : "";
    bool                 enabled = input->has_enabled && input->enabled;
    struct bu_tenant_db *db = NULL;
    struct bu_column     col;
    int                  rv = bu_tenant_db_open(
                         &db, sc->svc->cfg.data_dir, sc->claims.tenant, BU_SQL_WRITER);
    if (rv == BU_OK) {
        rv = bu_tenant_db_set_import(db, name, enabled, &col);
    }
    bu_tenant_db_close(db);
    if (rv == BU_EINVAL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "contact_key is always import-enabled");
    } else if (rv != BU_OK) {
        svc_schema_error(sc, rv, name);
    }
    if (rv != BU_OK) {
        closure(NULL, sc);
        return;
    }
    BU_INFO("tenant %s: column %s import %s by %s", sc->claims.tenant, name,
        enabled ? "enabled" : "disabled", sc->claims.sub);
    struct svc_column_info ci;
    svc_column_info(&col, &ci);
    Bulkupsert__V1__SetImportEnabledResponse resp
        = BULKUPSERT__V1__SET_IMPORT_ENABLED_RESPONSE__INIT;
    resp.column = &ci.info;
    closure(&resp, sc);
}

// ---------------------------------------------------------------------------
// Envelope, token, dispatch

struct svc_method_perm {
    const char *name;
    uint32_t    perm;
};

// The permission each method needs; a method missing here is refused.
static const struct svc_method_perm svc_perms[] = {
    { "SubmitBulkUpsert", BU_PERM_MANAGE },
    { "GetJob", BU_PERM_READ },
    { "DescribeTable", BU_PERM_READ },
    { "AddColumn", BU_PERM_MANAGE },
    { "SetImportEnabled", BU_PERM_MANAGE },
    { "CancelJob", BU_PERM_MANAGE },
    { "ListJobs", BU_PERM_READ },
};

static const char *
svc_perm_name(uint32_t perm)
{
    return perm == BU_PERM_MANAGE ? "DataSpace.Manage" : "DataSpace.Read";
}

// svc_resolve finds the method of "bulkupsert.v1.BulkUpsert/<Method>".
static const ProtobufCMethodDescriptor *
svc_resolve(const char *path)
{
    const ProtobufCServiceDescriptor *d
        = &bulkupsert__v1__bulk_upsert__descriptor;
    size_t n = strlen(d->name);
    if (path == NULL || strncmp(path, d->name, n) != 0 || path[n] != '/') {
        return NULL;
    }
    return protobuf_c_service_descriptor_get_method_by_name(d, path + n + 1);
}

static int
svc_authenticate(struct svc_call *sc)
{
    const char *token = sc->env->token;
    if (token == NULL || token[0] == '\0') {
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAUTHENTICATED, SVC_RC_NONE,
            "missing token: send a v4.public token in RpcRequest.token");
        return BU_EAUTH;
    }
    int rv = bu_token_cache_verify(&sc->thread->tokens, sc->svc->cfg.keyring,
        token, bu_now_ms() / 1000, &sc->claims);
    switch (rv) {
    case BU_OK:
        return BU_OK;
    case BU_EEXPIRED:
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAUTHENTICATED, SVC_RC_NONE,
            "token expired");
        break;
    case BU_ESIG:
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAUTHENTICATED, SVC_RC_NONE,
            "token signature does not verify");
        break;
    case BU_EREVOKED:
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAUTHENTICATED, SVC_RC_NONE,
            "token revoked: its jti is on the server's revocation list");
        break;
    case BU_ENOMEM:
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "out of memory");
        break;
    default:
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAUTHENTICATED, SVC_RC_NONE,
            "token rejected: malformed, unknown key id, or invalid claims");
        break;
    }
    return rv;
}

static int
svc_authorize(struct svc_call *sc)
{
    for (size_t i = 0; i < sizeof(svc_perms) / sizeof(svc_perms[0]); i++) {
        if (strcmp(svc_perms[i].name, sc->method->name) == 0) {
            if ((sc->claims.perms & svc_perms[i].perm) != 0) {
                return BU_OK;
            }
            svc_fail(sc, BULKUPSERT__V1__CODE__PERMISSION_DENIED,
                SVC_RC_FORBIDDEN, "%s needs the %s permission",
                sc->method->name, svc_perm_name(svc_perms[i].perm));
            return BU_EPERM;
        }
    }
    svc_fail(sc, BULKUPSERT__V1__CODE__PERMISSION_DENIED, SVC_RC_FORBIDDEN,
        "%s is not open to tokens", sc->method->name);
    return BU_EPERM;
}

// svc_wire_check refuses, before decoding, a message with a NUL inside a
// string or more fields than any valid request has.
static int
svc_wire_check(struct svc_call *sc, const ProtobufCMessageDescriptor *desc,
    const uint8_t *buf, size_t n, const char *what, char *where, size_t len)
{
    int rv
        = bu_wire_check_strings(desc, buf, n, BU_WIRE_MAX_FIELDS, where, len);
    if (rv == BU_EINVAL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "%s: %s holds a NUL byte; strings may not",
            what, where);
    } else if (rv == BU_ETOOBIG) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR,
            "%s: more than %d fields; a request carries at most %d "
            "records of at most %d values",
            what, BU_WIRE_MAX_FIELDS, BU_MAX_RECORDS, BU_SCHEMA_MAX_COLUMNS);
    }
    return rv;
}

// svc_serve takes one call from envelope to invoke; whatever happens, the
// call is answered once (by svc_finish, now or later).
static void
svc_serve(struct svc_thread *t, struct bu_rpc_call *call)
{
    struct bu_service *svc = t->svc;
    size_t             len;
    const void        *body = bu_rpc_call_body(call, &len);
    struct svc_call   *sc;
    if (BU_ALLOC_STRUCT(sc) == NULL) {
        bu_rpc_call_drop(call);
        svc_release(svc, len);
        return;
    }
    sc->svc = svc;
    sc->thread = t;
    sc->call = call;
    sc->bytes = len;
    sc->started_ms = bu_mono_ms();
    sc->start_us = bu_mono_us();
    sc->start_cpu_us = bu_thread_cpu_us();
    sc->queued_ms = bu_rpc_call_received_ms(call);
    sc->code = BULKUPSERT__V1__CODE__OK;

    if (atomic_load(&svc->draining)) {
        svc_fail(sc, BULKUPSERT__V1__CODE__UNAVAILABLE, SVC_RC_NONE,
            "the server is shutting down; retry on another instance or "
            "later");
        svc_finish(NULL, sc);
        return;
    }
    char where[256];
    if (svc_wire_check(sc, &bulkupsert__v1__rpc_request__descriptor, body, len,
            "RpcRequest", where, sizeof(where))
        != BU_OK) {
        svc_finish(NULL, sc);
        return;
    }
    // Unpacked, a request takes several times its wire size (a message per
    // Value): one arena block of that size holds the whole of it.
    bu_arena_init(&sc->arena, 8 * len + 4096);
    sc->env
        = bulkupsert__v1__rpc_request__unpack(&sc->arena.allocator, len, body);
    if (sc->env == NULL && sc->arena.oom) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "out of memory decoding the request");
        svc_finish(NULL, sc);
        return;
    }
    if (sc->env == NULL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR,
            "malformed request: %zu bytes that are not an RpcRequest", len);
        svc_finish(NULL, sc);
        return;
    }
    sc->method = svc_resolve(sc->env->method);
    if (sc->method == NULL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__UNIMPLEMENTED, SVC_RC_NONE,
            "unknown method \"%s\"; expected %s/<Method>",
            svc_quote(sc->env->method),
            bulkupsert__v1__bulk_upsert__descriptor.name);
        svc_finish(NULL, sc);
        return;
    }
    if (svc_authenticate(sc) != BU_OK || svc_authorize(sc) != BU_OK) {
        svc_finish(NULL, sc);
        return;
    }
    if (svc_wire_check(sc, sc->method->input, sc->env->payload.data,
            sc->env->payload.len, sc->method->input->short_name, where,
            sizeof(where))
        != BU_OK) {
        svc_finish(NULL, sc);
        return;
    }
    sc->input = protobuf_c_message_unpack(sc->method->input,
        &sc->arena.allocator, sc->env->payload.len, sc->env->payload.data);
    if (sc->input == NULL && sc->arena.oom) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INTERNAL, SVC_RC_UNEXPECTED,
            "out of memory decoding the %s", sc->method->input->name);
        svc_finish(NULL, sc);
        return;
    }
    if (sc->input == NULL) {
        svc_fail(sc, BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
            SVC_RC_FIELD_ERROR, "payload is not a valid %s",
            sc->method->input->name);
        svc_finish(NULL, sc);
        return;
    }
    unsigned index = (unsigned) (sc->method
        - bulkupsert__v1__bulk_upsert__descriptor.methods);
    svc->service.base.invoke(
        &svc->service.base, index, sc->input, svc_finish, sc);
}

// svc_refuse_full answers a call at once with 429: the request bytes held
// by the handlers are at their bound. Runs on the transport's callback
// thread, so it only packs a small message and replies (non-blocking).
static void
svc_refuse_full(struct bu_service *svc, struct bu_rpc_call *call)
{
    char msg[128];
    snprintf(msg, sizeof(msg),
        "the server holds %zu MiB of requests, its limit; retry later",
        svc->cfg.max_inflight_bytes >> 20);
    Bulkupsert__V1__Status st = BULKUPSERT__V1__STATUS__INIT;
    st.has_code = st.has_http_status = st.has_retry_after_ms = 1;
    st.code = BULKUPSERT__V1__CODE__RESOURCE_EXHAUSTED;
    st.http_status = 429;
    st.retry_after_ms = SVC_RETRY_AFTER_MS;
    st.message = msg;
    Bulkupsert__V1__RpcResponse resp = BULKUPSERT__V1__RPC_RESPONSE__INIT;
    resp.status = &st;
    uint8_t buf[256];
    size_t  len = bulkupsert__v1__rpc_response__get_packed_size(&resp);
    if (len > sizeof(buf)) {
        bu_rpc_call_drop(call);
        return;
    }
    bulkupsert__v1__rpc_response__pack(&resp, buf);
    bu_rpc_call_reply(call, buf, len);
}

void
bu_service_handle(void *arg, struct bu_rpc_call *call)
{
    struct bu_service *svc = arg;
    size_t             len;
    (void) bu_rpc_call_body(call, &len);
    size_t held = atomic_fetch_add(&svc->inflight_bytes, len);
    if (held > 0 && held + len > svc->cfg.max_inflight_bytes) {
        atomic_fetch_sub(&svc->inflight_bytes, len);
        svc_refuse_full(svc, call);
        return;
    }
    atomic_fetch_add(&svc->ncalls, 1);
    if (bu_queue_put(&svc->calls, bu_rpc_call_qnode(call)) != BU_OK) {
        bu_rpc_call_drop(call);
        svc_release(svc, len);
    }
}

int
bu_service_quiesce(struct bu_service *svc, int timeout_ms)
{
    if (svc == NULL) {
        return BU_OK;
    }
    int64_t until = bu_mono_ms() + timeout_ms;
    while (atomic_load(&svc->ncalls) > 0) {
        if (bu_mono_ms() >= until) {
            return BU_ETIMEDOUT;
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    return BU_OK;
}

static void *
svc_thread_main(void *arg)
{
    struct svc_thread *t = arg;
    struct bu_qnode   *n;
    while ((n = bu_queue_get(&t->svc->calls)) != NULL) {
        svc_serve(t, bu_rpc_call_of(n));
    }
    return NULL;
}

int
bu_service_start(struct bu_service **svcp, const struct bu_service_config *cfg)
{
    if (cfg->nhandlers < 1 || cfg->nhandlers > SVC_MAX_THREADS
        || cfg->keyring == NULL || cfg->journal == NULL) {
        return BU_EINVAL;
    }
    struct bu_service *svc;
    if (BU_ALLOC_STRUCT(svc) == NULL) {
        return BU_ENOMEM;
    }
    Bulkupsert__V1__BulkUpsert_Service init
        = BULKUPSERT__V1__BULK_UPSERT__INIT(svc_);
    svc->service = init;
    svc->cfg = *cfg;
    atomic_init(&svc->draining, false);
    atomic_init(&svc->ncalls, 0);
    atomic_init(&svc->inflight_bytes, 0);
    svc->threads = bu_calloc((size_t) cfg->nhandlers, sizeof(*svc->threads));
    int rv = svc->threads == NULL ? BU_ENOMEM
                                  : bu_countmap_alloc(&svc->tenant_inflight);
    if (rv == BU_OK) {
        rv = bu_queue_init(&svc->calls);
    }
    if (rv != BU_OK) {
        bu_countmap_free(svc->tenant_inflight);
        bu_free(svc->threads);
        bu_free(svc);
        return rv;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/queue.db", cfg->data_dir);
    for (int i = 0; rv == BU_OK && i < cfg->nhandlers; i++) {
        struct svc_thread *t = &svc->threads[i];
        t->svc = svc;
        svc->nthreads = i + 1;
        rv = bu_jobs_open(&t->jobs, path, BU_SQL_READER);
        if (rv == BU_OK) {
            char name[32];
            snprintf(name, sizeof(name), "bu-handler-%d", i);
            rv = bu_thread_start(&t->thread, name, 0, svc_thread_main, t);
            t->started = rv == BU_OK;
        }
    }
    if (rv != BU_OK) {
        bu_service_stop(svc);
        return rv;
    }
    *svcp = svc;
    return BU_OK;
}

void
bu_service_drain(struct bu_service *svc)
{
    if (svc == NULL) {
        return;
    }
    atomic_store(&svc->draining, true);
}

void
bu_service_stop(struct bu_service *svc)
{
    if (svc == NULL) {
        return;
    }
    bu_service_drain(svc);
    bu_queue_close(&svc->calls);
    for (int i = 0; i < svc->nthreads; i++) {
        struct svc_thread *t = &svc->threads[i];
        if (t->started) {
            pthread_join(t->thread, NULL);
        }
        bu_jobs_close(t->jobs);
        for (int k = 0; k < SVC_TENANT_CACHE; k++) {
            bu_tenant_db_close(t->tenants[k].db);
        }
        bu_token_cache_clear(&t->tokens);
    }
    // Submits the journal holds (a drain that timed out: queue.db locked,
    // a slow disk) are answered by the journal thread, which then frees
    // their calls, and each call's release touches svc: wait for them.
    // Each journal turn ends within SQLite's busy timeout, so this ends.
    for (int64_t next_log = bu_mono_ms() + 5000;
         atomic_load(&svc->ncalls) > 0;) {
        if (bu_mono_ms() >= next_log) {
            BU_WARN("stopping: %zu submits still wait for queue.db",
                (size_t) atomic_load(&svc->ncalls));
            next_log += 5000;
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    bu_queue_fini(&svc->calls);
    bu_countmap_free(svc->tenant_inflight);
    bu_free(svc->threads);
    bu_free(svc);
}
