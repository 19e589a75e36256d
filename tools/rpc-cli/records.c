// SPDX-License-Identifier: MIT
/*
 * CSV and NDJSON input for `rpc-cli submit`, cut into requests of at most N
 * records. The file is read in fixed blocks (RECORDS_BLOCK bytes), so that
 * memory does not grow with the input whatever its shape. CSV goes through
 * libcsv in strict mode with space trimming turned off (RFC 4180 keeps
 * spaces), fed one physical line at a time (a line ends at LF, CRLF or a
 * lone CR), which gives every record its line number; feeding stops as soon
 * as enough rows are finished, and the rows wait in a FIFO until
 * records_next takes a chunk. NDJSON lines are gathered whole (LF ends
 * one) and parsed; a chunk is read as parsed JSON objects first, since its
 * columns are the union of their keys. A record over RECORDS_MAX_RECORD
 * bytes (an unclosed quote swallows the rest of the file) and a value over
 * RECORDS_MAX_VALUE bytes are bad input. A UTF-8 byte order mark at the
 * start of the input is skipped in both formats.
 *
 * Everything that ends up inside a request is allocated with malloc, as
 * protobuf-c's __free_unpacked (the one way requests are freed) releases
 * with free(). The reader's own bookkeeping uses bu_alloc.
 */
#include "records.h"

#include "base/alloc.h"
#include "base/err.h"

#include <csv.h>
#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// Bytes read from the input at a time.
#define RECORDS_BLOCK (64 * 1024)

// A finished CSV row waiting for a chunk.
struct records_row {
    Bulkupsert__V1__Value **values; // nheader entries, malloc'd
    long                    line;
};

struct records {
    FILE               *fp;
    int                 owns_fp;
    char               *name; // for messages: the path, or "stdin"
    enum records_format format;
    char               *buf; // one block of input (bu_alloc'd)
    size_t              pos; // buf[pos..len) is not consumed yet
    size_t              len;
    int                 began;   // the first block was read (BOM skipped)
    int                 prev_cr; // the last byte consumed was a CR
    long                line;    // line being read (1-based)
    long long           bytes;   // bytes consumed so far
    int                 eof;
    size_t              rec_bytes; // bytes of the record being read

    // NDJSON: the line being gathered (malloc'd).
    char  *lbuf;
    size_t llen;
    size_t lcap;
    int    failed; // first error (a bu_err), 0 while all is well
    char   err[512];

    // CSV state.
    struct csv_parser       csv;
    int                     csv_ready;
    int                     have_header;
    char                  **header; // malloc'd column names
    size_t                  nheader;
    size_t                  header_cap;
    Bulkupsert__V1__Value **row;       // row being filled, nheader entries
    size_t                  nfields;   // fields seen in that row
    long                    row_start; // line where that row starts
    int                 between_rows; // no row has started on the current line
    struct records_row *rows;         // finished rows, oldest first
    size_t              nrows;
    size_t              rows_cap;
};

// Records the first failure (code rv, at line, or at no line when line is
// 0) and returns rv. Later failures keep the first message and code.
static int
rec_vfail(struct records *rec, int rv, long line, const char *fmt, va_list ap)
{
    if (rec->failed) {
        return rec->failed;
    }
    int n = line > 0
        ? snprintf(rec->err, sizeof(rec->err), "%s:%ld: ", rec->name, line)
        : snprintf(rec->err, sizeof(rec->err), "%s: ", rec->name);
    if (n > 0 && (size_t) n < sizeof(rec->err)) {
        vsnprintf(rec->err + n, sizeof(rec->err) - (size_t) n, fmt, ap);
    }
    rec->failed = rv;
    return rv;
}

// An input error at line: returns BU_EPARSE.
static int rec_fail(struct records *rec, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
rec_fail(struct records *rec, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = rec_vfail(rec, BU_EPARSE, line, fmt, ap);
    va_end(ap);
    return rv;
}

// A failure that is not about the data (rv is BU_EIO or BU_ENOMEM).
static int rec_error(struct records *rec, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
rec_error(struct records *rec, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rv = rec_vfail(rec, rv, 0, fmt, ap);
    va_end(ap);
    return rv;
}

static int
rec_oom(struct records *rec)
{
    return rec_error(rec, BU_ENOMEM, "out of memory");
}

enum records_format
records_format_of_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot != NULL
        && (strcmp(dot, ".ndjson") == 0 || strcmp(dot, ".jsonl") == 0)) {
        return RECORDS_NDJSON;
    }
    return RECORDS_CSV;
}

