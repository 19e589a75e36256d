// SPDX-License-Identifier: MIT
/*
 * Tests of request validation against the standard columns, table-driven:
 * one row per shape rule (FieldError 1) and one per cell rule and edge
 * (ValidationFails 11), each checked both through bu_validate_cell (the
 * stored cell and its notes) and through bu_validate (the verdict's record
 * index, contact_key, column, reason and bad-record count). Also the
 * per-record error cap, in-place normalisation and injected OOM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/utf8.h"
#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "store/schema.h"
#include "valid/validate.h"
#include "valid/wire.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

// ---- request builder ----
//
// Requests are built from malloc'd parts, so protobuf-c's free_unpacked
// (default allocator: malloc/free) releases them like decoded ones.

enum vkind { V_UNSET, V_STR, V_BOOL, V_NULL };

struct val {
    enum vkind kind;
    const char *s;
    bool b;
};

#define U { V_UNSET, NULL, false }
#define S(x) { V_STR, (x), false }
#define B(x) { V_BOOL, NULL, (x) }
#define N { V_NULL, NULL, false }

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    assert_non_null(p);
    return p;
}

static char *
xstrdup(const char *s)
{
    char *d = xcalloc(strlen(s) + 1, 1);
    memcpy(d, s, strlen(s));
    return d;
}

static Bulkupsert__V1__Value *
value_new(const struct val *v)
{
    Bulkupsert__V1__Value *m = xcalloc(1, sizeof(*m));
    bulkupsert__v1__value__init(m);
    switch (v->kind) {
    case V_UNSET:
        break;
    case V_STR:
        m->kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
        m->string_value = xstrdup(v->s);
        break;
    case V_BOOL:
        m->kind_case = BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE;
        m->bool_value = v->b;
        break;
    case V_NULL:
        m->kind_case = BULKUPSERT__V1__VALUE__KIND_NULL_VALUE;
        m->null_value = BULKUPSERT__V1__NULL_VALUE__NULL_VALUE;
        break;
    }
    return m;
}

static void
value_free(Bulkupsert__V1__Value *m)
{
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static Bulkupsert__V1__SubmitBulkUpsertRequest *
req_new(const char *const *cols, size_t ncols)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = xcalloc(1, sizeof(*req));
    bulkupsert__v1__submit_bulk_upsert_request__init(req);
    req->n_columns = ncols;
    req->columns = ncols > 0 ? xcalloc(ncols, sizeof(char *)) : NULL;
    for (size_t i = 0; i < ncols; i++) {
        req->columns[i] = xstrdup(cols[i]);
    }
    return req;
}

// req_add appends a record of nvals values.
static void
req_add(Bulkupsert__V1__SubmitBulkUpsertRequest *req, const struct val *vals,
    size_t nvals)
{
    Bulkupsert__V1__ContactData *cd = xcalloc(1, sizeof(*cd));
    bulkupsert__v1__contact_data__init(cd);
    cd->n_values = nvals;
    cd->values = nvals > 0 ? xcalloc(nvals, sizeof(*cd->values)) : NULL;
    for (size_t i = 0; i < nvals; i++) {
        cd->values[i] = value_new(&vals[i]);
    }
    Bulkupsert__V1__ContactData **recs = realloc(req->contact_datas,
        (req->n_contact_datas + 1) * sizeof(*recs));
    assert_non_null(recs);
    recs[req->n_contact_datas++] = cd;
    req->contact_datas = recs;
}

static void
req_free(Bulkupsert__V1__SubmitBulkUpsertRequest *req)
{
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

static const char *
value_text(const Bulkupsert__V1__SubmitBulkUpsertRequest *req, size_t r,
    size_t i)
{
    return req->contact_datas[r]->values[i]->string_value;
}

// ---- fixtures ----

static struct bu_schema std_schema;

static int
group_setup(void **state)
{
    (void) state;
    bu_schema_standard(&std_schema);
    return 0;
}

static const struct bu_column *
col_of(const char *name)
{
    int idx = bu_schema_find(&std_schema, name);
    if (idx < 0) {
        fail_msg("no standard column %s", name);
    }
    return &std_schema.cols[idx];
}

// Long literals, built by the preprocessor.
#define X5(s) s s s s s
#define X10(s) X5(s) X5(s)
#define X50(s) X10(s) X10(s) X10(s) X10(s) X10(s)
#define X100(s) X50(s) X50(s)
#define EACUTE "\xc3\xa9"
#define KEY255 X100("k") X100("k") X50("k") X5("k")
#define KEY256 KEY255 "k"
#define DIGITS20 "12345678901234567890"

// ---- shape ----

struct shape_case {
    const char *name;
    const char *cols[4];
    size_t ncols;
    size_t nrec;
    size_t nvals;        // values per record
    const char *disable; // column to make not import-enabled, or NULL
    // Expected: no errors when nerrors is 0; else errors[0] is this one.
    size_t nerrors;
    int64_t record_index;
    const char *column;
    const char *reason; // a substring of errors[0].reason
};

static const struct shape_case shape_cases[] = {
    { "contact_key alone is a request", { "contact_key" }, 1, 1, 1, NULL, 0,
        0, NULL, NULL },
    { "1000 records is the limit", { "contact_key", "name" }, 2, 1000, 2,
        NULL, 0, 0, NULL, NULL },
    { "no columns", { NULL }, 0, 1, 0, NULL, 1, -1, "columns",
        "at least one column" },
    { "contact_key missing", { "name", "email" }, 2, 1, 2, NULL, 1, -1,
        "contact_key", "must include contact_key" },
    { "repeated column", { "contact_key", "name", "name" }, 3, 1, 3, NULL,
        1, -1, "name", "repeated" },
    { "repeated contact_key", { "contact_key", "contact_key" }, 2, 1, 2,
        NULL, 1, -1, "contact_key", "repeated" },
    { "unknown column", { "contact_key", "nickname" }, 2, 1, 2, NULL, 1, -1,
        "nickname", "unknown column" },
    { "names are case-sensitive", { "contact_key", "Name" }, 2, 1, 2, NULL,
        1, -1, "Name", "unknown column" },
    { "column name not UTF-8", { "contact_key", "na\xffme" }, 2, 1, 2, NULL,
        1, -1, NULL, "not valid UTF-8" },
    // Not quoted back: no column has a name of 64 characters.
    { "column name too long", { "contact_key",
        "n123456789012345678901234567890123456789012345678901234567890123" },
        2, 1, 2, NULL, 1, -1, NULL, "longer than 63 characters" },
    { "no records", { "contact_key" }, 1, 0, 1, NULL, 1, -1, "contact_datas",
        "0 records" },
    { "1001 records", { "contact_key" }, 1, 1001, 1, NULL, 1, -1,
        "contact_datas", "1001 records" },
    // Ragged records give one error, naming the first and the count, so
    // the answer stays small whatever the request's size.
    { "too few values", { "contact_key", "name" }, 2, 2, 1, NULL, 1, 0,
        "values", "(2 records in all have the wrong number)" },
    { "too many values", { "contact_key", "name" }, 2, 1, 3, NULL, 1, 0,
        "values", "3 values for 2 columns" },
    { "column not import-enabled", { "contact_key", "gsm" }, 2, 1, 2, "gsm",
        1, -1, "gsm", "not import-enabled" },
    { "a disabled column not sent is fine", { "contact_key", "name" }, 2, 1,
        2, "gsm", 0, 0, NULL, NULL },
    { "every shape error is listed", { "nickname", "name", "name" }, 3, 0, 3,
        NULL, 4, -1, "nickname", "unknown column" },
};

// shape_request builds nrec records whose contact_key cells are "k<r>" and
// whose other cells are unset.
static Bulkupsert__V1__SubmitBulkUpsertRequest *
shape_request(const char *const *cols, size_t ncols, size_t nrec,
    size_t nvals)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, ncols);
    struct val *vals = xcalloc(nvals, sizeof(*vals));
    char key[32];
    for (size_t r = 0; r < nrec; r++) {
        snprintf(key, sizeof(key), "k%zu", r);
        for (size_t j = 0; j < nvals; j++) {
            bool is_key = j < ncols && strcmp(cols[j], "contact_key") == 0;
            vals[j] = (struct val) { is_key ? V_STR : V_UNSET, key, false };
        }
        req_add(req, vals, nvals);
    }
    free(vals);
    return req;
}

static void
test_shape_cases(void **state)
{
    (void) state;
    static struct bu_schema schema;
    for (size_t k = 0; k < NELEM(shape_cases); k++) {
        const struct shape_case *c = &shape_cases[k];
        schema = std_schema;
        if (c->disable != NULL) {
            int idx = bu_schema_find(&schema, c->disable);
            assert_true(idx >= 0);
            schema.cols[idx].import_enabled = false;
        }
        Bulkupsert__V1__SubmitBulkUpsertRequest *req =
            shape_request(c->cols, c->ncols, c->nrec, c->nvals);
        struct bu_verdict v;
        assert_rv(bu_validate(&schema, req, &v), BU_OK);
        if (v.nerrors != c->nerrors) {
            fail_msg("%s: %zu errors (first: %s), want %zu", c->name,
                v.nerrors, v.nerrors > 0 ? v.errors[0].reason : "-",
                c->nerrors);
        }
        if (c->nerrors == 0) {
            assert_int_equal(v.shape_failed, 0);
            assert_int_equal(v.nbad, 0);
        } else {
            const struct bu_field_error *e = &v.errors[0];
            if (!v.shape_failed) {
                fail_msg("%s: shape_failed not set", c->name);
            }
            if (e->record_index != c->record_index) {
                fail_msg("%s: record_index %lld, want %lld", c->name,
                    (long long) e->record_index,
                    (long long) c->record_index);
            }
            if ((c->column == NULL) != (e->column == NULL) ||
                (c->column != NULL && strcmp(c->column, e->column) != 0)) {
                fail_msg("%s: column %s, want %s", c->name,
                    e->column ? e->column : "(null)",
                    c->column ? c->column : "(null)");
            }
            if (strstr(e->reason, c->reason) == NULL) {
                fail_msg("%s: reason \"%s\" lacks \"%s\"", c->name,
                    e->reason, c->reason);
            }
            // Shape errors are about the request, not a record's key.
            for (size_t i = 0; i < v.nerrors; i++) {
                assert_null(v.errors[i].contact_key);
            }
            assert_int_equal(v.nbad, 0);
        }
        bu_verdict_fini(&v);
        req_free(req);
    }
}

static void
test_shape_too_many_columns(void **state)
{
    (void) state;
    static const char *cols[BU_SCHEMA_MAX_COLUMNS + 1];
    for (size_t i = 0; i < NELEM(cols); i++) {
        cols[i] = "contact_key";
    }
    Bulkupsert__V1__SubmitBulkUpsertRequest *req =
        shape_request(cols, NELEM(cols), 1, NELEM(cols));
    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    assert_true(v.shape_failed);
    assert_int_equal(v.nerrors, 1);
    assert_string_equal(v.errors[0].column, "columns");
    assert_non_null(strstr(v.errors[0].reason, "257 columns"));
    bu_verdict_fini(&v);
    req_free(req);
}

// ---- cells ----

struct cell_case {
    const char *col;
    struct val v;
    bool ok;
    const char *reason;     // refused: a substring of the reason
    enum bu_cell_kind kind; // accepted: the cell
    const char *text;       // BU_CELL_TEXT
    long long i;            // BU_CELL_INT
    unsigned notes;
};

#define OK_T(col, v, text) { col, v, true, NULL, BU_CELL_TEXT, text, 0, 0 }
#define OK_TN(col, v, text, notes)                                          \
    { col, v, true, NULL, BU_CELL_TEXT, text, 0, notes }
#define OK_I(col, v, i) { col, v, true, NULL, BU_CELL_INT, NULL, i, 0 }
#define OK_N(col) { col, N, true, NULL, BU_CELL_NULL, NULL, 0, 0 }
#define OK_U(col) { col, U, true, NULL, BU_CELL_UNSET, NULL, 0, 0 }
#define BAD(col, v, reason) { col, v, false, reason, 0, NULL, 0, 0 }

static const struct cell_case cell_cases[] = {
    // Text: length counts characters, and text must be UTF-8.
    OK_T("name", S("Ada"), "Ada"),
    OK_T("name", S(""), ""),
    OK_T("name", S(X100("a")), X100("a")),
    BAD("name", S(X100("a") "a"), "101 characters; at most 100"),
    OK_T("name", S(X100(EACUTE)), X100(EACUTE)),
    BAD("name", S(X100(EACUTE) EACUTE), "101 characters; at most 100"),
    OK_T("surname", S(X100("\xe2\x82\xac")), X100("\xe2\x82\xac")),
    OK_T("gender", S(X100("\xf0\x9f\x98\x80")), X100("\xf0\x9f\x98\x80")),
    BAD("gender", S(X100("\xf0\x9f\x98\x80") "x"), "101 characters"),
    BAD("name", S("Ad\xff"), "not valid UTF-8"),
    BAD("name", S("\xc0\xaf"), "not valid UTF-8"),
    BAD("name", S("\xed\xa0\x80"), "not valid UTF-8"),
    BAD("name", S("\xf4\x90\x80\x80"), "not valid UTF-8"),
    BAD("name", S("ab\xe2\x82"), "not valid UTF-8"),
    BAD("name", B(true), "expected text, got a boolean"),
    BAD("name", N, "may not be null"),
    OK_U("name"),
    // Dates: yyyy-MM-dd and a real calendar date.
    OK_T("birth_date", S("2024-02-29"), "2024-02-29"),
    OK_T("birth_date", S("2000-02-29"), "2000-02-29"),
    BAD("birth_date", S("2023-02-29"), "not a calendar date"),
    BAD("birth_date", S("2100-02-29"), "not a calendar date"),
    OK_T("birth_date", S("2024-04-30"), "2024-04-30"),
    BAD("birth_date", S("2024-04-31"), "not a calendar date"),
    BAD("birth_date", S("2024-13-01"), "not a calendar date"),
    BAD("birth_date", S("2024-00-10"), "not a calendar date"),
    BAD("birth_date", S("2024-01-00"), "not a calendar date"),
    BAD("birth_date", S("0000-01-01"), "not a calendar date"),
    BAD("birth_date", S("2024-1-01"), "yyyy-MM-dd"),
    BAD("birth_date", S("2024/01/01"), "yyyy-MM-dd"),
    BAD("birth_date", S("24-01-2024"), "yyyy-MM-dd"),
    BAD("birth_date", S("2024-01-01T00:00:00Z"), "at most 10"),
    BAD("birth_date", S(""), "yyyy-MM-dd"),
    OK_T("subscription_start_date", S("1999-12-31"), "1999-12-31"),
    BAD("subscription_start_date", S("1999-12-32"), "not a calendar date"),
    BAD("birth_date", B(true), "expected date, got a boolean"),
    OK_N("birth_date"),
    // Booleans: bool_value or the strings "true" and "false".
    OK_I("email_permission", B(true), 1),
    OK_I("email_permission", B(false), 0),
    OK_I("gsm_permission", S("true"), 1),
    OK_I("gsm_permission", S("false"), 0),
    BAD("email_permission", S("yes"), "expected a boolean"),
    BAD("email_permission", S("TRUE"), "expected a boolean"),
    BAD("email_permission", S("1"), "expected a boolean"),
    BAD("email_permission", S(""), "expected a boolean"),
    BAD("email_permission", N, "may not be null"),
    // Enums: one of the allowed letters, case-sensitive.
    OK_T("contact_status", S("A"), "A"),
    OK_T("email_status", S("P"), "P"),
    BAD("contact_status", S("X"), "must be one of AP"),
    BAD("contact_status", S("a"), "must be one of AP"),
    BAD("gsm_status", S("AP"), "at most 1"),
    BAD("gsm_status", S(""), "must be one of AP"),
    BAD("contact_status", B(true), "expected enum, got a boolean"),
    // Email shapes; stored lowercased.
    OK_T("email", S("ada@example.com"), "ada@example.com"),
    OK_T("email", S("a@b.co"), "a@b.co"),
    OK_TN("email", S("Ada.Lovelace@Example.COM"),
        "ada.lovelace@example.com", BU_CELL_NOTE_LOWERCASED),
    OK_T("email", S(""), ""),
    BAD("email", S("ada.example.com"), "not an email address"),
    BAD("email", S("ada@home@example.com"), "not an email address"),
    BAD("email", S("@example.com"), "not an email address"),
    BAD("email", S("ada@"), "not an email address"),
    BAD("email", S("ada@examplecom"), "not an email address"),
    BAD("email", S("ada@.example.com"), "not an email address"),
    BAD("email", S("ada@example.com."), "not an email address"),
    BAD("email", S("ada @example.com"), "not an email address"),
    BAD("email", S(" ada@example.com"), "not an email address"),
    BAD("email", S("ada@example.com "), "not an email address"),
    BAD("email", S("ada@exa\tmple.com"), "not an email address"),
    OK_T("email", S(X100("a") X100("a") X50("a") "@b.co"),
        X100("a") X100("a") X50("a") "@b.co"),
    BAD("email", S(X100("a") X100("a") X50("a") "a@b.co"),
        "256 characters; at most 255"),
    BAD("email", N, "may not be null"),
    // Phones: digits only, a leading + is dropped.
    OK_T("gsm", S("905351234567"), "905351234567"),
    OK_TN("gsm", S("+905351234567"), "905351234567",
        BU_CELL_NOTE_PLUS_STRIPPED),
    OK_T("gsm", S(DIGITS20), DIGITS20),
    BAD("gsm", S(DIGITS20 "1"), "21 characters; at most 20"),
    BAD("gsm", S("90535abc4567"), "digits only"),
    BAD("gsm", S("+90 535 123"), "digits only"),
    BAD("gsm", S("++905351234567"), "digits only"),
    BAD("gsm", S("0535-123"), "digits only"),
    BAD("gsm", B(false), "expected phone, got a boolean"),
    // Nullability.
    OK_N("gender"),
    OK_T("gender", S("f"), "f"),
    // contact_key: required, non-empty, at most 255 characters.
    OK_T("contact_key", S("k-1"), "k-1"),
    OK_T("contact_key", S(KEY255), KEY255),
    BAD("contact_key", U, "contact_key is required"),
    BAD("contact_key", S(""), "contact_key may not be empty"),
    BAD("contact_key", S(KEY256), "256 characters; at most 255"),
    BAD("contact_key", N, "may not be null"),
    BAD("contact_key", B(true), "got a boolean"),
    BAD("contact_key", S("k\xff"), "not valid UTF-8"),
};

static void
cell_case_name(const struct cell_case *c, char *buf, size_t len)
{
    const char *s = c->v.kind == V_STR ? c->v.s
        : c->v.kind == V_BOOL          ? (c->v.b ? "<true>" : "<false>")
        : c->v.kind == V_NULL          ? "<null>"
                                       : "<unset>";
    snprintf(buf, len, "%s = \"%.40s\"", c->col, s);
}

// Table rows report every mismatch and carry on, so one run lists all the
// failing rows; the test fails at the end when any row did.
static int row_failures;

#define row_fail(...)                                                       \
    do {                                                                    \
        print_error(__VA_ARGS__);                                           \
        print_error("\n");                                                  \
        row_failures++;                                                     \
    } while (0)

static bool
str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

// The cell conversion alone: stored form, notes and reason.
static void
check_cell_direct(const struct cell_case *c, const char *name)
{
    Bulkupsert__V1__Value *value = value_new(&c->v);
    struct bu_cell cell;
    memset(&cell, 0x5a, sizeof(cell));
    unsigned notes = 0xdead;
    char reason[160] = "";
    // "Not provided" is passed as a NULL value, as the header allows.
    int ok = bu_validate_cell(col_of(c->col),
        c->v.kind == V_UNSET ? NULL : value, &cell, &notes, reason,
        sizeof(reason));
    if (ok != (int) c->ok) {
        row_fail("%s: bu_validate_cell %s (%s)", name,
            ok ? "accepted" : "refused", reason);
    } else if (!c->ok) {
        if (strstr(reason, c->reason) == NULL) {
            row_fail("%s: reason \"%s\" lacks \"%s\"", name, reason,
                c->reason);
        }
    } else if (cell.kind != c->kind) {
        row_fail("%s: cell kind %d, want %d", name, (int) cell.kind,
            (int) c->kind);
    } else if (c->kind == BU_CELL_TEXT &&
        (cell.len != strlen(c->text) ||
            memcmp(cell.text, c->text, cell.len) != 0)) {
        row_fail("%s: stored \"%.*s\", want \"%s\"", name, (int) cell.len,
            cell.text, c->text);
    } else if (c->kind == BU_CELL_INT && cell.i != c->i) {
        row_fail("%s: stored %lld, want %lld", name, cell.i, c->i);
    } else if (notes != c->notes) {
        row_fail("%s: notes %#x, want %#x", name, notes, c->notes);
    }
    value_free(value);
}

// check_key_named checks the contact_key an error names when the cell under
// test is the key itself: NULL unless the key is printable text.
static void
check_key_named(const struct cell_case *c, const char *name,
    const char *named)
{
    size_t chars;
    bool text = c->v.kind == V_STR &&
        bu_utf8_count(c->v.s, strlen(c->v.s), &chars);
    if (!text && named != NULL) {
        row_fail("%s: error names key \"%s\", want none", name, named);
    } else if (text && named != NULL && strcmp(named, c->v.s) != 0) {
        row_fail("%s: error names key \"%s\"", name, named);
    }
}

// The same cell as record 2 of a request whose records 0 and 1 are valid.
static void
check_cell_in_request(const struct cell_case *c, const char *name)
{
    bool key_col = strcmp(c->col, "contact_key") == 0;
    const char *cols[2] = { "contact_key", c->col };
    size_t ncols = key_col ? 1 : 2;
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, ncols);
    struct val r0[2] = { S("k0"), U };
    struct val r1[2] = { S("k1"), U };
    struct val r2[2] = { S("k2"), c->v };
    req_add(req, r0, ncols);
    req_add(req, r1, ncols);
    if (key_col) {
        r2[0] = c->v;
    }
    req_add(req, r2, ncols);

    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    assert_int_equal(v.shape_failed, 0);
    assert_non_null(v.bad);
    if (v.bad[0] != 0 || v.bad[1] != 0) {
        row_fail("%s: a valid neighbour record was marked bad", name);
    }
    const struct bu_field_error *e = v.nerrors > 0 ? &v.errors[0] : NULL;
    if (c->ok) {
        if (e != NULL) {
            row_fail("%s: refused in a request: %s", name, e->reason);
        } else if (v.nbad != 0 || v.bad[2] != 0) {
            row_fail("%s: counted bad without an error", name);
        }
    } else if (v.nerrors != 1) {
        row_fail("%s: %zu errors, want 1", name, v.nerrors);
    } else {
        if (e->record_index != 2) {
            row_fail("%s: record_index %lld, want 2", name,
                (long long) e->record_index);
        }
        if (!str_eq(e->column, c->col)) {
            row_fail("%s: column %s", name,
                e->column != NULL ? e->column : "(null)");
        }
        if (strstr(e->reason, c->reason) == NULL) {
            row_fail("%s: reason \"%s\" lacks \"%s\"", name, e->reason,
                c->reason);
        }
        if (v.nbad != 1 || v.bad[2] != 1) {
            row_fail("%s: nbad %zu, bad[2] %d", name, v.nbad, v.bad[2]);
        }
        if (key_col) {
            check_key_named(c, name, e->contact_key);
        } else if (!str_eq(e->contact_key, "k2")) {
            row_fail("%s: error names key %s, want k2", name,
                e->contact_key != NULL ? e->contact_key : "(null)");
        }
    }
    bu_verdict_fini(&v);
    req_free(req);
}

static void
test_cell_cases(void **state)
{
    (void) state;
    char name[128];
    row_failures = 0;
    for (size_t k = 0; k < NELEM(cell_cases); k++) {
        const struct cell_case *c = &cell_cases[k];
        cell_case_name(c, name, sizeof(name));
        check_cell_direct(c, name);
        check_cell_in_request(c, name);
    }
    if (row_failures > 0) {
        fail_msg("%d failed checks in %zu rows", row_failures,
            NELEM(cell_cases));
    }
}

static void
test_cell_notes_optional(void **state)
{
    (void) state;
    // notesp may be NULL; the reason buffer is only written on failure.
    struct val sv = S("+90555");
    Bulkupsert__V1__Value *value = value_new(&sv);
    struct bu_cell cell;
    char reason[8] = "same";
    assert_int_equal(
        bu_validate_cell(col_of("gsm"), value, &cell, NULL, reason, 8), 1);
    assert_string_equal(reason, "same");
    assert_int_equal(cell.len, 5);
    value_free(value);
}

// ---- verdicts ----

static void
test_email_lowercased_in_place(void **state)
{
    (void) state;
    const char *cols[] = { "contact_key", "email", "name" };
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, 3);
    struct val r0[] = { S("K-Upper"), S("MiXed@Example.COM"), S("Ada") };
    req_add(req, r0, 3);
    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    assert_int_equal(v.nerrors, 0);
    // The request itself now carries the stored form; nothing else moved.
    assert_string_equal(value_text(req, 0, 1), "mixed@example.com");
    assert_string_equal(value_text(req, 0, 0), "K-Upper");
    assert_string_equal(value_text(req, 0, 2), "Ada");
    bu_verdict_fini(&v);
    req_free(req);
}

static void
test_nbad_counts(void **state)
{
    (void) state;
    const char *cols[] = { "contact_key", "email", "birth_date" };
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, 3);
    struct val good[] = { S("g"), S("a@b.co"), S("2024-01-01") };
    struct val bad1[] = { S("b1"), S("nope"), S("2024-02-30") };
    struct val bad4[] = { S("b4"), U, S("2024-2-3") };
    req_add(req, good, 3);
    req_add(req, bad1, 3);
    req_add(req, good, 3);
    req_add(req, good, 3);
    req_add(req, bad4, 3);
    req_add(req, good, 3);

    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    assert_int_equal(v.shape_failed, 0);
    assert_int_equal(v.nbad, 2);
    assert_int_equal(v.nerrors, 3);
    static const uint8_t want_bad[] = { 0, 1, 0, 0, 1, 0 };
    assert_memory_equal(v.bad, want_bad, sizeof(want_bad));
    // Errors come in record order, then column order.
    assert_int_equal(v.errors[0].record_index, 1);
    assert_string_equal(v.errors[0].column, "email");
    assert_string_equal(v.errors[0].contact_key, "b1");
    assert_int_equal(v.errors[1].record_index, 1);
    assert_string_equal(v.errors[1].column, "birth_date");
    assert_int_equal(v.errors[2].record_index, 4);
    assert_string_equal(v.errors[2].column, "birth_date");
    assert_string_equal(v.errors[2].contact_key, "b4");
    // colmap resolves each request column to its schema index.
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(v.colmap[i], bu_schema_find(&std_schema, cols[i]));
    }
    bu_verdict_fini(&v);
    assert_null(v.errors);
    assert_null(v.bad);
    req_free(req);
}

static void
test_errors_summarised(void **state)
{
    (void) state;
    const char *cols[] = { "contact_key", "contact_status", "email",
        "email_permission", "email_status", "gsm", "gsm_permission",
        "gsm_status", "name", "surname", "gender", "birth_date",
        "subscription_start_date" };
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, 13);
    // Twelve bad cells: eight are listed, the rest summed up.
    struct val twelve[] = { S("k0"), S("X"), S("bad"), S("yes"), S("a"),
        S("12ab"), S("no"), S("Z"), B(true), N, B(false), S("2023-02-29"),
        S("x") };
    // Exactly eight bad cells: all listed, no summary.
    struct val eight[] = { S("k1"), S("X"), S("bad"), S("yes"), S("a"),
        S("12ab"), S("no"), S("Z"), B(true), U, U, U, U };
    struct val good[] = { S("k2"), S("A"), U, U, U, U, U, U, U, U, U, U,
        U };
    req_add(req, twelve, 13);
    req_add(req, eight, 13);
    req_add(req, good, 13);

    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    assert_int_equal(v.nbad, 2);
    assert_int_equal(v.nerrors, 9 + 8);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(v.errors[i].record_index, 0);
        assert_string_equal(v.errors[i].column, cols[i + 1]);
        assert_string_equal(v.errors[i].contact_key, "k0");
    }
    const struct bu_field_error *sum = &v.errors[8];
    assert_int_equal(sum->record_index, 0);
    assert_null(sum->column);
    assert_string_equal(sum->contact_key, "k0");
    assert_string_equal(sum->reason, "and 4 more errors in this record");
    for (size_t i = 9; i < 17; i++) {
        assert_int_equal(v.errors[i].record_index, 1);
        assert_non_null(v.errors[i].column);
    }
    assert_int_equal(v.bad[2], 0);
    bu_verdict_fini(&v);
    req_free(req);
}

// An error quotes a record's contact_key only when the key could be one
// (at most 255 characters): a huge key is not copied into every error of
// its record (an answer many times the request's size).
static void
test_long_key_not_quoted(void **state)
{
    (void) state;
    const char *cols[] = { "contact_key", "email", "gsm" };
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, 3);
    char *longest = xcalloc(1, 256);
    memset(longest, 'k', 255);
    char *huge = xcalloc(1, 100001);
    memset(huge, 'k', 100000);
    struct val r0[] = { S(longest), S("bad"), S("12ab") };
    struct val r1[] = { S(huge), S("bad"), S("12ab") };
    req_add(req, r0, 3);
    req_add(req, r1, 3);
    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    assert_int_equal(v.nbad, 2);
    assert_int_equal(v.nerrors, 2 + 3);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(v.errors[i].record_index, 0);
        assert_string_equal(v.errors[i].contact_key, longest);
    }
    for (size_t i = 2; i < 5; i++) {
        assert_int_equal(v.errors[i].record_index, 1);
        assert_null(v.errors[i].contact_key);
    }
    assert_string_equal(v.errors[2].column, "contact_key");
    bu_verdict_fini(&v);
    req_free(req);
    free(longest);
    free(huge);
}

static int
oom_teardown(void **state)
{
    (void) state;
    bu_alloc_fail_after(-1);
    return 0;
}

// Each allocation of bu_validate fails in turn: BU_ENOMEM, no crash, no
// leak, and bu_verdict_fini is safe; with enough memory the verdict is
// the same as without injection.
static void
test_validate_oom(void **state)
{
    (void) state;
    const char *cols[] = { "contact_key", "email", "gsm" };
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = req_new(cols, 3);
    for (int r = 0; r < 20; r++) {
        struct val bad[] = { S("k"), S("x"), S("y") };
        req_add(req, bad, 3);
    }
    struct bu_verdict v;
    assert_rv(bu_validate(&std_schema, req, &v), BU_OK);
    size_t want = v.nerrors;
    bu_verdict_fini(&v);
    assert_int_equal(want, 40);

    bool done = false;
    for (long n = 0; n < 100 && !done; n++) {
        bu_alloc_fail_after(n);
        int rv = bu_validate(&std_schema, req, &v);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            assert_int_equal(v.nerrors, want);
            done = true;
        } else {
            assert_rv(rv, BU_ENOMEM);
        }
        bu_verdict_fini(&v);
    }
    assert_true(done);
    req_free(req);
}


// A NUL inside a string of a packed request is found and named by its
// path; past the field budget the walk stops with BU_ETOOBIG.
static void
test_wire_check_names_the_path(void **state)
{
    (void) state;
    char *cols[] = { "contact_key", "email" };
    Bulkupsert__V1__Value        vals[3][2];
    Bulkupsert__V1__Value       *pvals[3][2];
    Bulkupsert__V1__ContactData  recs[3];
    Bulkupsert__V1__ContactData *precs[3];
    char bad[] = { 'a', '\0', 'b' };
    for (int r = 0; r < 3; r++) {
        bulkupsert__v1__contact_data__init(&recs[r]);
        for (int c = 0; c < 2; c++) {
            bulkupsert__v1__value__init(&vals[r][c]);
            vals[r][c].kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
            vals[r][c].string_value = c == 0 ? "k" : "x@y.example";
            pvals[r][c] = &vals[r][c];
        }
        recs[r].n_values = 2;
        recs[r].values = pvals[r];
        precs[r] = &recs[r];
    }
    Bulkupsert__V1__SubmitBulkUpsertRequest req
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_REQUEST__INIT;
    req.n_columns = 2;
    req.columns = cols;
    req.n_contact_datas = 3;
    req.contact_datas = precs;
    const ProtobufCMessageDescriptor *d
        = &bulkupsert__v1__submit_bulk_upsert_request__descriptor;

    uint8_t buf[512];
    size_t  n = bulkupsert__v1__submit_bulk_upsert_request__pack(&req, buf);
    char    where[128];
    assert_int_equal(
        bu_wire_check_strings(d, buf, n, 1000, where, sizeof(where)), BU_OK);
    // 2 columns + 3 records of 2 Values of 1 string: 17 fields.
    assert_int_equal(
        bu_wire_check_strings(d, buf, n, 17, where, sizeof(where)), BU_OK);
    assert_int_equal(bu_wire_check_strings(d, buf, n, 16, where, sizeof(where)),
        BU_ETOOBIG);

    // Unknown field numbers (past the message's fields, and 0) are counted
    // and skipped, whatever they hold: only known string fields are read.
    uint8_t unk[600];
    static const uint8_t extra[] = {
        0x48, 0x05,                         // field 9, varint
        0x9a, 0x06, 0x03, 'a', 0x00, 'b',   // field 99, 3 bytes with a NUL
        0x02, 0x01, 0x00,                   // field 0, 1 byte, a NUL
    };
    memcpy(unk, extra, sizeof(extra));
    memcpy(unk + sizeof(extra), buf, n);
    assert_int_equal(bu_wire_check_strings(d, unk, n + sizeof(extra), 20,
                         where, sizeof(where)),
        BU_OK);
    assert_int_equal(bu_wire_check_strings(d, unk, n + sizeof(extra), 19,
                         where, sizeof(where)),
        BU_ETOOBIG);

    // protobuf-c packs strings with strlen: patch the NUL in after packing.
    vals[2][1].string_value = "aXb";
    n = bulkupsert__v1__submit_bulk_upsert_request__pack(&req, buf);
    uint8_t *x = NULL;
    for (size_t i = 0; i + 3 <= n && x == NULL; i++) {
        x = memcmp(buf + i, "aXb", 3) == 0 ? buf + i : NULL;
    }
    assert_non_null(x);
    x[1] = (uint8_t) bad[1];
    assert_int_equal(bu_wire_check_strings(d, buf, n, 1000, where, sizeof(where)),
        BU_EINVAL);
    assert_string_equal(where, "contact_datas[2].values[1].string_value");
    // A path longer than where is cut, never overrun.
    char small[12];
    assert_int_equal(bu_wire_check_strings(d, buf, n, 1000, small, sizeof(small)),
        BU_EINVAL);
    assert_true(strlen(small) < sizeof(small));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_cases),
        cmocka_unit_test(test_wire_check_names_the_path),
        cmocka_unit_test(test_shape_too_many_columns),
        cmocka_unit_test(test_cell_cases),
        cmocka_unit_test(test_cell_notes_optional),
        cmocka_unit_test(test_email_lowercased_in_place),
        cmocka_unit_test(test_nbad_counts),
        cmocka_unit_test(test_errors_summarised),
        cmocka_unit_test(test_long_key_not_quoted),
        cmocka_unit_test_teardown(test_validate_oom, oom_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
