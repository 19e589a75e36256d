// SPDX-License-Identifier: MIT
/*
 * Request and record validation. Columns are resolved once per request
 * (colmap), then each record's cells are checked against their column. The
 * per-type rules live in validate_* helpers, one per column type.
 */
#include "valid/validate.h"

#include "base/alloc.h"
#include "base/err.h"
#include "base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void verdict_reason(char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
verdict_reason(char *reason, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
    bu_utf8_trim(reason);
}

// verdict_add appends one error; returns BU_ENOMEM when it cannot.
static int verdict_add(struct bu_verdict *v, int64_t record, const char *key,
    const char *column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
verdict_add(struct bu_verdict *v, int64_t record, const char *key,
    const char *column, const char *fmt, ...)
{
    if ((v->nerrors & (v->nerrors - 1)) == 0) { // 0, 1, 2, 4, 8...: grow
        size_t                 cap = v->nerrors == 0 ? 8 : v->nerrors * 2;
        struct bu_field_error *e
            = bu_realloc(v->errors, cap * sizeof(*v->errors));
        if (e == NULL) {
            return BU_ENOMEM;
        }
        v->errors = e;
    }
    struct bu_field_error *e = &v->errors[v->nerrors++];
    e->record_index = record;
    e->contact_key = key;
    e->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    bu_utf8_trim(e->reason); // a long quoted name may have been cut
    return BU_OK;
}

void
bu_verdict_fini(struct bu_verdict *v)
{
    bu_free(v->errors);
    bu_free(v->bad);
    bu_free(v->notes);
    bu_free(v->colmap);
    memset(v, 0, sizeof(*v));
}

// A printable copy-free name for what the client sent (a column name, a
// contact_key), for an error to quote: s itself when it is valid UTF-8 of
// at most max_chars characters, else NULL (the reason then says where it
// was). The bound keeps an answer from quoting megabytes of one value for
// every error of its record.
static const char *
validate_safe_name(const char *s, size_t max_chars)
{
    size_t n = strnlen(s, 4 * max_chars + 1), chars;
    return n <= 4 * max_chars && bu_utf8_count(s, n, &chars)
            && chars <= max_chars
        ? s
        : NULL;
}

static int
validate_shape(const struct bu_schema             *schema,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *req, struct bu_verdict *v)
{
    int rv = BU_OK;
    int has_key = 0;
    if (req->n_columns == 0) {
        return verdict_add(v, -1, NULL, "columns",
            "at least one column is "
            "required, and "
            "contact_key among them");
    }
    if (req->n_columns > BU_SCHEMA_MAX_COLUMNS) {
        return verdict_add(v, -1, NULL, "columns",
            "%zu columns; at most %d are allowed", req->n_columns,
            BU_SCHEMA_MAX_COLUMNS);
    }
    v->colmap = bu_calloc(req->n_columns, sizeof(int));
    if (v->colmap == NULL) {
        return BU_ENOMEM;
    }
    for (size_t i = 0; rv == BU_OK && i < req->n_columns; i++) {
        const char *name = req->columns[i];
        const char *safe = validate_safe_name(name, BU_COLUMN_NAME_MAX);
        int         idx = bu_schema_find(schema, name);
        v->colmap[i] = idx;
        if (safe == NULL) {
            rv = verdict_add(v, -1, NULL, NULL,
                "columns[%zu] is not a column name: not valid UTF-8, or "
                "longer than %d characters",
                i, BU_COLUMN_NAME_MAX);
        } else if (idx < 0) {
            rv = verdict_add(v, -1, NULL, safe,
                "unknown column \"%s\" (columns[%zu])", safe, i);
        } else if (!schema->cols[idx].import_enabled) {
            rv = verdict_add(v, -1, NULL, safe,
                "column \"%s\" is not import-enabled", safe);
        } else {
            for (size_t k = 0; k < i; k++) {
                if (v->colmap[k] == idx) {
                    rv = verdict_add(v, -1, NULL, safe,
                        "column \"%s\" is repeated (columns[%zu] and "
                        "columns[%zu])",
                        safe, k, i);
                    break;
                }
            }
        }
        if (idx >= 0 && strcmp(name, BU_COL_CONTACT_KEY) == 0) {
            has_key = 1;
        }
    }
    if (rv == BU_OK && !has_key) {
        rv = verdict_add(v, -1, NULL, BU_COL_CONTACT_KEY,
            "columns must include contact_key");
    }
    if (rv == BU_OK
        && (req->n_contact_datas == 0
            || req->n_contact_datas > BU_MAX_RECORDS)) {
        rv = verdict_add(v, -1, NULL, "contact_datas",
            "%zu records; a request carries 1 to %d", req->n_contact_datas,
            BU_MAX_RECORDS);
    }
    if (rv != BU_OK || v->nerrors > 0) {
        return rv; // a shape error stops the check
    }
    // One error for the first ragged record, however many there are: the
    // answer stays small whatever the request's size.
    size_t nragged = 0, first = 0;
    for (size_t r = 0; r < req->n_contact_datas; r++) {
        if (req->contact_datas[r]->n_values != req->n_columns
            && nragged++ == 0) {
            first = r;
        }
    }
    if (nragged > 0) {
        rv = verdict_add(v, (int64_t) first, NULL, "values",
            "record %zu has %zu values for %zu columns%s", first,
            req->contact_datas[first]->n_values, req->n_columns,
            nragged > 1 ? " (and more records are as ragged)" : "");
        if (rv == BU_OK && nragged > 1) {
            snprintf(v->errors[v->nerrors - 1].reason,
                sizeof(v->errors[0].reason),
                "record %zu has %zu values for %zu columns (%zu records "
                "in all have the wrong number)",
                first, req->contact_datas[first]->n_values, req->n_columns,
                nragged);
        }
    }
    return rv;
}

static int
validate_text(const struct bu_column *col, const char *s, size_t n,
    char *reason, size_t len)
{
    size_t chars;
    if (!bu_utf8_count(s, n, &chars)) {
        verdict_reason(reason, len, "not valid UTF-8");
        return 0;
    }
    if (col->max_len > 0 && chars > col->max_len) {
        verdict_reason(reason, len, "%zu characters; at most %u allowed",
            chars, col->max_len);
        return 0;
    }
    return 1;
}

static int
validate_date(const char *s, size_t n, char *reason, size_t len)
{
    static const int dm[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int              ok = n == 10 && s[4] == '-' && s[7] == '-';
    for (size_t i = 0; ok && i < n; i++) {
        ok = i == 4 || i == 7 || (s[i] >= '0' && s[i] <= '9');
    }
    if (ok) {
        int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10
            + (s[3] - '0');
        int m = (s[5] - '0') * 10 + (s[6] - '0');
        int d = (s[8] - '0') * 10 + (s[9] - '0');
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        ok = y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= dm[m - 1]
            && !(m == 2 && d == 29 && !leap);
        if (!ok && n == 10) {
            verdict_reason(reason, len, "\"%.10s\" is not a calendar date", s);
            return 0;
        }
    }
    if (!ok) {
        verdict_reason(reason, len, "expected a date as yyyy-MM-dd");
    }
    return ok;
}

static int
validate_email(char *s, size_t n, unsigned *notes, char *reason, size_t len)
{
    if (n == 0) {
        return 1; // clears the address
    }
    const char *at = memchr(s, '@', n);
    int         ok = at != NULL && at != s
        && memchr(at + 1, '@', n - (size_t) (at - s) - 1) == NULL;
    if (ok) {
        const char *dom = at + 1;
        size_t      dn = n - (size_t) (dom - s);
        const char *dot = dn > 0 ? memchr(dom, '.', dn) : NULL;
        ok = dn >= 3 && dot != NULL && dot != dom && dom[dn - 1] != '.';
    }
    for (size_t i = 0; ok && i < n; i++) {
        ok = (unsigned char) s[i] > ' ' && s[i] != 0x7f;
    }
    if (!ok) {
        verdict_reason(reason, len, "not an email address (name@domain.tld)");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            s[i] = (char) (s[i] - 'A' + 'a');
            *notes |= BU_CELL_NOTE_LOWERCASED;
        }
    }
    return 1;
}

int
bu_validate_cell(const struct bu_column *col, Bulkupsert__V1__Value *value,
    struct bu_cell *cellp, unsigned *notesp, char *reason, size_t len)
{
    struct bu_cell cell = { .kind = BU_CELL_UNSET };
    unsigned       notes = 0;
    // Called for every cell: the first letter settles most columns.
    int is_key = col->name[0] == BU_COL_CONTACT_KEY[0]
        && strcmp(col->name, BU_COL_CONTACT_KEY) == 0;
    int kind = value == NULL ? BULKUPSERT__V1__VALUE__KIND__NOT_SET
                             : (int) value->kind_case;
    switch (kind) {
    case BULKUPSERT__V1__VALUE__KIND__NOT_SET:
        if (is_key) {
            verdict_reason(reason, len, "contact_key is required");
            return 0;
        }
        break;
    case BULKUPSERT__V1__VALUE__KIND_NULL_VALUE:
        if (!col->nullable) {
            verdict_reason(reason, len, "may not be null");
            return 0;
        }
        cell.kind = BU_CELL_NULL;
        break;
    case BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE:
        if (col->type != BU_COL_BOOL) {
            verdict_reason(reason, len, "expected %s, got a boolean",
                bu_col_type_name(col->type));
            return 0;
        }
        cell.kind = BU_CELL_INT;
        cell.i = value->bool_value ? 1 : 0;
        break;
    case BULKUPSERT__V1__VALUE__KIND_STRING_VALUE: {
        char  *s = value->string_value;
        size_t n = strlen(s);
        cell.kind = BU_CELL_TEXT;
        if (col->type == BU_COL_BOOL) {
            if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
                verdict_reason(
                    reason, len, "expected a boolean (true or false)");
                return 0;
            }
            cell.kind = BU_CELL_INT;
            cell.i = s[0] == 't';
            break;
        }
        if (col->type == BU_COL_PHONE && n > 0 && s[0] == '+') {
            // The stored number has no '+': its length is what counts.
            s++;
            n--;
            notes |= BU_CELL_NOTE_PLUS_STRIPPED;
            if (n == 0) {
                verdict_reason(reason, len, "a phone number needs digits");
                return 0;
            }
        }
        if (!validate_text(col, s, n, reason, len)) {
            return 0;
        }
        if (is_key && n == 0) {
            verdict_reason(reason, len, "contact_key may not be empty");
            return 0;
        }
        if (col->type == BU_COL_DATE && !validate_date(s, n, reason, len)) {
            return 0;
        }
        if (col->type == BU_COL_ENUM
            && (n != 1 || strchr(col->allowed, s[0]) == NULL)) {
            verdict_reason(reason, len, "must be one of %s", col->allowed);
            return 0;
        }
        if (col->type == BU_COL_EMAIL
            && !validate_email(s, n, &notes, reason, len)) {
            return 0;
        }
        if (col->type == BU_COL_PHONE) {
            for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9') {
                    verdict_reason(reason, len,
                        "a phone number has digits only (e.g. 905351234567)");
                    return 0;
                }
            }
        }
        cell.text = s;
        cell.len = n;
        break;
    }
    default:
        verdict_reason(reason, len, "unknown value kind %d", kind);
        return 0;
    }
    *cellp = cell;
    if (notesp != NULL) {
        *notesp = notes;
    }
    return 1;
}