// A Value with nothing set ("not provided"), or NULL when out of memory.
static Bulkupsert__V1__Value *
value_new(void)
{
    Bulkupsert__V1__Value *v = malloc(sizeof(*v));
    if (v != NULL) {
        bulkupsert__v1__value__init(v);
    }
    return v;
}

static char *
msg_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void
values_free(Bulkupsert__V1__Value **values, size_t n)
{
    if (values == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (values[i] != NULL) {
            bulkupsert__v1__value__free_unpacked(values[i], NULL);
        }
    }
    free(values);
}

static int
line_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

// Reports a record over RECORDS_MAX_RECORD bytes that starts at line.
static int
rec_too_big(struct records *rec, long line)
{
    return rec_fail(rec, 0,
        "record starting at line %ld exceeds %d MiB (unclosed quote?)", line,
        RECORDS_MAX_RECORD / (1024 * 1024));
}

// Reports a value of len bytes in column at the record of line: more than
// the server could ever accept (a column holds at most 4000 characters), so
// a request carrying it would only be refused, or be too large to deliver.
static int
rec_value_too_long(
    struct records *rec, long line, const char *column, size_t len)
{
    return rec_fail(rec, line,
        "column %s holds a value of %zu bytes; a column holds at most 4000 "
        "characters (values over %d bytes are not sent)",
        column, len, RECORDS_MAX_VALUE);
}

// Makes sure buf holds unconsumed input, reading the next block when it is
// used up; sets eof at the end of the input. The first block loses a UTF-8
// byte order mark, which spreadsheets put before CSV and some tools before
// NDJSON. Returns BU_OK or BU_EIO. Blocks on reading.
static int
rec_read(struct records *rec)
{
    static const char bom[] = "\xef\xbb\xbf";

    while (rec->pos == rec->len && !rec->eof) {
        size_t  have = 0;
        ssize_t n;
        // The first block must hold three bytes (or the whole input) for
        // the BOM check; a pipe may deliver them apart.
        do {
            n = read(fileno(rec->fp), rec->buf + have, RECORDS_BLOCK - have);
            have += n > 0 ? (size_t) n : 0;
        } while (
            (n < 0 && errno == EINTR) || (n > 0 && !rec->began && have < 3));
        if (n < 0) {
            return rec_error(rec, BU_EIO, "read error: %s", strerror(errno));
        }
        rec->pos = 0;
        rec->len = have;
        rec->eof = have == 0;
        if (!rec->began) {
            rec->began = 1;
            if (have >= 3 && memcmp(rec->buf, bom, 3) == 0) {
                rec->pos = 3;
                rec->bytes += 3;
            }
        }
    }
    return BU_OK;
}

// ---------------------------------------------------------------------------
// CSV

// RFC 4180: spaces are part of a field, so nothing counts as space.
static int
csv_no_space(unsigned char c)
{
    (void) c;
    return 0;
}

static void
csv_header_add(struct records *rec, const char *s, size_t len)
{
    if (s == NULL || len == 0) {
        rec_fail(rec, rec->line, "column %zu of the header row is empty",
            rec->nheader + 1);
        return;
    }
    if (memchr(s, '\0', len) != NULL) {
        rec_fail(rec, rec->line,
            "column %zu of the header row contains a NUL byte",
            rec->nheader + 1);
        return;
    }
    if (rec->nheader == rec->header_cap) {
        size_t cap = rec->header_cap ? rec->header_cap * 2 : 16;
        char **h = realloc(rec->header, cap * sizeof(*h));
        if (h == NULL) {
            rec_oom(rec);
            return;
        }
        rec->header = h;
        rec->header_cap = cap;
    }
    if ((rec->header[rec->nheader] = msg_strndup(s, len)) == NULL) {
        rec_oom(rec);
        return;
    }
    rec->nheader++;
}

