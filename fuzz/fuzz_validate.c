// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for request validation (valid/) and the text checks
 * under it. Rather than protobuf bytes (fuzz_envelope covers those), the
 * input is read as a recipe that builds a SubmitBulkUpsertRequest directly,
 * so that nearly every input reaches the per-cell rules:
 *
 *   flags    bit 0 add a custom text column, bit 1 make it import-enabled,
 *            bit 2 disable import of one standard column, bit 3 add 240
 *            columns (past the 256 limit), bit 4 add 872 records (past
 *            the 1000 limit)
 *   [custom max_len byte] [disabled column byte]
 *   ncols    then one byte per column: < 0x80 picks a known name (schema
 *            columns and near misses), else a string follows
 *   nrec     then per record a width byte (0xff: a wrong width follows)
 *            and one recipe per value (vf_value: unset, string, bool,
 *            null, dictionary words, repetitions)
 *
 * Strings are a length byte (0xf0..0xff: 12 bits over two bytes) and
 * bytes. Bytes past the end read as zero, so every input builds something.
 *
 * Checks beyond "no crash": the verdict is self-consistent; validating the
 * request and its protobuf wire round trip (up to 64 records) give the
 * same verdict;
 * validating twice gives the same verdict (normalisation is idempotent);
 * bu_validate_cell's cells stay inside their value and within the column's
 * limits. The raw input also goes to bu_utf8_count, compared with an
 * independent decoder, and to bu_rfc3339_parse, whose result must survive
 * a bu_rfc3339_format round trip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/utf8.h"
#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "store/schema.h"
#include "valid/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Bounds that keep one input fast: columns x records, and the bytes of
// all built strings together (enough to pass any column's max_len).
#define VF_MAX_VALUES 4096
#define VF_WIRE_MAX_RECORDS 64
#define VF_MAX_BYTES (256u * 1024u)
#define VF_CUSTOM_NAME "loyalty_tier"

// Words that the rules treat specially, so values often land on them.
static const char *const vf_words[] = { "A", "P", "X", "a", "true", "false",
    "True", "1", "0", "null", "2020-02-29", "2021-02-29", "1999-12-31",
    "0000-01-01", "2020-13-01", "2020-04-31", "9999-12-31", "20-01-01",
    "someone@example.com", "Someone@Example.COM", "a@b.cd", "@b.cd",
    "a@@b.cd", "a@b.", "a@.cd", "a b@c.de", "905351234567", "+905351234567",
    "+", "+90 535", "", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
    "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xff", "key-1",
    "contact_key" };
#define VF_NWORDS (sizeof(vf_words) / sizeof(vf_words[0]))

// Column names that are not in the schema but look like it.
static const char *const vf_near_names[] = { "Contact_key", "contact_key ",
    "", "contact", "EMAIL", "custom_1" };
#define VF_NNEAR (sizeof(vf_near_names) / sizeof(vf_near_names[0]))

struct vf_in {
    const uint8_t *p;
    size_t n;
    size_t budget; // string bytes still to build
};

// vf_check aborts with a message when an expectation is broken.
static void
vf_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_validate: check failed: %s\n", what);
        abort();
    }
}

static void *
vf_alloc(size_t n)
{
    void *p = calloc(1, n > 0 ? n : 1);
    vf_check(p != NULL, "calloc");
    return p;
}