// The record's contact_key when it is printable and not too long for the
// column, else NULL.
static const char *
validate_record_key(const struct bu_verdict       *v,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *req,
    const Bulkupsert__V1__ContactData             *rec)
{
    for (size_t i = 0; i < req->n_columns; i++) {
        if (strcmp(req->columns[i], BU_COL_CONTACT_KEY) == 0
            && v->colmap[i] >= 0) {
            const Bulkupsert__V1__Value *val = rec->values[i];
            if (val->kind_case == BULKUPSERT__V1__VALUE__KIND_STRING_VALUE) {
                return validate_safe_name(
                    val->string_value, BU_CONTACT_KEY_MAX);
            }
        }
    }
    return NULL;
}

int
bu_validate(const struct bu_schema          *schema,
    Bulkupsert__V1__SubmitBulkUpsertRequest *req, struct bu_verdict *v)
{
    memset(v, 0, sizeof(*v));
    int rv = validate_shape(schema, req, v);
    if (rv != BU_OK || v->nerrors > 0) {
        v->shape_failed = v->nerrors > 0;
        return rv;
    }
    v->bad = bu_alloc(req->n_contact_datas);
    v->notes = bu_alloc(req->n_contact_datas);
    if (v->bad == NULL || v->notes == NULL) {
        return BU_ENOMEM;
    }
    char reason[160];
    for (size_t r = 0; rv == BU_OK && r < req->n_contact_datas; r++) {
        Bulkupsert__V1__ContactData *rec = req->contact_datas[r];
        size_t                       nerr = 0;
        for (size_t i = 0; rv == BU_OK && i < req->n_columns; i++) {
            const struct bu_column *col = &schema->cols[v->colmap[i]];
            struct bu_cell          cell;
            unsigned                notes = 0;
            if (bu_validate_cell(col, rec->values[i], &cell, &notes, reason,
                    sizeof(reason))) {
                v->notes[r] |= (uint8_t) notes;
                continue;
            }
            if (nerr++ < BU_MAX_ERRORS_PER_RECORD) {
                rv = verdict_add(v, (int64_t) r,
                    validate_record_key(v, req, rec), req->columns[i], "%s",
                    reason);
            }
        }
        if (rv == BU_OK && nerr > BU_MAX_ERRORS_PER_RECORD) {
            rv = verdict_add(v, (int64_t) r, validate_record_key(v, req, rec),
                NULL, "and %zu more errors in this record",
                nerr - BU_MAX_ERRORS_PER_RECORD);
        }
        if (nerr > 0) {
            v->bad[r] = 1;
            v->nbad++;
        }
    }
    return rv;
}