// libcsv's field callback. s is NULL for an empty unquoted field.
static void
csv_on_field(void *s, size_t len, void *data)
{
    struct records *rec = data;

    if (rec->failed) {
        return;
    }
    if (!rec->have_header) {
        csv_header_add(rec, s, len);
        return;
    }
    size_t i = rec->nfields++;
    if (i >= rec->nheader) {
        // Too many fields: csv_on_row reports the row.
        return;
    }
    Bulkupsert__V1__Value *v = value_new();
    if (v == NULL) {
        rec_oom(rec);
        return;
    }
    rec->row[i] = v;
    if (s == NULL) {
        return; // not provided
    }
    if (memchr(s, '\0', len) != NULL) {
        rec_fail(rec, rec->row_start,
            "field %zu (column %s) contains a NUL byte", i + 1,
            rec->header[i]);
        return;
    }
    if (len > RECORDS_MAX_VALUE) {
        rec_value_too_long(rec, rec->row_start, rec->header[i], len);
        return;
    }
    if ((v->string_value = msg_strndup(s, len)) == NULL) {
        rec_oom(rec);
        return;
    }
    v->kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
}

static void
csv_row_clear(struct records *rec)
{
    for (size_t i = 0; i < rec->nheader; i++) {
        if (rec->row[i] != NULL) {
            bulkupsert__v1__value__free_unpacked(rec->row[i], NULL);
            rec->row[i] = NULL;
        }
    }
    rec->nfields = 0;
}

// libcsv's end-of-row callback.
static void
csv_on_row(int c, void *data)
{
    struct records *rec = data;
    (void) c;

    // A second row ending on the same physical line (bare CR line ends)
    // gets that line.
    long line = rec->between_rows ? rec->line : rec->row_start;
    rec->between_rows = 1;
    if (rec->failed) {
        return;
    }
    if (!rec->have_header) {
        rec->have_header = 1;
        rec->row = calloc(rec->nheader, sizeof(*rec->row));
        if (rec->row == NULL) {
            rec_oom(rec);
        }
        return;
    }
    if (rec->nfields != rec->nheader) {
        size_t nfields = rec->nfields;
        csv_row_clear(rec);
        rec_fail(rec, line,
            "the record has %zu field%s, but the header row has %zu column%s",
            nfields, nfields == 1 ? "" : "s", rec->nheader,
            rec->nheader == 1 ? "" : "s");
        return;
    }
    if (rec->nrows == rec->rows_cap) {
        size_t              cap = rec->rows_cap ? rec->rows_cap * 2 : 256;
        struct records_row *r = bu_realloc(rec->rows, cap * sizeof(*r));
        if (r == NULL) {
            rec_oom(rec);
            return;
        }
        rec->rows = r;
        rec->rows_cap = cap;
    }
    Bulkupsert__V1__Value **next = calloc(rec->nheader, sizeof(*next));
    if (next == NULL) {
        rec_oom(rec);
        return;
    }
    rec->rows[rec->nrows].values = rec->row;
    rec->rows[rec->nrows].line = line;
    rec->nrows++;
    rec->row = next;
    rec->nfields = 0;
}

// Feeds libcsv one physical line of the block (or what the block holds of
// it) and counts the line once its end is consumed. The LF of a CRLF ends
// no line: its CR did.
static int
csv_feed_line(struct records *rec)
{
    const char *p = rec->buf + rec->pos;
    size_t      avail = rec->len - rec->pos;
    size_t      n = 0;
    int         ends = 0;

    while (n < avail && !ends) {
        char c = p[n++];
        ends = c == '\r' || (c == '\n' && !rec->prev_cr);
        rec->prev_cr = c == '\r';
    }
    if (rec->between_rows && !line_blank(p, n)) {
        rec->row_start = rec->line;
        rec->between_rows = 0;
        rec->rec_bytes = 0;
    }
    size_t done = csv_parse(&rec->csv, p, n, csv_on_field, csv_on_row, rec);
    rec->pos += n;
    rec->bytes += (long long) n;
    if (rec->failed) {
        return rec->failed;
    }
    if (done != n) {
        int cerr = csv_error(&rec->csv);
        if (cerr == CSV_ENOMEM || cerr == CSV_ETOOBIG) {
            return rec_oom(rec);
        }
        return rec_fail(rec, rec->line,
            "malformed CSV quoting: a field with a quote, comma or line "
            "break must be quoted, and a quote inside it doubled (\"\")");
    }
    if (!rec->between_rows && (rec->rec_bytes += n) > RECORDS_MAX_RECORD) {
        return rec_too_big(rec, rec->row_start);
    }
    rec->line += ends;
    return BU_OK;
}