// vf_byte returns the next input byte, or 0 past the end.
static unsigned
vf_byte(struct vf_in *in)
{
    if (in->n == 0) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

// vf_strdup copies the n bytes at s into a new NUL-terminated string.
static char *
vf_strdup(const char *s, size_t n)
{
    char *d = vf_alloc(n + 1);
    memcpy(d, s, n);
    return d;
}

// vf_string reads a length and that many bytes (fewer at the end).
static char *
vf_string(struct vf_in *in)
{
    size_t len = vf_byte(in);
    if (len >= 0xf0) {
        len = ((len & 0x0f) << 8) | vf_byte(in);
    }
    if (len > in->n) {
        len = in->n;
    }
    char *s = vf_strdup((const char *) in->p, len);
    in->p += len;
    in->n -= len;
    return s;
}

// vf_concat returns a followed by b (count times), within the budget.
static char *
vf_concat(struct vf_in *in, const char *a, const char *b, size_t count)
{
    size_t na = strlen(a);
    size_t nb = strlen(b);
    if (na > in->budget) {
        na = in->budget;
    }
    if (nb > 0 && count > (in->budget - na) / nb) {
        count = (in->budget - na) / nb;
    }
    in->budget -= na + nb * count;
    char *s = vf_alloc(na + nb * count + 1);
    memcpy(s, a, na);
    for (size_t k = 0; k < count; k++) {
        memcpy(s + na + k * nb, b, nb);
    }
    return s;
}

// vf_value fills *v from its recipe byte k (low 3 bits: kind).
static void
vf_value(struct vf_in *in, Bulkupsert__V1__Value *v)
{
    bulkupsert__v1__value__init(v);
    unsigned k = vf_byte(in);
    char *s = NULL;
    switch (k & 7) {
    case 0: // not provided
        break;
    case 1:
        s = vf_string(in);
        break;
    case 2:
        v->kind_case = BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE;
        v->bool_value = (k >> 3) & 1;
        break;
    case 3:
        v->kind_case = BULKUPSERT__V1__VALUE__KIND_NULL_VALUE;
        v->null_value = BULKUPSERT__V1__NULL_VALUE__NULL_VALUE;
        break;
    case 4: {
        const char *w = vf_words[vf_byte(in) % VF_NWORDS];
        s = vf_concat(in, w, "", 0);
        break;
    }
    case 5: { // a word with a suffix
        const char *w = vf_words[vf_byte(in) % VF_NWORDS];
        char *suffix = vf_string(in);
        s = vf_concat(in, w, suffix, 1);
        free(suffix);
        break;
    }
    case 6: { // a piece repeated up to 4096 times: length limits
        char *piece = vf_string(in);
        size_t count = 1 + vf_byte(in) + 256 * ((k >> 3) & 15);
        s = vf_concat(in, "", piece, count);
        free(piece);
        break;
    }
    default: { // a word repeated, after an optional '+'
        const char *w = vf_words[vf_byte(in) % VF_NWORDS];
        s = vf_concat(in, (k >> 3) & 1 ? "+" : "", w, 1 + ((k >> 4) & 15));
        break;
    }
    }
    if (s != NULL) {
        v->kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
        v->string_value = s;
    }
}

// vf_request_free releases a request built by vf_request. Its parts come
// from vf_alloc in blocks (all records in one, each record's values in
// one), unlike an unpacked message's, so free_unpacked does not apply.
static void
vf_request_free(Bulkupsert__V1__SubmitBulkUpsertRequest *req)
{
    for (size_t i = 0; i < req->n_columns; i++) {
        free(req->columns[i]);
    }
    free(req->columns);
    for (size_t r = 0; r < req->n_contact_datas; r++) {
        Bulkupsert__V1__ContactData *rec = req->contact_datas[r];
        for (size_t i = 0; i < rec->n_values; i++) {
            if (rec->values[i]->kind_case ==
                BULKUPSERT__V1__VALUE__KIND_STRING_VALUE) {
                free(rec->values[i]->string_value);
            }
        }
        if (rec->n_values > 0) {
            free(rec->values[0]); // the block of this record's values
        }
        free(rec->values);
    }
    if (req->n_contact_datas > 0) {
        free(req->contact_datas[0]); // the block of all records
    }
    free(req->contact_datas);
    free(req);
}

// vf_schema sets up the schema from the flags byte.
static void
vf_schema(struct vf_in *in, unsigned flags, struct bu_schema *schema)
{
    bu_schema_standard(schema);
    if (flags & 1) {
        struct bu_column *c = &schema->cols[schema->ncols++];
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", VF_CUSTOM_NAME);
        c->type = BU_COL_TEXT;
        c->max_len = 1 + (vf_byte(in) * 16) % BU_CUSTOM_MAX_LEN;
        c->nullable = true;
        c->custom = true;
        c->import_enabled = (flags & 2) != 0;
    }
    if (flags & 4) {
        schema->cols[vf_byte(in) % schema->ncols].import_enabled = false;
    }
}

// vf_request builds a request from the recipe (see the file header).
static Bulkupsert__V1__SubmitBulkUpsertRequest *
vf_request(struct vf_in *in, unsigned flags, const struct bu_schema *schema)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = vf_alloc(sizeof(*req));
    bulkupsert__v1__submit_bulk_upsert_request__init(req);
    req->has_fail_on_error = (flags >> 5) & 1;
    req->fail_on_error = (flags >> 6) & 1;

    size_t ncols = vf_byte(in) % 32;
    if (flags & 8) {
        ncols += BU_SCHEMA_MAX_COLUMNS - 16;
    }
    req->columns = vf_alloc(ncols * sizeof(char *));
    for (size_t i = 0; i < ncols; i++) {
        unsigned c = vf_byte(in);
        if (c >= 0x80) {
            req->columns[i] = vf_string(in);
        } else {
            size_t pick = c % (schema->ncols + VF_NNEAR);
            const char *name = pick < schema->ncols
                ? schema->cols[pick].name
                : vf_near_names[pick - schema->ncols];
            req->columns[i] = vf_strdup(name, strlen(name));
        }
        req->n_columns++;
    }

    size_t nrec = vf_byte(in);
    if (flags & 16) {
        nrec += BU_MAX_RECORDS - 128;
    }
    // One allocation for all records and one per record for its values:
    // a thousand records cost a few thousand mallocs, not tens.
    Bulkupsert__V1__ContactData *recs = vf_alloc(nrec * sizeof(*recs));
    req->contact_datas = vf_alloc(nrec * sizeof(*req->contact_datas));
    size_t nvalues = 0;
    for (size_t r = 0; r < nrec; r++) {
        Bulkupsert__V1__ContactData *rec = &recs[r];
        bulkupsert__v1__contact_data__init(rec);
        size_t width = ncols;
        if (vf_byte(in) == 0xff) {
            width = vf_byte(in) % 40;
        }
        if (r > 0 && nvalues + width > VF_MAX_VALUES) {
            break;
        }
        nvalues += width;
        Bulkupsert__V1__Value *vals = vf_alloc(width * sizeof(*vals));
        rec->values = vf_alloc(width * sizeof(*rec->values));
        for (size_t i = 0; i < width; i++) {
            vf_value(in, &vals[i]);
            rec->values[i] = &vals[i];
            rec->n_values++;
        }
        if (width == 0) {
            free(vals);
        }
        req->contact_datas[r] = rec;
        req->n_contact_datas++;
    }
    if (req->n_contact_datas == 0) {
        free(recs);
    }
    return req;
}

