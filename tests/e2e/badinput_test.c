// SPDX-License-Identifier: MIT
/*
 * Hostile input through a raw nng req0 socket (DESIGN inv 5): random
 * frames, truncated envelopes and payloads, unknown methods, wrong wire
 * types and wrong messages, invalid UTF-8, 10 MB frames that fit and a
 * 50 MB one that does not, and thousands of connections that open and
 * drop (ipc and raw TCP). Each answer must be an RpcResponse with a
 * sensible code and valid UTF-8 text; after each category a well-formed
 * submit still lands, and the attacking tenant ("evil") never gets a job
 * or a row.
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ALLP (BU_PERM_READ | BU_PERM_MANAGE)
#define BI_SUBMIT "bulkupsert.v1.BulkUpsert/SubmitBulkUpsert"
#define BI_GETJOB "bulkupsert.v1.BulkUpsert/GetJob"
#define BI_MB (1024u * 1024u)

enum {
    C_OK = BULKUPSERT__V1__CODE__OK,
    C_INVALID = BULKUPSERT__V1__CODE__INVALID_ARGUMENT,
    C_NOT_FOUND = BULKUPSERT__V1__CODE__NOT_FOUND,
    C_UNIMPL = BULKUPSERT__V1__CODE__UNIMPLEMENTED,
    C_UNAUTH = BULKUPSERT__V1__CODE__UNAUTHENTICATED,
};

// One daemon, a token of the attacking tenant and one of a good tenant.
struct bi {
    struct harness h;
    char *evil;
    char *good;
    int alive; // well-formed submits that landed so far
};

static uint64_t bi_rng;

static uint64_t
bi_rand(void)
{
    // xorshift64*: reproducible from the printed seed.
    bi_rng ^= bi_rng >> 12;
    bi_rng ^= bi_rng << 25;
    bi_rng ^= bi_rng >> 27;
    return bi_rng * 2685821657736338717ULL;
}

static void
bi_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t) (bi_rand() >> 56);
    }
}

// ---------------------------------------------------------------------
// A tiny protobuf writer for frames protobuf-c would not produce.

struct pb {
    uint8_t *buf;
    size_t len;
    size_t cap;
};

static void
pb_raw(struct pb *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->buf = realloc(b->buf, b->cap);
        assert_non_null(b->buf);
    }
    if (n > 0) {
        memcpy(b->buf + b->len, p, n);
    }
    b->len += n;
}

static void
pb_varint(struct pb *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t) (v & 0x7f);
        v >>= 7;
        if (v != 0) {
            tmp[n] |= 0x80;
        }
        n++;
    } while (v != 0);
    pb_raw(b, tmp, n);
}

static void
pb_tag(struct pb *b, unsigned field, unsigned wire)
{
    pb_varint(b, ((uint64_t) field << 3) | wire);
}

static void
pb_bytes(struct pb *b, unsigned field, const void *p, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_raw(b, p, n);
}

static void
pb_str(struct pb *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static void
pb_fini(struct pb *b)
{
    free(b->buf);
    memset(b, 0, sizeof(*b));
}

// ---------------------------------------------------------------------
// Envelopes and replies.

// bi_envelope packs an RpcRequest; payload may be NULL (field unset).
static uint8_t *
bi_envelope(const char *method, const char *token, const void *payload,
    size_t plen, size_t *lenp)
{
    Bulkupsert__V1__RpcRequest env = BULKUPSERT__V1__RPC_REQUEST__INIT;
    env.method = (char *) method;
    env.token = (char *) token;
    if (payload != NULL) {
        env.has_payload = 1;
        env.payload.data = (uint8_t *) payload;
        env.payload.len = plen;
    }
    *lenp = bulkupsert__v1__rpc_request__get_packed_size(&env);
    uint8_t *buf = malloc(*lenp + 1);
    assert_non_null(buf);
    bulkupsert__v1__rpc_request__pack(&env, buf);
    return buf;
}

// bi_pack packs a submit request.
static uint8_t *
bi_pack(const Bulkupsert__V1__SubmitBulkUpsertRequest *req, size_t *lenp)
{
    *lenp = bulkupsert__v1__submit_bulk_upsert_request__get_packed_size(req);
    uint8_t *buf = malloc(*lenp + 1);
    assert_non_null(buf);
    bulkupsert__v1__submit_bulk_upsert_request__pack(req, buf);
    return buf;
}

// Strict UTF-8 (RFC 3629): what every protobuf runtime may demand of a
// string field.
static bool
bi_utf8(const char *str)
{
    const uint8_t *s = (const uint8_t *) str;
    while (*s != 0) {
        uint32_t cp;
        int len;
        if (s[0] < 0x80) {
            s++;
            continue;
        } else if ((s[0] & 0xe0) == 0xc0) {
            len = 2;
            cp = s[0] & 0x1fu;
        } else if ((s[0] & 0xf0) == 0xe0) {
            len = 3;
            cp = s[0] & 0x0fu;
        } else if ((s[0] & 0xf8) == 0xf0) {
            len = 4;
            cp = s[0] & 0x07u;
        } else {
            return false;
        }
        for (int k = 1; k < len; k++) {
            if ((s[k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[k] & 0x3fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        s += len;
    }
    return true;
}

static unsigned
bi_http_of(int code)
{
    switch (code) {
    case C_INVALID:
        return 400;
    case C_NOT_FOUND:
        return 404;
    case C_UNIMPL:
        return 501;
    case C_UNAUTH:
        return 401;
    default:
        return 0;
    }
}

// bi_check_status: the reply's text is valid UTF-8 and its HTTP status
// matches its code.
static void
bi_check_status(const Bulkupsert__V1__Status *st, const char *what)
{
    if (st->message == NULL || st->message[0] == '\0') {
        fail_msg("%s: error reply without a message", what);
    }
    if (!bi_utf8(st->message)) {
        fail_msg("%s: message is not valid UTF-8", what);
    }
    unsigned want = bi_http_of(st->code);
    if (want != 0 && st->http_status != want) {
        fail_msg("%s: code %d with HTTP %u", what, st->code,
            st->http_status);
    }
    for (size_t i = 0; i < st->n_errors; i++) {
        const Bulkupsert__V1__FieldError *e = st->errors[i];
        if ((e->column != NULL && !bi_utf8(e->column)) ||
            (e->reason != NULL && !bi_utf8(e->reason)) ||
            (e->contact_key != NULL && !bi_utf8(e->contact_key))) {
            fail_msg("%s: errors[%zu] carries invalid UTF-8", what, i);
        }
    }
}

// bi_log_tail prints the end of the daemon's log, to explain a failure.
static void
bi_log_tail(struct bi *x)
{
    FILE *f = fopen(x->h.log, "r");
    if (f == NULL) {
        return;
    }
    char lines[20][256];
    size_t n = 0;
    while (fgets(lines[n % 20], sizeof(lines[0]), f) != NULL) {
        n++;
    }
    fclose(f);
    for (size_t i = n > 20 ? n - 20 : 0; i < n; i++) {
        fprintf(stderr, "daemon: %s", lines[i % 20]);
    }
}

// bi_call sends a frame and returns the decoded answer (free it with
// bulkupsert__v1__rpc_response__free_unpacked); fails the test when there
// is none or it is no RpcResponse with a status.
static Bulkupsert__V1__RpcResponse *
bi_call(struct bi *x, const void *frame, size_t len, const char *what)
{
    void *reply = NULL;
    size_t rlen = 0;
    int rv = harness_raw_call(
        x->h.url, frame, len, 30000 * harness_slow(), &reply, &rlen);
    if (rv != 0) {
        bi_log_tail(x);
        fail_msg("%s (%zu bytes): no reply: %s", what, len, nng_strerror(rv));
    }
    Bulkupsert__V1__RpcResponse *resp =
        bulkupsert__v1__rpc_response__unpack(NULL, rlen, reply);
    free(reply);
    if (resp == NULL || resp->status == NULL) {
        fail_msg("%s: the reply is not an RpcResponse with a status", what);
    }
    bi_check_status(resp->status, what);
    return resp;
}

// bi_expect sends a frame and checks the answer's code is one of codes
// (ended by -1); returns the code.
static int
bi_expect(struct bi *x, const void *frame, size_t len, const char *what,
    const int *codes)
{
    Bulkupsert__V1__RpcResponse *resp = bi_call(x, frame, len, what);
    int code = resp->status->code;
    bool ok = false;
    for (size_t i = 0; codes[i] >= 0; i++) {
        ok = ok || code == codes[i];
    }
    if (!ok) {
        fail_msg("%s: unexpected code %d (HTTP %u): %s", what, code,
            resp->status->http_status, resp->status->message);
    }
    bulkupsert__v1__rpc_response__free_unpacked(resp, NULL);
    return code;
}

// ---------------------------------------------------------------------
// Set-up, liveness, and "nothing written".

static void
bi_start(struct bi *x, const char *const *extra)
{
    const char *env = getenv("BU_TEST_SEED");
    bi_rng = env != NULL ? strtoull(env, NULL, 10)
                         : (uint64_t) time(NULL) * 2654435761u + 1;
    if (bi_rng == 0) {
        bi_rng = 1;
    }
    print_message("badinput: seed=%llu\n", (unsigned long long) bi_rng);
    harness_start(&x->h, extra);
    x->evil = harness_token(&x->h, "evil", ALLP, 3600);
    x->good = harness_token(&x->h, "good", ALLP, 3600);
    x->alive = 0;
}

// bi_alive: a well-formed submit is accepted, GetJob answers it, and its
// records land in the good tenant's table.
static void
bi_alive(struct bi *x, const char *after)
{
    bulkupsert_client *c = harness_client(&x->h, x->good);
    // A shared 2-core machine may stall a commit for seconds; 30 s still
    // tells a hang from a slow answer.
    bulkupsert_client_set_timeout(c, 30000 * harness_slow());
    static const char *const cols[] = { "contact_key", "name" };
    struct req_builder b;
    req_init(&b, cols, 2);
    char key[64];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "alive-%d-%d", x->alive, i);
        const char *row[] = { key, "Alive" };
        req_row(&b, row);
    }
    struct bulkupsert_status st = { 0 };
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    int code = bulkupsert_submit(c, &b.req, &resp, &st);
    if (code != BULKUPSERT_OK) {
        bi_log_tail(x);
        fail_msg("after %s: well-formed submit: %s: %s", after,
            bulkupsert_code_name(code), st.message);
    }
    bulkupsert_status_clear(&st);
    Bulkupsert__V1__Job *job = harness_wait_job(c, resp->job_id);
    assert_int_equal(job->state,
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_int_equal(job->counts->inserted, 3);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(resp, NULL);
    req_fini(&b);
    x->alive++;
    assert_int_equal(harness_count(&x->h, "good",
                         "SELECT count(*) FROM master_contact"
                         " WHERE contact_key LIKE 'alive-%'"),
        3 * x->alive);

    // An unknown job is still a clean 404.
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = "01234567-89ab-7def-8123-456789abcdef";
    code = bulkupsert_get_job(c, &gr, &job, &st);
    assert_int_equal(code, BULKUPSERT_NOT_FOUND);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);
}

// bi_nothing_written: no job and no row for the attacking tenant.
static void
bi_nothing_written(struct bi *x)
{
    long long rows = harness_count(
        &x->h, "evil", "SELECT count(*) FROM master_contact");
    assert_true(rows <= 0); // -1: the database does not even exist
    assert_int_equal(harness_queue_count(&x->h,
                         "SELECT count(*) FROM jobs WHERE tenant = 'evil'"),
        0);
}

static void
bi_stop(struct bi *x)
{
    bi_nothing_written(x);
    assert_int_equal(harness_stop_lenient(&x->h), 0);
}

static int
bi_setup(void **state)
{
    struct bi *x = calloc(1, sizeof(*x));
    *state = x;
    return x == NULL ? -1 : 0;
}

// bi_teardown also runs after a failed test: the daemon must not outlive
// it.
static int
bi_teardown(void **state)
{
    struct bi *x = *state;
    harness_abort(&x->h);
    free(x->evil);
    free(x->good);
    free(x);
    return 0;
}

// A valid submit payload of n records for the evil tenant, whose every
// truncation the tests send. Keys are "evil-<i>".
static uint8_t *
bi_valid_payload(size_t n, size_t *lenp)
{
    static const char *const cols[] = { "contact_key", "email", "name" };
    struct req_builder b;
    req_init(&b, cols, 3);
    char key[32], mail[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "evil-%zu", i);
        snprintf(mail, sizeof(mail), "e%zu@example.com", i);
        const char *row[] = { key, mail, "Eve" };
        req_row(&b, row);
    }
    b.req.idempotency_key = "evil-batch";
    uint8_t *p = bi_pack(&b.req, lenp);
    b.req.idempotency_key = NULL;
    req_fini(&b);
    return p;
}

// bi_would_apply: whether payload decodes to a request with records, i.e.
// is a well-formed request rather than bad input.
static bool
bi_would_apply(const uint8_t *payload, size_t len)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *r =
        bulkupsert__v1__submit_bulk_upsert_request__unpack(
            NULL, len, payload);
    bool yes = r != NULL && r->n_contact_datas > 0 && r->n_columns > 0;
    if (r != NULL) {
        bulkupsert__v1__submit_bulk_upsert_request__free_unpacked(r, NULL);
    }
    return yes;
}

// ---------------------------------------------------------------------
// Tests.

static void
test_random_frames(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    static const int codes[] = { C_INVALID, C_UNIMPL, -1 };
    uint8_t buf[4096];
    char what[64];
    // The empty frame and every one-byte frame, then random ones.
    bi_expect(x, buf, 0, "empty frame", codes);
    int n1 = harness_slow() > 1 ? 16 : 256;
    for (int i = 0; i < n1; i++) {
        buf[0] = (uint8_t) i;
        snprintf(what, sizeof(what), "one byte 0x%02x", i);
        bi_expect(x, buf, 1, what, codes);
    }
    int nr = harness_slow() > 1 ? 50 : 500;
    for (int i = 0; i < nr; i++) {
        size_t len = 1 + (size_t) (bi_rand() % sizeof(buf));
        bi_fill(buf, len);
        snprintf(what, sizeof(what), "random frame %d", i);
        bi_expect(x, buf, len, what, codes);
    }
    bi_alive(x, "random frames");

    // Random bytes behind a valid method and token: a bad payload.
    static const int pcodes[] = { C_INVALID, -1 };
    for (int i = 0; i < nr; i++) {
        size_t plen = 1 + (size_t) (bi_rand() % 1024);
        bi_fill(buf, plen);
        if (bi_would_apply(buf, plen)) {
            continue;
        }
        size_t len;
        uint8_t *env = bi_envelope(BI_SUBMIT, x->evil, buf, plen, &len);
        snprintf(what, sizeof(what), "random payload %d", i);
        bi_expect(x, env, len, what, pcodes);
        free(env);
    }
    bi_alive(x, "random payloads");
    bi_stop(x);
}

static void
test_truncated_protobufs(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    size_t plen, elen;
    uint8_t *payload = bi_valid_payload(4, &plen);
    uint8_t *env = bi_envelope(BI_SUBMIT, x->evil, payload, plen, &elen);
    static const int codes[] = { C_INVALID, C_UNIMPL, C_UNAUTH, -1 };
    char what[80];
    int step = harness_slow() > 1 ? 7 : 1;

    // Every proper prefix of the envelope: none is a whole request.
    for (size_t cut = 0; cut < elen; cut += (size_t) step) {
        snprintf(what, sizeof(what), "envelope cut at %zu of %zu", cut,
            elen);
        bi_expect(x, env, cut, what, codes);
    }
    bi_alive(x, "truncated envelopes");

    // Every prefix of the payload inside a whole envelope, but for those
    // that end on a record boundary (they are smaller valid requests).
    static const int pcodes[] = { C_INVALID, -1 };
    int sent = 0;
    for (size_t cut = 0; cut < plen; cut += (size_t) step) {
        if (bi_would_apply(payload, cut)) {
            continue;
        }
        size_t len;
        uint8_t *e = bi_envelope(BI_SUBMIT, x->evil, payload, cut, &len);
        snprintf(what, sizeof(what), "payload cut at %zu of %zu", cut,
            plen);
        bi_expect(x, e, len, what, pcodes);
        free(e);
        sent++;
    }
    assert_true(sent > (int) plen / step / 2);

    // A length prefix that claims more than the frame holds, at every
    // depth: envelope field, payload field, record, value.
    struct pb b = { 0 };
    pb_str(&b, 1, BI_SUBMIT);
    pb_str(&b, 2, x->evil);
    pb_tag(&b, 3, 2);
    pb_varint(&b, 1u << 30); // payload "1 GiB" long
    pb_raw(&b, payload, plen);
    bi_expect(x, b.buf, b.len, "payload length past the end", codes);
    pb_fini(&b);
    struct pb p = { 0 };
    pb_str(&p, 1, "contact_key");
    pb_tag(&p, 2, 2);
    pb_varint(&p, 0xffffffffffULL); // a record "1 TB" long
    pb_raw(&p, "\x0a\x03\x0a\x01x", 5);
    uint8_t *e = bi_envelope(BI_SUBMIT, x->evil, p.buf, p.len, &elen);
    bi_expect(x, e, elen, "record length past the end", pcodes);
    free(e);
    pb_fini(&p);
    // An 11-byte varint.
    pb_str(&p, 1, "contact_key");
    pb_raw(&p, "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);
    e = bi_envelope(BI_SUBMIT, x->evil, p.buf, p.len, &elen);
    bi_expect(x, e, elen, "overlong varint", pcodes);
    free(e);
    pb_fini(&p);

    free(env);
    free(payload);
    bi_alive(x, "truncated payloads");
    bi_stop(x);
}

static void
test_unknown_methods(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    size_t plen;
    uint8_t *payload = bi_valid_payload(2, &plen);
    char *longname = malloc(BI_MB + 1);
    assert_non_null(longname);
    memset(longname, 'A', BI_MB);
    longname[BI_MB] = '\0';
    const char *methods[] = {
        "bulkupsert.v1.BulkUpsert/DropTable",
        "bulkupsert.v1.BulkUpsert/submitbulkupsert",
        "bulkupsert.v1.BulkUpsert/",
        "bulkupsert.v1.BulkUpsert",
        "bulkupsert.v1.BulkUpsert//SubmitBulkUpsert",
        "bulkupsert.v2.BulkUpsert/SubmitBulkUpsert",
        "/bulkupsert.v1.BulkUpsert/SubmitBulkUpsert",
        "SubmitBulkUpsert",
        "",
        "bulkupsert.v1.BulkUpsert/Submit\xff\xfe",
        "\xc0\xaf\xed\xa0\x80",
        longname,
    };
    static const int codes[] = { C_UNIMPL, -1 };
    char what[96];
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        // With and without a valid token: the method is looked at first.
        for (int t = 0; t < 2; t++) {
            size_t len;
            uint8_t *e = bi_envelope(methods[i], t ? x->evil : NULL,
                payload, plen, &len);
            snprintf(what, sizeof(what), "method #%zu (token %d)", i, t);
            bi_expect(x, e, len, what, codes);
            free(e);
        }
    }
    // No method at all.
    size_t len;
    uint8_t *e = bi_envelope(NULL, x->evil, payload, plen, &len);
    bi_expect(x, e, len, "no method", codes);
    free(e);
    free(longname);
    free(payload);
    bi_alive(x, "unknown methods");
    bi_stop(x);
}

static void
test_wrong_types(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    static const int inval[] = { C_INVALID, -1 };
    char what[96];
    size_t len;
    uint8_t *e;

    // A GetJobRequest sent to SubmitBulkUpsert: job_id reads as a column.
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = "01234567-89ab-7def-8123-456789abcdef";
    gr.has_page_size = 1;
    gr.page_size = 7;
    uint8_t gbuf[128];
    size_t glen = bulkupsert__v1__get_job_request__pack(&gr, gbuf);
    e = bi_envelope(BI_SUBMIT, x->evil, gbuf, glen, &len);
    bi_expect(x, e, len, "GetJobRequest to SubmitBulkUpsert", inval);
    free(e);
    // A SubmitBulkUpsertRequest sent to GetJob: contact_datas (bytes)
    // lands on page_size (varint).
    size_t plen;
    uint8_t *payload = bi_valid_payload(2, &plen);
    e = bi_envelope(BI_GETJOB, x->evil, payload, plen, &len);
    static const int gcodes[] = { C_INVALID, C_NOT_FOUND, -1 };
    bi_expect(x, e, len, "SubmitBulkUpsertRequest to GetJob", gcodes);
    free(e);

    // Envelope fields with the wrong wire type, each followed by a
    // well-formed value of that wire type.
    struct {
        const char *name;
        unsigned field, wire;
        const char *tail;
        size_t ntail;
    } env_cases[] = {
        { "method as varint", 1, 0, "\x05", 1 },
        { "token as fixed64", 2, 1, "12345678", 8 },
        { "payload as varint", 3, 0, "\x96\x01", 2 },
        { "payload as fixed32", 3, 5, "1234", 4 },
        { "request_id as a group", 4, 3, "\x24", 1 },
    };
    for (size_t i = 0; i < sizeof(env_cases) / sizeof(env_cases[0]); i++) {
        struct pb b = { 0 };
        if (env_cases[i].field != 1) {
            pb_str(&b, 1, BI_SUBMIT);
        }
        if (env_cases[i].field != 2) {
            pb_str(&b, 2, x->evil);
        }
        if (env_cases[i].field != 3) {
            pb_bytes(&b, 3, payload, plen);
        }
        pb_tag(&b, env_cases[i].field, env_cases[i].wire);
        pb_raw(&b, env_cases[i].tail, env_cases[i].ntail);
        static const int codes[] = { C_INVALID, -1 };
        bi_expect(x, b.buf, b.len, env_cases[i].name, codes);
        pb_fini(&b);
    }
    // Wire type 7 does not exist; field number 0 is illegal.
    static const char bogus[][3] = { "\x0f\x01", "\x00\x01", "\x02\x00" };
    static const int bcodes[] = { C_INVALID, C_UNIMPL, -1 };
    for (size_t i = 0; i < 3; i++) {
        snprintf(what, sizeof(what), "illegal tag #%zu", i);
        bi_expect(x, bogus[i], 2, what, bcodes);
    }

    // Payload fields with the wrong wire type. Where the mistyped field
    // is a record or a value, the request cannot be whole: 400. Where it
    // is a column, a flag or the idempotency key, protobuf's rule (a
    // mistyped field reads as an unknown one) leaves a valid request, so
    // those go to the good tenant and may be answered 400 or accepted; if
    // accepted, exactly the well-typed record lands.
    enum { P_RECORD_VARINT, P_VALUE_FIXED, P_COLS_VARINT, P_FLAG_BYTES,
        P_IDEM_VARINT, P_COUNT };
    for (int k = 0; k < P_COUNT; k++) {
        bool lenient = k >= P_COLS_VARINT;
        char key[32];
        snprintf(key, sizeof(key), "%s-wt-%d", lenient ? "good" : "evil", k);
        struct pb p = { 0 };
        pb_str(&p, 1, "contact_key");
        if (k == P_COLS_VARINT) {
            pb_tag(&p, 1, 0);
            pb_varint(&p, 42);
        }
        struct pb rec = { 0 };
        struct pb val = { 0 };
        if (k == P_VALUE_FIXED) {
            pb_tag(&val, 1, 5);
            pb_raw(&val, "abcd", 4);
        } else {
            pb_str(&val, 1, key);
        }
        pb_bytes(&rec, 1, val.buf, val.len);
        if (k == P_RECORD_VARINT) {
            pb_tag(&p, 2, 0);
            pb_varint(&p, 1);
        } else {
            pb_bytes(&p, 2, rec.buf, rec.len);
        }
        if (k == P_FLAG_BYTES) {
            pb_str(&p, 3, "true");
        }
        if (k == P_IDEM_VARINT) {
            pb_tag(&p, 5, 0);
            pb_varint(&p, 7);
        }
        e = bi_envelope(BI_SUBMIT, lenient ? x->good : x->evil, p.buf, p.len,
            &len);
        snprintf(what, sizeof(what), "payload wire-type case %d", k);
        static const int either[] = { C_INVALID, C_OK, -1 };
        Bulkupsert__V1__RpcResponse *resp = bi_call(x, e, len, what);
        int code = resp->status->code;
        if (!lenient || code != C_OK) {
            bi_expect(x, e, len, what, lenient ? either : inval);
        } else {
            Bulkupsert__V1__SubmitBulkUpsertResponse *ok =
                bulkupsert__v1__submit_bulk_upsert_response__unpack(NULL,
                    resp->payload.len, resp->payload.data);
            assert_non_null(ok);
            bulkupsert_client *c = harness_client(&x->h, x->good);
            Bulkupsert__V1__Job *job = harness_wait_job(c, ok->job_id);
            assert_int_equal(job->counts->total, 1);
            assert_int_equal(job->counts->inserted, 1);
            bulkupsert__v1__job__free_unpacked(job, NULL);
            bulkupsert_client_close(c);
            bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(
                ok, NULL);
            char sql[96];
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM master_contact"
                                       " WHERE contact_key = '%s'", key);
            assert_int_equal(harness_count(&x->h, "good", sql), 1);
            print_message("badinput: %s: read as an unknown field\n", what);
        }
        bulkupsert__v1__rpc_response__free_unpacked(resp, NULL);
        free(e);
        pb_fini(&rec);
        pb_fini(&val);
        pb_fini(&p);
    }

    // Well-typed on the wire, wrong for the column: a boolean key, a null
    // key, a boolean name, a string where a boolean goes, a Value with
    // nothing set for contact_key, a record narrower and one wider than
    // the columns.
    static const char *const cols[] = { "contact_key", "name",
        "email_permission" };
    for (int k = 0; k < 7; k++) {
        struct pb p = { 0 };
        for (int c = 0; c < 3; c++) {
            pb_str(&p, 1, cols[c]);
        }
        struct pb rec = { 0 };
        struct pb v[4] = { { 0 } };
        pb_str(&v[0], 1, "evil-kind");
        pb_str(&v[1], 1, "Eve");
        pb_tag(&v[2], 2, 0);
        pb_varint(&v[2], 1);
        int nv = 3;
        switch (k) {
        case 0: // key as a boolean
            v[0].len = 0;
            pb_tag(&v[0], 2, 0);
            pb_varint(&v[0], 1);
            break;
        case 1: // key as null
            v[0].len = 0;
            pb_tag(&v[0], 3, 0);
            pb_varint(&v[0], 0);
            break;
        case 2: // name as a boolean
            v[1].len = 0;
            pb_tag(&v[1], 2, 0);
            pb_varint(&v[1], 0);
            break;
        case 3: // a boolean as the string "maybe"
            v[2].len = 0;
            pb_str(&v[2], 1, "maybe");
            break;
        case 4: // key not provided
            v[0].len = 0;
            break;
        case 5: // two values for three columns
            nv = 2;
            break;
        case 6: // four values
            pb_str(&v[3], 1, "extra");
            nv = 4;
            break;
        }
        for (int c = 0; c < nv; c++) {
            pb_bytes(&rec, 1, v[c].buf, v[c].len);
        }
        for (int c = 0; c < 4; c++) {
            pb_fini(&v[c]);
        }
        pb_bytes(&p, 2, rec.buf, rec.len);
        e = bi_envelope(BI_SUBMIT, x->evil, p.buf, p.len, &len);
        snprintf(what, sizeof(what), "value kind case %d", k);
        bi_expect(x, e, len, what, inval);
        free(e);
        pb_fini(&rec);
        pb_fini(&p);
    }

    // Many occurrences of a oneof in one Value (string, then bool, then
    // string): the last wins, and the decoder must not leak or crash.
    {
        struct pb p = { 0 };
        pb_str(&p, 1, "contact_key");
        pb_str(&p, 1, "name");
        struct pb v = { 0 };
        pb_str(&v, 1, "Mallory");
        pb_tag(&v, 2, 0);
        pb_varint(&v, 1);
        pb_tag(&v, 3, 0);
        pb_varint(&v, 0);
        pb_tag(&v, 2, 0);
        pb_varint(&v, 1);
        struct pb rec = { 0 };
        pb_bytes(&rec, 1, "\x0a\x07" "evil-oo", 9);
        pb_bytes(&rec, 1, v.buf, v.len); // name: a boolean, last
        pb_bytes(&p, 2, rec.buf, rec.len);
        e = bi_envelope(BI_SUBMIT, x->evil, p.buf, p.len, &len);
        bi_expect(x, e, len, "oneof set three times", inval);
        free(e);
        pb_fini(&rec);
        pb_fini(&v);
        pb_fini(&p);
    }

    // 1001 records: one too many.
    {
        static const char *const c1[] = { "contact_key" };
        struct req_builder b;
        req_init(&b, c1, 1);
        char key[32];
        for (int i = 0; i < 1001; i++) {
            snprintf(key, sizeof(key), "evil-%d", i);
            const char *row[] = { key };
            req_row(&b, row);
        }
        size_t n;
        uint8_t *pl = bi_pack(&b.req, &n);
        e = bi_envelope(BI_SUBMIT, x->evil, pl, n, &len);
        bi_expect(x, e, len, "1001 records", inval);
        free(e);
        free(pl);
        req_fini(&b);
    }
    free(payload);
    bi_alive(x, "wrong types");
    bi_stop(x);
}

// bi_submit_fail submits req with token through the C client; the call
// must fail. Returns its status (clear it). When textok is NULL, text in
// the answer that is not valid UTF-8 fails the test at once; otherwise
// *textok says whether it was all valid (so a test can clean up first).
static struct bulkupsert_status
bi_submit_fail(struct bi *x, const char *token,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *req, const char *what,
    bool *textok)
{
    bulkupsert_client *c = harness_client(&x->h, token);
    bulkupsert_client_set_timeout(c, 30000 * harness_slow());
    struct bulkupsert_status st = { 0 };
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    int code = bulkupsert_submit(c, req, &resp, &st);
    bulkupsert_client_close(c);
    if (code == BULKUPSERT_OK) {
        fail_msg("%s: accepted as job %s", what, resp->job_id);
    }
    bool ok = bi_utf8(st.message);
    for (size_t i = 0; i < st.nerrors; i++) {
        const struct bulkupsert_field_error *fe = &st.errors[i];
        ok = ok && (fe->column == NULL || bi_utf8(fe->column)) &&
            (fe->reason == NULL || bi_utf8(fe->reason)) &&
            (fe->contact_key == NULL || bi_utf8(fe->contact_key));
    }
    if (!ok) {
        print_message("badinput: %s: the answer's text is not valid "
                      "UTF-8\n", what);
    }
    if (textok != NULL) {
        *textok = ok;
    } else if (!ok) {
        fail_msg("%s: the answer's text is not valid UTF-8", what);
    }
    return st;
}

static const char *const bi_bad_utf8[] = {
    "\xff",                 // never valid
    "abc\xc3",              // truncated sequence
    "\xc3\x28",             // bad continuation
    "\xc0\xaf",             // overlong '/'
    "\xe0\x80\xaf",         // overlong, three bytes
    "\xed\xa0\x80",         // a UTF-16 surrogate
    "\xf4\x90\x80\x80",     // past U+10FFFF
    "\xf8\x88\x80\x80\x80", // five-byte form
    "ok\x80ok",             // a lone continuation byte
};
#define BI_NBAD (sizeof(bi_bad_utf8) / sizeof(bi_bad_utf8[0]))

static void
test_invalid_utf8(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    char what[96];

    // In a column name: 400 FieldError.
    for (size_t i = 0; i < BI_NBAD; i++) {
        const char *cols[] = { "contact_key", bi_bad_utf8[i] };
        struct req_builder b;
        req_init(&b, cols, 2);
        const char *row[] = { "evil-u", "x" };
        req_row(&b, row);
        snprintf(what, sizeof(what), "column #%zu", i);
        struct bulkupsert_status st = bi_submit_fail(x, x->evil, &b.req,
            what, NULL);
        assert_int_equal(st.code, BULKUPSERT_INVALID_ARGUMENT);
        assert_int_equal(st.response_code, 1);
        bulkupsert_status_clear(&st);
        req_fini(&b);
    }
    // In values (key, name, email) and in the idempotency key: 400.
    static const char *const cols[] = { "contact_key", "name", "email" };
    for (size_t i = 0; i < BI_NBAD; i++) {
        for (int c = 0; c < 4; c++) {
            struct req_builder b;
            req_init(&b, cols, 3);
            const char *row[] = { "evil-v", "Eve", "e@example.com" };
            if (c < 3) {
                row[c] = bi_bad_utf8[i];
            }
            req_row(&b, row);
            const char *ok[] = { "evil-w", "Eve", "w@example.com" };
            req_row(&b, ok);
            if (c == 3) {
                b.req.idempotency_key = (char *) bi_bad_utf8[i];
            }
            snprintf(what, sizeof(what), "value #%zu in column %d", i, c);
            struct bulkupsert_status st = bi_submit_fail(x, x->evil,
                &b.req, what, NULL);
            assert_int_equal(st.code, BULKUPSERT_INVALID_ARGUMENT);
            if (c < 3) {
                assert_int_equal(st.response_code, 11);
                assert_int_equal(st.nerrors, 1);
                assert_int_equal(st.errors[0].record_index, 0);
            }
            bulkupsert_status_clear(&st);
            b.req.idempotency_key = NULL;
            req_fini(&b);
        }
    }
    // In the token: 401.
    for (size_t i = 0; i < BI_NBAD; i++) {
        char tok[64];
        snprintf(tok, sizeof(tok), "v4.public.%s", bi_bad_utf8[i]);
        struct req_builder b;
        req_init(&b, cols, 3);
        const char *row[] = { "evil-t", "Eve", "t@example.com" };
        req_row(&b, row);
        snprintf(what, sizeof(what), "token #%zu", i);
        struct bulkupsert_status st =
            bi_submit_fail(x, tok, &b.req, what, NULL);
        assert_int_equal(st.code, BULKUPSERT_UNAUTHENTICATED);
        bulkupsert_status_clear(&st);
        req_fini(&b);
    }
    bi_alive(x, "invalid UTF-8 (fail_on_error)");

    // fail_on_error=false: the valid records land, the invalid ones are
    // failed in the job, nothing of them is stored.
    {
        struct req_builder b;
        req_init(&b, cols, 3);
        char key[32];
        for (size_t i = 0; i < BI_NBAD; i++) {
            snprintf(key, sizeof(key), "mixed-ok-%zu", i);
            const char *okrow[] = { key, "Ok", "ok@example.com" };
            req_row(&b, okrow);
            const char *badrow[] = { bi_bad_utf8[i], "Bad", NULL };
            req_row(&b, badrow);
        }
        b.req.has_fail_on_error = 1;
        b.req.fail_on_error = 0;
        bulkupsert_client *c = harness_client(&x->h, x->good);
        struct bulkupsert_status st = { 0 };
        Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
        assert_int_equal(bulkupsert_submit(c, &b.req, &resp, &st), 0);
        bulkupsert_status_clear(&st);
        Bulkupsert__V1__Job *job = harness_wait_job(c, resp->job_id);
        assert_int_equal(job->state,
            BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS);
        assert_int_equal(job->counts->inserted, BI_NBAD);
        assert_int_equal(job->counts->failed, BI_NBAD);
        bulkupsert__v1__job__free_unpacked(job, NULL);
        // The per-record results are valid UTF-8 too.
        Bulkupsert__V1__GetJobRequest gr =
            BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
        gr.job_id = resp->job_id;
        gr.has_page_size = 1;
        gr.page_size = 1000;
        assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st), 0);
        bulkupsert_status_clear(&st);
        assert_int_equal(job->n_records, 2 * BI_NBAD);
        for (size_t i = 0; i < job->n_records; i++) {
            const Bulkupsert__V1__RecordResult *r = job->records[i];
            if (r->contact_key != NULL && !bi_utf8(r->contact_key)) {
                fail_msg("record %zu: contact_key is not UTF-8", i);
            }
            for (size_t k = 0; k < r->n_errors; k++) {
                assert_true(r->errors[k]->reason == NULL ||
                    bi_utf8(r->errors[k]->reason));
            }
            assert_int_equal(r->outcome, i % 2 == 0
                    ? BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_INSERTED
                    : BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_FAILED);
        }
        bulkupsert__v1__job__free_unpacked(job, NULL);
        bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(
            resp, NULL);
        bulkupsert_client_close(c);
        req_fini(&b);
        assert_int_equal(harness_count(&x->h, "good",
                             "SELECT count(*) FROM master_contact"
                             " WHERE name = 'Bad'"), 0);
        assert_int_equal(harness_count(&x->h, "good",
                             "SELECT count(*) FROM master_contact"
                             " WHERE name = 'Ok'"), (long long) BI_NBAD);
    }
    bi_alive(x, "invalid UTF-8 (fail_on_error=false)");
    bi_stop(x);
}

// The error text quotes a long unknown column name cut to fit a fixed
// buffer; the cut must not split a UTF-8 sequence (FieldError.reason and
// Status.message are protobuf strings).
static void
test_error_text_keeps_utf8(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    char name[401];
    for (int i = 0; i < 200; i++) {
        memcpy(name + 2 * i, "\xc3\xa9", 2); // é
    }
    name[400] = '\0';
    char shifted[402];
    snprintf(shifted, sizeof(shifted), "a%s", name);
    const char *names[] = { name, shifted };
    bool textok = true;
    for (int i = 0; i < 2; i++) {
        const char *cols[] = { "contact_key", names[i] };
        struct req_builder b;
        req_init(&b, cols, 2);
        const char *row[] = { "evil-long", "x" };
        req_row(&b, row);
        bool ok;
        struct bulkupsert_status st = bi_submit_fail(x, x->evil, &b.req,
            i == 0 ? "long column name" : "long column name, shifted", &ok);
        int code = st.code;
        bulkupsert_status_clear(&st);
        req_fini(&b);
        assert_int_equal(code, BULKUPSERT_INVALID_ARGUMENT);
        textok = textok && ok;
    }
    bi_stop(x);
    assert_true(textok);
}

// A protobuf string may hold U+0000; C strings end there. The server must
// not take "victim\0tail" for "victim" (it would overwrite another
// contact, or merge two idempotency keys).
static void
test_nul_in_strings_refused(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    // The good tenant owns a contact "victim".
    {
        static const char *const cols[] = { "contact_key", "name" };
        struct req_builder b;
        req_init(&b, cols, 2);
        const char *row[] = { "victim", "Original" };
        req_row(&b, row);
        bulkupsert_client *c = harness_client(&x->h, x->good);
        struct bulkupsert_status st = { 0 };
        Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
        assert_int_equal(bulkupsert_submit(c, &b.req, &resp, &st), 0);
        bulkupsert_status_clear(&st);
        Bulkupsert__V1__Job *job = harness_wait_job(c, resp->job_id);
        bulkupsert__v1__job__free_unpacked(job, NULL);
        bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(
            resp, NULL);
        bulkupsert_client_close(c);
        req_fini(&b);
    }
    // Hand-made payload: contact_key "victim\0tail", name "Hijacked".
    struct pb p = { 0 };
    pb_str(&p, 1, "contact_key");
    pb_str(&p, 1, "name");
    struct pb rec = { 0 };
    pb_bytes(&rec, 1, "\x0a\x0b" "victim\0tail", 13);
    pb_bytes(&rec, 1, "\x0a\x08" "Hijacked", 10);
    pb_bytes(&p, 2, rec.buf, rec.len);
    size_t len;
    uint8_t *e = bi_envelope(BI_SUBMIT, x->good, p.buf, p.len, &len);
    Bulkupsert__V1__RpcResponse *resp = bi_call(x, e, len, "NUL in key");
    int code = resp->status->code;
    free(e);
    pb_fini(&rec);
    pb_fini(&p);
    if (code == C_OK) {
        // Accepted: let the job run before looking at the table.
        Bulkupsert__V1__SubmitBulkUpsertResponse *ok =
            bulkupsert__v1__submit_bulk_upsert_response__unpack(NULL,
                resp->payload.len, resp->payload.data);
        assert_non_null(ok);
        bulkupsert_client *c = harness_client(&x->h, x->good);
        Bulkupsert__V1__Job *job = harness_wait_job(c, ok->job_id);
        bulkupsert__v1__job__free_unpacked(job, NULL);
        bulkupsert_client_close(c);
        bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(ok, NULL);
    }
    bulkupsert__v1__rpc_response__free_unpacked(resp, NULL);
    char name[64] = "";
    assert_int_equal(harness_text(&x->h, "good",
                         "SELECT name FROM master_contact"
                         " WHERE contact_key = 'victim'", name,
                         sizeof(name)), 0);
    if (strcmp(name, "Original") != 0) {
        fail_msg("contact \"victim\" was overwritten through the key "
                 "\"victim\\0tail\" (name now \"%s\")", name);
    }
    assert_int_equal(code, C_INVALID);
    bi_stop(x);
}

// A raw connection to the ipc:// path of url; -1 on failure.
static int
bi_unix(const char *url)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strncmp(url, "ipc://", 6) != 0 ||
        strlen(url + 6) >= sizeof(sa.sun_path)) {
        return -1;
    }
    memcpy(sa.sun_path, url + 6, strlen(url + 6) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// A raw TCP connection to 127.0.0.1:port; -1 on failure.
static int
bi_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
bi_send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return; // the server may have dropped us: that is allowed
        }
        b += w;
        n -= (size_t) w;
    }
}

// bi_recv_all reads n bytes within timeout_ms; returns 0 or -1.
static int
bi_recv_all(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    while (n > 0) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            return -1;
        }
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0) {
            return -1;
        }
        b += r;
        n -= (size_t) r;
    }
    return 0;
}

// The SP header of a req0 peer (protocol 48).
static const uint8_t bi_sp_req0[8] = { 0, 'S', 'P', 0, 0, 48, 0, 0 };

static void
bi_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t) (v & 0xff);
        v >>= 8;
    }
}

// bi_sp_request frames env as a req0 peer's first bytes on a connection:
// the SP header, the message length, the request id (high bit set), the
// envelope. Returns the malloc'd frame, *np bytes.
static uint8_t *
bi_sp_request(const void *env, size_t len, uint32_t id, size_t *np)
{
    uint8_t *f = malloc(20 + len);
    assert_non_null(f);
    memcpy(f, bi_sp_req0, 8);
    bi_be64(f + 8, 4 + len);
    id |= 0x80000000u;
    for (int i = 0; i < 4; i++) {
        f[16 + i] = (uint8_t) (id >> (24 - 8 * i));
    }
    memcpy(f + 20, env, len);
    *np = 20 + len;
    return f;
}

// bi_read_to_end reads what the server sends until it closes the
// connection (EOF or a reset), for up to timeout_ms in all. Returns the
// bytes read, or -1 when the connection was still open at the end.
static long
bi_read_to_end(int fd, int timeout_ms)
{
    long total = 0;
    int64_t until = harness_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - harness_mono_ms();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, (int) left) <= 0) {
            return -1;
        }
        uint8_t buf[4096];
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            return total; // closed, or reset
        }
        total += r;
    }
}

static void
test_big_frames(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    size_t big = 10 * BI_MB;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    size_t len;
    uint8_t *e;

    // 10 MB of random bytes as the frame.
    bi_fill(buf, big);
    static const int rcodes[] = { C_INVALID, C_UNIMPL, -1 };
    bi_expect(x, buf, big, "10 MB random frame", rcodes);
    // 10 MB of random bytes as the payload.
    static const int inval[] = { C_INVALID, -1 };
    e = bi_envelope(BI_SUBMIT, x->evil, buf, big, &len);
    bi_expect(x, e, len, "10 MB random payload", inval);
    free(e);
    // A 10 MB token and a 10 MB method.
    memset(buf, 'v', big - 1);
    buf[big - 1] = '\0';
    size_t plen;
    uint8_t *payload = bi_valid_payload(2, &plen);
    e = bi_envelope(BI_SUBMIT, (char *) buf, payload, plen, &len);
    static const int ucodes[] = { C_UNAUTH, -1 };
    bi_expect(x, e, len, "10 MB token", ucodes);
    free(e);
    e = bi_envelope((char *) buf, x->evil, payload, plen, &len);
    static const int mcodes[] = { C_UNIMPL, -1 };
    bi_expect(x, e, len, "10 MB method", mcodes);
    free(e);
    // 1000 records with 10 KB names: well-formed, every record invalid.
    {
        static const char *const cols[] = { "contact_key", "name" };
        struct req_builder b;
        req_init(&b, cols, 2);
        char *name = malloc(10000 + 1);
        memset(name, 'n', 10000);
        name[10000] = '\0';
        char key[32];
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "evil-big-%d", i);
            const char *row[] = { key, name };
            req_row(&b, row);
        }
        free(name);
        struct bulkupsert_status st = bi_submit_fail(x, x->evil, &b.req,
            "1000 records of 10 KB names", NULL);
        assert_int_equal(st.code, BULKUPSERT_INVALID_ARGUMENT);
        assert_int_equal(st.response_code, 11);
        assert_int_equal(st.nerrors, 1000);
        bulkupsert_status_clear(&st);
        req_fini(&b);
    }
    long rss = 0, hwm = 0;
    assert_int_equal(harness_rss_kb(&x->h, &rss, &hwm), 0);
    print_message("badinput: after 10 MB frames VmRSS=%ld kB VmHWM=%ld kB\n",
        rss, hwm);
    bi_alive(x, "10 MB frames");

    // 50 MB: over the 40 MiB frame limit. No answer: the connection is
    // dropped (or, at worst, the call times out).
    free(buf);
    big = 50 * BI_MB;
    buf = malloc(big);
    assert_non_null(buf);
    memset(buf, 'x', big);
    e = bi_envelope(BI_SUBMIT, x->evil, buf, big, &len);
    free(buf);
    // Sent by hand: the server drops the connection mid-send, and nng
    // 1.5.2's own req0 socket can then hang in nng_close (seen once in
    // about a hundred runs: the test stopped there, not the daemon).
    size_t flen;
    uint8_t *frame = bi_sp_request(e, len, 1, &flen);
    for (int i = 0; i < 3; i++) {
        int fd = bi_unix(x->h.url);
        assert_true(fd >= 0);
        struct timeval tv = { .tv_sec = 10 * harness_slow() };
        assert_int_equal(
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
        bi_send_all(fd, frame, flen); // stops where the server left
        // Only the server's 8-byte SP header, then the end: no answer.
        long got = bi_read_to_end(fd, 10000 * harness_slow());
        close(fd);
        print_message("badinput: 50 MB frame: %ld bytes back, then %s\n",
            got, got < 0 ? "still open" : "closed");
        if (got < 0 || got > 8) {
            fail_msg("50 MB frame: %s", got < 0
                    ? "the connection stayed open"
                    : "the server answered it");
        }
    }
    free(frame);
    free(e);
    free(payload);
    bi_alive(x, "50 MB frames");
    bi_stop(x);
}

// bi_empty_records: a submit payload of contact_key and records with no
// values, about len bytes of them (two bytes a record).
static uint8_t *
bi_empty_records(size_t len, size_t *lenp)
{
    struct pb p = { 0 };
    pb_str(&p, 1, "contact_key");
    while (p.len + 2 <= len) {
        pb_raw(&p, "\x12\x00", 2);
    }
    *lenp = p.len;
    return p.buf;
}

// A request whose shape is wrong twice over (too many records, and every
// record narrower than the columns) gets one FieldError: validate.h says
// "A shape error stops the check". Today each record adds its own error,
// so 10 MB of empty records (5 million) come back as a 300 MB answer,
// larger than any client takes (the C client's limit is 64 MiB), and the
// daemon peaks past 2 GB building it (DESIGN inv 5 and 6).
static void
test_shape_error_answer_stays_small(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    size_t plen, len;
    uint8_t *p = bi_empty_records(4000, &plen); // 1994 records
    uint8_t *e = bi_envelope(BI_SUBMIT, x->evil, p, plen, &len);
    Bulkupsert__V1__RpcResponse *resp = bi_call(x, e, len, "2000 empty");
    assert_int_equal(resp->status->code, C_INVALID);
    assert_int_equal(resp->status->response_code, 1);
    print_message("badinput: 2000 empty records: %zu field errors\n",
        resp->status->n_errors);
    size_t nerr = resp->status->n_errors;
    bulkupsert__v1__rpc_response__free_unpacked(resp, NULL);
    free(e);
    free(p);

    // Under valgrind, 1 MB makes the point at a tenth of the cost.
    size_t mb = harness_slow() > 1 ? 1 : 10;
    p = bi_empty_records(mb * BI_MB, &plen);
    e = bi_envelope(BI_SUBMIT, x->evil, p, plen, &len);
    free(p);
    void *reply = NULL;
    size_t rlen = 0;
    int rv = harness_raw_call(
        x->h.url, e, len, 60000 * harness_slow(), &reply, &rlen);
    free(e);
    free(reply);
    long hwm = 0;
    assert_int_equal(harness_rss_kb(&x->h, NULL, &hwm), 0);
    print_message("badinput: %zu MB of empty records: %s, %zu-byte answer, "
                  "daemon VmHWM %ld kB\n",
        mb, rv == 0 ? "answered" : nng_strerror(rv), rlen, hwm);
    bi_alive(x, "MBs of empty records");
    assert_int_equal(nerr, 1);
    assert_int_equal(rv, 0);
    assert_true(rlen < 64 * 1024);
    // Decoding 5 million records costs memory (protobuf-c allocates each);
    // the bound is generous, the point is that it is not gigabytes.
    if (harness_wrapper() == NULL) {
        assert_true(hwm < 1024L * 1024);
    }
    bi_stop(x);
}

// The daemon's peak RSS bound while it answers one 10 MB frame (kB).
// AddressSanitizer pads each allocation and keeps up to 256 MiB of freed
// memory in quarantine.
#if defined(__SANITIZE_ADDRESS__)
#define BI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BI_ASAN 1
#endif
#endif
#ifdef BI_ASAN
#define BI_FRAME_HWM_KB (512L * 1024)
#else
#define BI_FRAME_HWM_KB (256L * 1024)
#endif

// Decoding is memory too (DESIGN inv 6): 10 MB of records with no values
// decode into five million ContactData structs, half a gigabyte, before
// the validator counts them (the 1000-record limit). Requests held are
// bounded by bytes (--max-inflight-bytes), so what one frame may cost
// decoded must stay a small multiple of its size: the count of records,
// values and columns on the wire can be checked before decoding (as the
// NUL check already walks it). Bound: 256 MiB for the 10 MB frame.
static void
test_decode_amplification_bounded(void **state)
{
    struct bi *x = *state;
    bi_start(x, NULL);
    if (harness_wrapper() != NULL) {
        // Under valgrind the RSS is valgrind's, and decoding five million
        // records takes minutes: nothing to measure.
        bi_stop(x);
        skip();
    }
    long before = 0;
    assert_int_equal(harness_rss_kb(&x->h, NULL, &before), 0);
    size_t plen, len;
    uint8_t *p = bi_empty_records(10 * BI_MB, &plen);
    uint8_t *e = bi_envelope(BI_SUBMIT, x->evil, p, plen, &len);
    free(p);
    static const int inval[] = { C_INVALID, -1 };
    bi_expect(x, e, len, "10 MB of records without values", inval);
    free(e);
    long hwm = 0;
    assert_int_equal(harness_rss_kb(&x->h, NULL, &hwm), 0);
    print_message("badinput: 10 MB of empty records: daemon VmHWM %ld kB "
                  "(%ld kB before; bound %ld kB)\n",
        hwm, before, BI_FRAME_HWM_KB);
    bi_alive(x, "decode amplification");
    bi_stop(x);
    assert_true(hwm < BI_FRAME_HWM_KB);
}

#define BI_DIAL_WAIT_MS 5000

static void
bi_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void) p;
    (void) ev;
    atomic_store((atomic_bool *) arg, true);
}

// bi_dial_briefly dials url on a fresh req0 socket and closes it once the
// connection is up, or after BI_DIAL_WAIT_MS. Returns whether it came up.
// Not a blocking nng_dial: nng 1.5.2's was seen to wait forever with the
// connection established and both SP headers read on both sides (the
// daemon idle), a client-side hang with no timeout.
static bool
bi_dial_briefly(const char *url)
{
    nng_socket  s;
    atomic_bool up = false;
    assert_int_equal(nng_req0_open(&s), 0);
    assert_int_equal(
        nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, bi_pipe_added, &up), 0);
    int rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        fail_msg("dial %s: %s", url, nng_strerror(rv));
    }
    int64_t until = harness_mono_ms() + BI_DIAL_WAIT_MS;
    while (!atomic_load(&up) && harness_mono_ms() < until) {
        harness_sleep_ms(1);
    }
    nng_close(s);
    return atomic_load(&up);
}

static void
test_connection_churn(void **state)
{
    static const char *const extra[] = { "--listen", "tcp://127.0.0.1:0",
        NULL };
    struct bi *x = *state;
    bi_start(x, extra);
    int port = harness_tcp_port(&x->h);
    assert_true(port > 0);
    char tcpurl[64];
    snprintf(tcpurl, sizeof(tcpurl), "tcp://127.0.0.1:%d", port);
    int scale = harness_slow() > 1 ? 10 : 1;

    // nng dials that close at once (requests dropped half-way are sent
    // over raw TCP below).
    size_t glen;
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = "01234567-89ab-7def-8123-456789abcdef";
    uint8_t gbuf[128];
    size_t gplen = bulkupsert__v1__get_job_request__pack(&gr, gbuf);
    uint8_t *genv = bi_envelope(BI_GETJOB, x->evil, gbuf, gplen, &glen);
    const char *urls[] = { x->h.url, tcpurl };
    for (int u = 0; u < 2; u++) {
        int dials = 1000 / scale, late = 0;
        for (int i = 0; i < dials; i++) {
            late += !bi_dial_briefly(urls[u]);
        }
        if (late > 0) {
            print_message("badinput: %s: %d of %d dials not up within "
                          "%d ms\n",
                urls[u], late, dials, BI_DIAL_WAIT_MS);
        }
        assert_true(late <= dials / 100);
        bi_alive(x, u == 0 ? "ipc dial/close" : "tcp dial/close");
    }

    // Raw TCP: connect and close; half an SP header; an HTTP request
    // instead; a frame header announcing 2^40 bytes; a frame cut short; a
    // whole request whose sender leaves before the answer.
    for (int i = 0; i < 2000 / scale; i++) {
        int fd = bi_tcp(port);
        if (fd < 0) {
            fail_msg("tcp connect #%d: %s", i, strerror(errno));
        }
        switch (i % 6) {
        case 0:
            break;
        case 1:
            bi_send_all(fd, bi_sp_req0, 3);
            break;
        case 2:
            bi_send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
            break;
        case 3: {
            uint8_t hdr[16];
            memcpy(hdr, bi_sp_req0, 8);
            bi_be64(hdr + 8, 1ULL << 40);
            bi_send_all(fd, hdr, sizeof(hdr));
            break;
        }
        case 4: {
            uint8_t hdr[24];
            memcpy(hdr, bi_sp_req0, 8);
            bi_be64(hdr + 8, 100);
            memcpy(hdr + 16, "\x80\x00\x00\x01\x0a\x05\x62\x75", 8);
            bi_send_all(fd, hdr, sizeof(hdr));
            break;
        }
        case 5: { // a whole request, then gone before the answer
            size_t n;
            uint8_t *f = bi_sp_request(genv, glen, 9, &n);
            bi_send_all(fd, f, n);
            free(f);
            break;
        }
        }
        close(fd);
    }
    bi_alive(x, "raw tcp connect/drop");

    // Hold many connections open at once (half of them past the SP
    // header), and check the server keeps answering meanwhile.
    enum { HOLD = 400 };
    int fds[HOLD];
    int held = 0;
    for (int i = 0; i < HOLD / scale; i++) {
        fds[held] = bi_tcp(port);
        if (fds[held] < 0) {
            fail_msg("tcp connect (held) #%d: %s", i, strerror(errno));
        }
        if (i % 2 == 0) {
            bi_send_all(fds[held], bi_sp_req0, 8);
        }
        held++;
    }
    bi_alive(x, "connections held open");

    // A whole request by hand over raw TCP: the answer is a 404.
    {
        int fd = bi_tcp(port);
        assert_true(fd >= 0);
        size_t n;
        uint8_t *f = bi_sp_request(genv, glen, 7, &n);
        bi_send_all(fd, f, n);
        free(f);
        uint8_t hs[8], lenb[8];
        assert_int_equal(bi_recv_all(fd, hs, 8, 10000 * harness_slow()), 0);
        assert_int_equal(hs[1], 'S');
        assert_int_equal(hs[5], 49); // rep0
        assert_int_equal(bi_recv_all(fd, lenb, 8, 10000 * harness_slow()),
            0);
        uint64_t rl = 0;
        for (int i = 0; i < 8; i++) {
            rl = (rl << 8) | lenb[i];
        }
        assert_true(rl > 4 && rl < 65536);
        uint8_t *r = malloc(rl);
        assert_int_equal(bi_recv_all(fd, r, rl, 10000 * harness_slow()), 0);
        assert_memory_equal(r, "\x80\x00\x00\x07", 4);
        Bulkupsert__V1__RpcResponse *resp =
            bulkupsert__v1__rpc_response__unpack(NULL, rl - 4, r + 4);
        assert_non_null(resp);
        assert_non_null(resp->status);
        assert_int_equal(resp->status->code, C_NOT_FOUND);
        bulkupsert__v1__rpc_response__free_unpacked(resp, NULL);
        free(r);
        close(fd);
    }
    for (int i = 0; i < held; i++) {
        close(fds[i]);
    }
    free(genv);
    bi_alive(x, "held connections dropped");
    bi_stop(x);
}

#define BI_TEST(f) cmocka_unit_test_setup_teardown(f, bi_setup, bi_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        BI_TEST(test_random_frames),
        BI_TEST(test_truncated_protobufs),
        BI_TEST(test_unknown_methods),
        BI_TEST(test_wrong_types),
        BI_TEST(test_invalid_utf8),
        BI_TEST(test_error_text_keeps_utf8),
        BI_TEST(test_nul_in_strings_refused),
        BI_TEST(test_big_frames),
        BI_TEST(test_shape_error_answer_stays_small),
        BI_TEST(test_decode_amplification_bounded),
        BI_TEST(test_connection_churn),
    };
    // BU_TEST_FILTER=test_big_frames (a glob) runs only matching tests.
    if (getenv("BU_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("BU_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