// Feeds lines until want rows are finished or the input ends.
static int
csv_fill(struct records *rec, size_t want)
{
    while (!rec->eof && rec->nrows < want) {
        int rv = rec_read(rec);
        if (rv != BU_OK) {
            return rv;
        }
        if (!rec->eof) {
            if ((rv = csv_feed_line(rec)) != BU_OK) {
                return rv;
            }
            continue;
        }
        // Flushes a last row without a line end; fails (strict) when the
        // input ends inside a quoted field.
        int frv = csv_fini(&rec->csv, csv_on_field, csv_on_row, rec);
        if (rec->failed) {
            return rec->failed;
        }
        if (frv != 0) {
            return rec_fail(rec, rec->row_start,
                "a quoted field that starts in this record is never "
                "closed");
        }
    }
    if (rec->eof && !rec->have_header) {
        return rec_fail(rec, 0,
            "the input is empty; a CSV file starts with a header row naming "
            "the columns");
    }
    return BU_OK;
}

// Allocates a chunk for up to n records with a request carrying a copy of
// the ncolumns names. Returns NULL when out of memory.
static struct records_chunk *
chunk_alloc(char *const *columns, size_t ncolumns, size_t n)
{
    struct records_chunk                    *chunk;
    Bulkupsert__V1__SubmitBulkUpsertRequest *req;

    if ((chunk = bu_alloc(sizeof(*chunk))) == NULL) {
        return NULL;
    }
    if ((req = malloc(sizeof(*req))) == NULL) {
        bu_free(chunk);
        return NULL;
    }
    bulkupsert__v1__submit_bulk_upsert_request__init(req);
    chunk->request = req;
    chunk->lines = bu_calloc(n, sizeof(*chunk->lines));
    // At least one slot: calloc(0) may return NULL, which is not OOM here
    // (an NDJSON chunk of "{}" lines has no columns).
    req->columns = calloc(ncolumns > 0 ? ncolumns : 1, sizeof(*req->columns));
    req->contact_datas = calloc(n, sizeof(*req->contact_datas));
    if (chunk->lines == NULL || req->columns == NULL
        || req->contact_datas == NULL) {
        records_chunk_free(chunk);
        return NULL;
    }
    for (size_t i = 0; i < ncolumns; i++) {
        req->columns[i] = msg_strndup(columns[i], strlen(columns[i]));
        if (req->columns[i] == NULL) {
            records_chunk_free(chunk);
            return NULL;
        }
        req->n_columns++;
    }
    return chunk;
}

// Adds a record to chunk; its ncolumns values move into the request.
// Returns BU_OK, or BU_ENOMEM with values still the caller's.
static int
chunk_add(struct records_chunk *chunk, Bulkupsert__V1__Value **values,
    size_t ncolumns, long line)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest *req = chunk->request;
    Bulkupsert__V1__ContactData             *cd = malloc(sizeof(*cd));

    if (cd == NULL) {
        return BU_ENOMEM;
    }
    bulkupsert__v1__contact_data__init(cd);
    cd->n_values = ncolumns;
    cd->values = values;
    req->contact_datas[req->n_contact_datas++] = cd;
    chunk->lines[chunk->nrecords++] = line;
    return BU_OK;
}

static int
csv_next(struct records *rec, size_t max, struct records_chunk **chunkp)
{
    int rv = csv_fill(rec, max);
    if (rv != BU_OK) {
        return rv;
    }
    size_t k = rec->nrows < max ? rec->nrows : max;
    if (k == 0) {
        *chunkp = NULL;
        return BU_OK;
    }
    struct records_chunk *chunk = chunk_alloc(rec->header, rec->nheader, k);
    if (chunk == NULL) {
        return rec_oom(rec);
    }
    for (size_t i = 0; i < k; i++) {
        if (chunk_add(
                chunk, rec->rows[i].values, rec->nheader, rec->rows[i].line)
            != BU_OK) {
            // The rows already moved belong to the chunk; the reader is
            // dead after an error, so the rest are freed by records_close.
            memmove(rec->rows, rec->rows + i,
                (rec->nrows - i) * sizeof(*rec->rows));
            rec->nrows -= i;
            records_chunk_free(chunk);
            return rec_oom(rec);
        }
        rec->rows[i].values = NULL;
    }
    memmove(rec->rows, rec->rows + k, (rec->nrows - k) * sizeof(*rec->rows));
    rec->nrows -= k;
    *chunkp = chunk;
    return BU_OK;
}