static int
vf_same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
        (a != NULL && b != NULL && strcmp(a, b) == 0);
}

// vf_verdict_check checks that v is consistent with itself and req.
static void
vf_verdict_check(const struct bu_schema *schema,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *req,
    const struct bu_verdict *v)
{
    size_t n = req->n_contact_datas;
    vf_check(!v->shape_failed || v->nerrors > 0,
        "a shape failure carries an error");
    for (size_t e = 0; e < v->nerrors; e++) {
        const struct bu_field_error *fe = &v->errors[e];
        vf_check(fe->record_index >= -1 && fe->record_index < (int64_t) n,
            "record_index is -1 or a record of the request");
        vf_check(memchr(fe->reason, '\0', sizeof(fe->reason)) != NULL &&
                fe->reason[0] != '\0',
            "reason is a non-empty string");
        vf_check(v->shape_failed || fe->record_index >= 0,
            "value errors name their record");
    }
    if (v->shape_failed) {
        return;
    }
    vf_check(n >= 1 && n <= BU_MAX_RECORDS, "records within 1..1000");
    vf_check(v->colmap != NULL && v->bad != NULL && v->notes != NULL,
        "a checked request has its colmap, bad and notes");
    int has_key = 0;
    for (size_t i = 0; i < req->n_columns; i++) {
        int idx = v->colmap[i];
        vf_check(idx >= 0 && (size_t) idx < schema->ncols &&
                schema->cols[idx].import_enabled &&
                strcmp(schema->cols[idx].name, req->columns[i]) == 0,
            "each column maps to its import-enabled schema column");
        for (size_t k = 0; k < i; k++) {
            vf_check(v->colmap[k] != idx, "no repeated column");
        }
        has_key |= strcmp(req->columns[i], BU_COL_CONTACT_KEY) == 0;
    }
    vf_check(has_key, "contact_key among the columns");
    size_t nbad = 0;
    for (size_t r = 0; r < n; r++) {
        vf_check(req->contact_datas[r]->n_values == req->n_columns,
            "every record as wide as the columns");
        nbad += v->bad[r] != 0;
    }
    vf_check(nbad == v->nbad, "nbad counts the bad records");
    vf_check((v->nerrors > 0) == (v->nbad > 0),
        "value errors and bad records go together");
    for (size_t e = 0; e < v->nerrors; e++) {
        vf_check(v->bad[v->errors[e].record_index],
            "an error's record is marked bad");
    }
}