// ---------------------------------------------------------------------------
// NDJSON

static const char *
json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

// Writes the decimal text of a JSON number into buf: integers exactly,
// reals with the fewest digits that read back as the same double. Only a
// fallback: ndjson_number_texts gives every number of a line its source
// text before values are built.
static void
json_number_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    }
    double d = json_real_value(v);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            return;
        }
    }
}

// Sets v from the JSON scalar j. Returns BU_OK or BU_ENOMEM.
static int
json_to_value(const json_t *j, Bulkupsert__V1__Value *v)
{
    char        num[40];
    const char *text = NULL;
    size_t      len = 0;

    switch (json_typeof(j)) {
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind_case = BULKUPSERT__V1__VALUE__KIND_BOOL_VALUE;
        v->bool_value = json_is_true(j);
        return BU_OK;
    case JSON_NULL:
        v->kind_case = BULKUPSERT__V1__VALUE__KIND_NULL_VALUE;
        v->null_value = BULKUPSERT__V1__NULL_VALUE__NULL_VALUE;
        return BU_OK;
    case JSON_INTEGER:
    case JSON_REAL:
        json_number_text(j, num, sizeof(num));
        text = num;
        len = strlen(num);
        break;
    case JSON_STRING:
        text = json_string_value(j);
        len = json_string_length(j);
        break;
    default:
        // Objects and arrays were refused when the line was read.
        return BU_OK;
    }
    if ((v->string_value = msg_strndup(text, len)) == NULL) {
        return BU_ENOMEM;
    }
    v->kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
    return BU_OK;
}

// Gathers the next NDJSON line, without its LF, into lbuf. Returns BU_OK
// with *gotp (0 at the end of the input), or an error.
static int
ndjson_line(struct records *rec, int *gotp)
{
    rec->llen = 0;
    *gotp = 0;
    for (;;) {
        int rv = rec_read(rec);
        if (rv != BU_OK) {
            return rv;
        }
        if (rec->eof) {
            *gotp = rec->llen > 0; // a last line without LF
            return BU_OK;
        }
        const char *p = rec->buf + rec->pos;
        const char *nl = memchr(p, '\n', rec->len - rec->pos);
        size_t      n = nl != NULL ? (size_t) (nl - p) : rec->len - rec->pos;
        if (rec->llen + n > RECORDS_MAX_RECORD) {
            return rec_too_big(rec, rec->line);
        }
        if (rec->llen + n > rec->lcap) {
            size_t cap = rec->lcap ? rec->lcap : 4096;
            while (cap < rec->llen + n) {
                cap *= 2;
            }
            char *b = realloc(rec->lbuf, cap);
            if (b == NULL) {
                return rec_oom(rec);
            }
            rec->lbuf = b;
            rec->lcap = cap;
        }
        memcpy(rec->lbuf + rec->llen, p, n);
        rec->llen += n;
        n += nl != NULL; // the LF is consumed, not kept
        rec->pos += n;
        rec->bytes += (long long) n;
        if (nl != NULL) {
            *gotp = 1;
            return BU_OK;
        }
    }
}

// Returns the first byte at or after p, before end, that is not JSON
// whitespace, or end.
static const char *
ndjson_skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }
    return p;
}