// vf_verdict_same checks that two verdicts on equal requests agree; notes
// are compared under mask.
static void
vf_verdict_same(size_t nrec, const struct bu_verdict *a,
    const struct bu_verdict *b, unsigned mask)
{
    vf_check(a->shape_failed == b->shape_failed && a->nerrors == b->nerrors &&
            a->nbad == b->nbad,
        "equal requests, equal verdict counts");
    for (size_t e = 0; e < a->nerrors; e++) {
        const struct bu_field_error *x = &a->errors[e];
        const struct bu_field_error *y = &b->errors[e];
        // contact_key is a text column, so normalisation never touches
        // the keys the errors point to.
        vf_check(x->record_index == y->record_index &&
                vf_same_string(x->column, y->column) &&
                vf_same_string(x->contact_key, y->contact_key) &&
                strcmp(x->reason, y->reason) == 0,
            "equal requests, equal errors");
    }
    for (size_t r = 0; !a->shape_failed && r < nrec; r++) {
        vf_check(a->bad[r] == b->bad[r] &&
                (a->notes[r] & mask) == (b->notes[r] & mask),
            "equal requests, equal record flags");
    }
}

// vf_wire packs req and unpacks it again: what the server would decode.
static Bulkupsert__V1__SubmitBulkUpsertRequest *
vf_wire(const Bulkupsert__V1__SubmitBulkUpsertRequest *req)
{
    size_t len = bulkupsert__v1__submit_bulk_upsert_request__get_packed_size(
        req);
    uint8_t *buf = vf_alloc(len);
    vf_check(bulkupsert__v1__submit_bulk_upsert_request__pack(req, buf) ==
            len,
        "pack wrote get_packed_size bytes");
    Bulkupsert__V1__SubmitBulkUpsertRequest *w =
        bulkupsert__v1__submit_bulk_upsert_request__unpack(NULL, len, buf);
    vf_check(w != NULL, "a packed request decodes");
    free(buf);
    return w;
}

// vf_cells runs bu_validate_cell for every schema column on the values of
// the first record, and on "not provided".
static void
vf_cells(const struct bu_schema *schema,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *req)
{
    Bulkupsert__V1__ContactData *rec =
        req->n_contact_datas > 0 ? req->contact_datas[0] : NULL;
    size_t nv = rec != NULL ? rec->n_values : 0;
    for (size_t c = 0; c < schema->ncols; c++) {
        const struct bu_column *col = &schema->cols[c];
        for (size_t i = 0; i <= nv && i < 16; i++) {
            Bulkupsert__V1__Value *val = i < nv ? rec->values[i] : NULL;
            struct bu_cell cell = { .kind = BU_CELL_UNSET };
            unsigned notes = 0;
            char reason[160];
            if (!bu_validate_cell(col, val, &cell, &notes, reason,
                    sizeof(reason))) {
                vf_check(memchr(reason, '\0', sizeof(reason)) != NULL &&
                        reason[0] != '\0',
                    "a refused cell has a reason");
                continue;
            }
            if (cell.kind != BU_CELL_TEXT) {
                continue;
            }
            const char *s = val->string_value;
            size_t chars;
            vf_check(cell.text >= s && cell.text + cell.len <= s + strlen(s),
                "a text cell lies inside its value");
            vf_check(bu_utf8_count(cell.text, cell.len, &chars) &&
                    (col->max_len == 0 || chars <= col->max_len),
                "a text cell is UTF-8 within max_len");
        }
    }
}

// vf_utf8_ref is an independent strict UTF-8 decoder (the well-formed
// byte sequences of Unicode's table 3-7).
static int
vf_utf8_ref(const uint8_t *s, size_t n, size_t *charsp)
{
    size_t chars = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        uint8_t lo = 0x80;
        uint8_t hi = 0xbf;
        size_t len;
        if (b <= 0x7f) {
            i++;
            chars++;
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
            len = 2;
        } else if (b == 0xe0) {
            len = 3;
            lo = 0xa0;
        } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
            len = 3;
        } else if (b == 0xed) {
            len = 3;
            hi = 0x9f;
        } else if (b == 0xf0) {
            len = 4;
            lo = 0x90;
        } else if (b >= 0xf1 && b <= 0xf3) {
            len = 4;
        } else if (b == 0xf4) {
            len = 4;
            hi = 0x8f;
        } else {
            return 0;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (size_t k = 2; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
        }
        i += len;
        chars++;
    }
    *charsp = chars;
    return 1;
}

// vf_raw feeds the raw input to the text checks.
static void
vf_raw(const uint8_t *data, size_t size)
{
    size_t chars = 0;
    size_t ref = 0;
    int ok = bu_utf8_count((const char *) data, size, &chars);
    vf_check(ok == vf_utf8_ref(data, size, &ref), "utf8 agrees on validity");
    vf_check(!ok || chars == ref, "utf8 agrees on the count");

    char *s = vf_strdup((const char *) data, size);
    int64_t secs = 0;
    if (bu_rfc3339_parse(s, &secs) == BU_OK) {
        char buf[64];
        int64_t again = 0;
        // Years outside 0000..9999 do not format as RFC 3339; skip those.
        if (bu_rfc3339_format(secs, buf, sizeof(buf)) == BU_OK &&
            strlen(buf) == 20) {
            vf_check(bu_rfc3339_parse(buf, &again) == BU_OK && again == secs,
                "rfc3339 parse/format round trip");
            // A plain "Z" time without fraction or leap second is already
            // in the canonical form.
            if (strlen(s) == 20 && s[19] == 'Z' &&
                strncmp(s + 17, "60", 2) != 0) {
                vf_check(strcmp(buf, s) == 0, "rfc3339 canonical form");
            }
        }
    }
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_in in = { data, size, VF_MAX_BYTES };
    struct bu_schema schema;
    struct bu_verdict v1, v2;

    vf_raw(data, size);

    unsigned flags = vf_byte(&in);
    vf_schema(&in, flags, &schema);
    Bulkupsert__V1__SubmitBulkUpsertRequest *req =
        vf_request(&in, flags, &schema);
    // The wire round trip is taken before validation normalises req, and
    // only for requests of ordinary size: the large ones are there for the
    // count limits, which the encoding does not change.
    Bulkupsert__V1__SubmitBulkUpsertRequest *wire = NULL;
    if (req->n_contact_datas <= VF_WIRE_MAX_RECORDS) {
        wire = vf_wire(req);
    }

    vf_check(bu_validate(&schema, req, &v1) == BU_OK, "validate");
    vf_verdict_check(&schema, req, &v1);
    if (wire != NULL) {
        vf_check(bu_validate(&schema, wire, &v2) == BU_OK, "validate wire");
        vf_verdict_same(req->n_contact_datas, &v1, &v2, ~0u);
        bu_verdict_fini(&v2);
        bulkupsert__v1__submit_bulk_upsert_request__free_unpacked(wire, NULL);
    }
    // req is normalised now: a second pass must agree, except that no
    // email is left to lowercase.
    vf_check(bu_validate(&schema, req, &v2) == BU_OK, "validate again");
    vf_verdict_same(
        req->n_contact_datas, &v1, &v2, ~(unsigned) BU_CELL_NOTE_LOWERCASED);
    bu_verdict_fini(&v2);
    // Last, as it too normalises the values in place.
    vf_cells(&schema, req);

    bu_verdict_fini(&v1);
    vf_request_free(req);
    return 0;
}