// Returns the byte after the JSON string token at s (s points at its
// opening quote), or NULL when the string does not end before end.
static const char *
ndjson_string_end(const char *s, const char *end)
{
    for (const char *p = s + 1; p < end; p++) {
        if (*p == '\\') {
            p++; // the escaped byte; the loop checks p < end again
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

// Returns the byte after the bare scalar (number, true, false, null) at s:
// the first ',', '}', whitespace or end.
static const char *
ndjson_scalar_end(const char *s, const char *end)
{
    const char *p = s;

    while (p < end && *p != ',' && *p != '}' && *p != ' ' && *p != '\t'
        && *p != '\r' && *p != '\n') {
        p++;
    }
    return p;
}

// Sets key k (the klen bytes of a JSON string token) of obj to a string
// of the vlen bytes of number text v. Returns BU_OK, BU_EPARSE when the
// key does not decode (the scan stops there), or BU_ENOMEM.
static int
ndjson_number_text(
    json_t *obj, const char *k, size_t klen, const char *v, size_t vlen)
{
    json_error_t jerr;

    json_t *key = json_loadb(k, klen, JSON_DECODE_ANY, &jerr);
    if (key == NULL || !json_is_string(key)) {
        int oom = key == NULL
            && json_error_code(&jerr) == json_error_out_of_memory;
        json_decref(key);
        return oom ? BU_ENOMEM : BU_EPARSE;
    }
    int bad = json_object_set_new(
        obj, json_string_value(key), json_stringn(v, vlen));
    json_decref(key);
    return bad ? BU_ENOMEM : BU_OK;
}

// Replaces each number of obj, parsed from the len bytes of line (which
// need not be NUL-terminated), by a string of its source text, so that
// 1e2, 1.0, -0 and 3.141592653589793238 are sent as written rather than
// as jansson's double. Only a flat object of scalars is scanned, every
// read before line + len: at a value that is an object or an array, or at
// anything else it does not follow, the scan stops and leaves the rest of
// obj as jansson parsed it (ndjson_parse_line refuses nested values before
// this runs). Returns BU_OK or BU_ENOMEM.
static int
ndjson_number_texts(const char *line, size_t len, json_t *obj)
{
    const char *end = line + len;
    const char *p = ndjson_skip_ws(line, end);

    if (p >= end || *p != '{') {
        return BU_OK;
    }
    for (p = ndjson_skip_ws(p + 1, end); p < end && *p == '"';) {
        const char *k = p;
        if ((p = ndjson_string_end(k, end)) == NULL) {
            return BU_OK;
        }
        size_t klen = (size_t) (p - k);
        p = ndjson_skip_ws(p, end);
        if (p >= end || *p != ':') {
            return BU_OK;
        }
        const char *v = ndjson_skip_ws(p + 1, end);
        if (v >= end) {
            return BU_OK;
        }
        if (*v == '"') {
            p = ndjson_string_end(v, end);
        } else if (*v == '-' || (*v >= '0' && *v <= '9')) {
            p = ndjson_scalar_end(v, end);
            int rv = ndjson_number_text(obj, k, klen, v, (size_t) (p - v));
            if (rv != BU_OK) {
                return rv == BU_ENOMEM ? BU_ENOMEM : BU_OK;
            }
        } else if (*v == 't' || *v == 'f' || *v == 'n') {
            p = ndjson_scalar_end(v, end);
        } else {
            return BU_OK; // '{' or '[': refused by the caller
        }
        if (p == NULL || (p = ndjson_skip_ws(p, end)) >= end || *p != ',') {
            return BU_OK; // '}' or the unexpected
        }
        p = ndjson_skip_ws(p + 1, end);
    }
    return BU_OK;
}

// Refuses obj, parsed from line, when one of its values is an object or
// an array. Returns BU_OK or BU_EPARSE.
static int
ndjson_check_scalars(struct records *rec, long line, json_t *obj)
{
    const char *key;
    json_t     *val;

    json_object_foreach(obj, key, val)
    {
        if (json_is_object(val) || json_is_array(val)) {
            return rec_fail(rec, line,
                "key \"%s\" holds %s; values must be strings, numbers, "
                "booleans or null",
                key, json_type_name(val));
        }
    }
    return BU_OK;
}

// Parses one NDJSON line into an object and adds its new keys to columns
// (key -> column number). Returns BU_OK with *objp, or an error.
static int
ndjson_parse_line(
    struct records *rec, long line, json_t *columns, json_t **objp)
{
    json_error_t jerr;
    const char  *key;
    json_t      *val;

    json_t *obj = json_loadb(
        rec->lbuf, rec->llen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (obj == NULL) {
        // jansson keeps integers in 64 bits; say how to send longer ones.
        int big = strstr(jerr.text, "too big") != NULL;
        return rec_fail(rec, line, "invalid JSON at column %d: %s%s",
            jerr.column, jerr.text,
            big ? " (write long numbers as strings)" : "");
    }
    if (!json_is_object(obj)) {
        int rv = rec_fail(rec, line,
            "expected a JSON object (one record), found %s",
            json_type_name(obj));
        json_decref(obj);
        return rv;
    }
    int rv = ndjson_check_scalars(rec, line, obj);
    if (rv != BU_OK) {
        json_decref(obj);
        return rv;
    }
    if (ndjson_number_texts(rec->lbuf, rec->llen, obj) != BU_OK) {
        json_decref(obj);
        return rec_oom(rec);
    }
    json_object_foreach(obj, key, val)
    {
        if (json_is_string(val)
            && json_string_length(val) > RECORDS_MAX_VALUE) {
            rv = rec_value_too_long(rec, line, key, json_string_length(val));
            json_decref(obj);
            return rv;
        }
        if (json_object_get(columns, key) == NULL
            && json_object_set_new(columns, key,
                   json_integer((json_int_t) json_object_size(columns)))
                != 0) {
            json_decref(obj);
            return rec_oom(rec);
        }
    }
    *objp = obj;
    return BU_OK;
}

// Builds the chunk of n parsed objects, whose keys are in columns.
static int
ndjson_build(struct records *rec, json_t *const *objs, const long *lines,
    size_t n, json_t *columns, struct records_chunk **chunkp)
{
    size_t                ncolumns = json_object_size(columns);
    char                **names = bu_calloc(ncolumns, sizeof(*names));
    struct records_chunk *chunk = NULL;
    const char           *key;
    json_t               *val;
    size_t                i = 0;

    if (names == NULL) {
        return rec_oom(rec);
    }
    // Borrowed names, in first-seen order; chunk_alloc copies them.
    json_object_foreach(columns, key, val)
    {
        names[i++] = (char *) key;
    }
    if ((chunk = chunk_alloc(names, ncolumns, n)) == NULL) {
        bu_free(names);
        return rec_oom(rec);
    }
    bu_free(names);
    for (size_t r = 0; r < n; r++) {
        Bulkupsert__V1__Value **values
            = calloc(ncolumns > 0 ? ncolumns : 1, sizeof(*values));
        int rv = values != NULL ? BU_OK : BU_ENOMEM;
        for (size_t c = 0; rv == BU_OK && c < ncolumns; c++) {
            if ((values[c] = value_new()) == NULL) {
                rv = BU_ENOMEM;
            }
        }
        json_object_foreach(objs[r], key, val)
        {
            if (rv != BU_OK) {
                break;
            }
            size_t c
                = (size_t) json_integer_value(json_object_get(columns, key));
            rv = json_to_value(val, values[c]);
        }
        if (rv == BU_OK) {
            rv = chunk_add(chunk, values, ncolumns, lines[r]);
        }
        if (rv != BU_OK) {
            values_free(values, values != NULL ? ncolumns : 0);
            records_chunk_free(chunk);
            return rec_oom(rec);
        }
    }
    *chunkp = chunk;
    return BU_OK;
}

static int
ndjson_next(struct records *rec, size_t max, struct records_chunk **chunkp)
{
    json_t **objs = bu_calloc(max, sizeof(*objs));
    long    *lines = bu_calloc(max, sizeof(*lines));
    json_t  *columns = json_object();
    size_t   n = 0;
    int      rv = BU_OK;

    if (objs == NULL || lines == NULL || columns == NULL) {
        rv = rec_oom(rec);
        goto out;
    }
    while (n < max) {
        int got;
        if ((rv = ndjson_line(rec, &got)) != BU_OK) {
            goto out;
        }
        if (!got) {
            break;
        }
        long line = rec->line++;
        if (line_blank(rec->lbuf, rec->llen)) {
            continue;
        }
        if ((rv = ndjson_parse_line(rec, line, columns, &objs[n])) != BU_OK) {
            goto out;
        }
        lines[n++] = line;
    }
    if (n == 0) {
        *chunkp = NULL;
        goto out;
    }
    rv = ndjson_build(rec, objs, lines, n, columns, chunkp);

out:
    for (size_t i = 0; objs != NULL && i < n; i++) {
        json_decref(objs[i]);
    }
    json_decref(columns);
    bu_free(lines);
    bu_free(objs);
    return rv;
}

// ---------------------------------------------------------------------------
// Reader

int
records_open(struct records **recp, const char *path,
    enum records_format format, char *err, size_t errlen)
{
    struct records *rec = bu_alloc(sizeof(*rec));
    int             is_stdin = strcmp(path, "-") == 0;

    if (rec == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return BU_ENOMEM;
    }
    rec->format = format;
    rec->between_rows = 1;
    rec->line = 1;
    if ((rec->buf = bu_alloc(RECORDS_BLOCK)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        bu_free(rec);
        return BU_ENOMEM;
    }
    rec->name = bu_strdup(is_stdin ? "stdin" : path);
    if (rec->name == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        bu_free(rec->buf);
        bu_free(rec);
        return BU_ENOMEM;
    }
    if (is_stdin) {
        rec->fp = stdin;
    } else if ((rec->fp = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        bu_free(rec->buf);
        bu_free(rec->name);
        bu_free(rec);
        return BU_EIO;
    } else {
        rec->owns_fp = 1;
    }
    // fopen opens a directory for reading; only the first read fails.
    struct stat sb;
    if (fstat(fileno(rec->fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: is a directory, not a file of records",
            is_stdin ? "stdin" : path);
        records_close(rec);
        return BU_EIO;
    }
    if (format == RECORDS_CSV) {
        if (csv_init(
                &rec->csv, CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL)
            != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            records_close(rec);
            return BU_ENOMEM;
        }
        csv_set_space_func(&rec->csv, csv_no_space);
        rec->csv_ready = 1;
    }
    *recp = rec;
    return BU_OK;
}

void
records_close(struct records *rec)
{
    if (rec == NULL) {
        return;
    }
    if (rec->owns_fp) {
        fclose(rec->fp);
    }
    if (rec->csv_ready) {
        csv_free(&rec->csv);
    }
    for (size_t i = 0; i < rec->nrows; i++) {
        values_free(rec->rows[i].values, rec->nheader);
    }
    bu_free(rec->rows);
    if (rec->row != NULL) {
        values_free(rec->row, rec->nheader);
    }
    for (size_t i = 0; i < rec->nheader; i++) {
        free(rec->header[i]);
    }
    free(rec->header);
    bu_free(rec->buf);
    free(rec->lbuf);
    bu_free(rec->name);
    bu_free(rec);
}

int
records_next(struct records *rec, size_t max, struct records_chunk **chunkp)
{
    struct records_chunk *chunk = NULL;

    if (rec->failed) {
        return rec->failed;
    }
    if (max == 0 || max > RECORDS_MAX_PER_REQUEST) {
        return rec_error(
            rec, BU_EINVAL, "chunk size %zu is out of range", max);
    }
    int    rv = rec->format == RECORDS_CSV ? csv_next(rec, max, &chunk)
                                           : ndjson_next(rec, max, &chunk);
    size_t bytes = rv == BU_OK && chunk != NULL
        ? bulkupsert__v1__submit_bulk_upsert_request__get_packed_size(
            chunk->request)
        : 0;
    if (bytes > RECORDS_MAX_REQUEST_BYTES) {
        long   first = chunk->lines[0];
        long   last = chunk->lines[chunk->nrecords - 1];
        size_t n = chunk->nrecords;
        records_chunk_free(chunk);
        return rec_fail(rec, first,
            "the %zu records on lines %ld to %ld make a request of %zu "
            "bytes, more than the server accepts (%u); rows that wide are "
            "refused anyway (at most 8000 characters a row)",
            n, first, last, bytes, RECORDS_MAX_REQUEST_BYTES);
    }
    if (rv == BU_OK) {
        *chunkp = chunk;
    }
    return rv;
}

long long
records_offset(const struct records *rec)
{
    return rec->bytes;
}

const char *
records_error(const struct records *rec)
{
    return rec->err;
}

void
records_chunk_free(struct records_chunk *chunk)
{
    if (chunk == NULL) {
        return;
    }
    if (chunk->request != NULL) {
        bulkupsert__v1__submit_bulk_upsert_request__free_unpacked(
            chunk->request, NULL);
    }
    bu_free(chunk->lines);
    bu_free(chunk);
}
