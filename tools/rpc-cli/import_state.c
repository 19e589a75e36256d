// SPDX-License-Identifier: MIT
/*
 * The state file of `rpc-cli import --resume` (see import_state.h). The
 * document, version 1:
 *
 *   { "version": 1, "import_id": "<32 hex>",
 *     "input": { "path": "/abs/file.csv", "path_hex": "2f6162...",
 *                "size": N, "mtime_ns": N,
 *                "head_blake2b": "<64 hex>", "format": "csv" },
 *     "options": { "batch": 1000, "fail_on_error": true,
 *                  "insert_if_not_exists": true },
 *     "requests": N, "records": N, "finished": false,
 *     "jobs": [ "<job id>", null, ... ],
 *     "rejected": [ { "request": 2, "records": 1000, "message": "...",
 *                     "errors_total": 1,
 *                     "errors": [ { "record": 0, "contact_key": "k",
 *                                   "column": "email", "reason": "..." } ]
 *                 } ] }
 *
 * "path" is for people (bytes that are not UTF-8 appear as \xNN);
 * "path_hex" holds the exact bytes and is what a resume compares. A file
 * written before "path_hex" and "errors" existed still loads (the path is
 * then taken from "path"; its rejections have no field errors).
 *
 * The whole document is rewritten on each save; the caller decides how
 * often (every request while there are few, then about once a second).
 */
// realpath is an XSI extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "import_state.h"

#include "cli.h"

#include <jansson.h>
#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMPORT_STATE_VERSION 1
#define IMPORT_HEAD_BYTES    (64 * 1024)

int
import_ident_of(
    const char *path, struct import_ident *id, char *err, size_t errlen)
{
    struct stat              sb;
    crypto_generichash_state hs;
    unsigned char            hash[32];
    static unsigned char     buf[IMPORT_HEAD_BYTES];
    size_t                   got = 0;

    memset(id, 0, sizeof(*id));
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen,
            "%s: not a regular file; --resume needs a file it can read "
            "again",
            path);
        close(fd);
        return -1;
    }
    while (got < sizeof(buf)) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t) n;
    }
    close(fd);
    crypto_generichash_init(&hs, NULL, 0, sizeof(hash));
    crypto_generichash_update(&hs, buf, got);
    crypto_generichash_final(&hs, hash, sizeof(hash));
    sodium_bin2hex(id->head, sizeof(id->head), hash, sizeof(hash));
    if ((id->path = realpath(path, NULL)) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    id->size = (long long) sb.st_size;
    id->mtime_ns
        = (long long) sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    return 0;
}

int
import_ident_compare(const struct import_ident *was,
    const struct import_ident *now, char *err, size_t errlen)
{
    if (strcmp(was->path, now->path) != 0) {
        snprintf(err, errlen, "the state file belongs to an import of %s",
            was->path);
        return -1;
    }
    if (was->size != now->size) {
        snprintf(err, errlen,
            "%s has changed since the import began: %lld bytes then, %lld "
            "now",
            now->path, was->size, now->size);
        return -1;
    }
    if (was->mtime_ns != now->mtime_ns) {
        snprintf(err, errlen,
            "%s has changed since the import began: it was modified",
            now->path);
        return -1;
    }
    if (strcmp(was->head, now->head) != 0) {
        snprintf(err, errlen,
            "%s has changed since the import began: its first 64 KiB differ",
            now->path);
        return -1;
    }
    return 0;
}

void
import_state_init(struct import_state *st, struct import_ident *input,
    enum records_format format, size_t batch, int fail_on_error,
    int insert_if_not_exists)
{
    unsigned char id[IMPORT_ID_LEN / 2];

    memset(st, 0, sizeof(*st));
    randombytes_buf(id, sizeof(id));
    sodium_bin2hex(st->import_id, sizeof(st->import_id), id, sizeof(id));
    if (input != NULL) {
        st->input = *input;
        memset(input, 0, sizeof(*input));
    }
    st->format = format;
    st->batch = batch;
    st->fail_on_error = fail_on_error;
    st->insert_if_not_exists = insert_if_not_exists;
}

// Frees what r holds.
static void
state_rejection_fini(struct import_rejection *r)
{
    for (size_t k = 0; k < r->nerrors; k++) {
        free(r->errors[k].contact_key);
        free(r->errors[k].column);
        free(r->errors[k].reason);
    }
    free(r->errors);
    free(r->message);
    memset(r, 0, sizeof(*r));
}

void
import_state_fini(struct import_state *st)
{
    free(st->input.path);
    free(st->job_ids);
    for (size_t i = 0; i < st->nrejections; i++) {
        state_rejection_fini(&st->rejections[i]);
    }
    free(st->rejections);
    memset(st, 0, sizeof(*st));
}

// strdup of s, keeping NULL; sets *bad when out of memory.
static char *
state_strdup(const char *s, int *bad)
{
    char *d = s != NULL ? strdup(s) : NULL;
    *bad |= s != NULL && d == NULL;
    return d;
}

// Copies the first IMPORT_REJECTION_ERRORS field errors of status into r.
// Returns 0, or -1 when out of memory (r then holds what was copied).
static int
state_copy_errors(
    struct import_rejection *r, const struct bulkupsert_status *status)
{
    size_t n = status->nerrors < IMPORT_REJECTION_ERRORS
        ? status->nerrors
        : IMPORT_REJECTION_ERRORS;
    int    bad = 0;

    r->nerrors_all = status->nerrors;
    if (n == 0) {
        return 0;
    }
    if ((r->errors = calloc(n, sizeof(*r->errors))) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n && !bad; i++) {
        const struct bulkupsert_field_error *fe = &status->errors[i];
        struct import_field_error           *e = &r->errors[i];
        e->record_index = fe->record_index;
        e->contact_key = state_strdup(fe->contact_key, &bad);
        e->column = state_strdup(fe->column, &bad);
        e->reason = state_strdup(fe->reason, &bad);
        r->nerrors++;
    }
    return bad ? -1 : 0;
}

int
import_state_add(struct import_state *st, const char *job_id, uint32_t records,
    const struct bulkupsert_status *status)
{
    if (st->nrequests == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        void  *p = realloc(st->job_ids, cap * sizeof(*st->job_ids));
        if (p == NULL) {
            return -1;
        }
        st->job_ids = p;
        st->cap = cap;
    }
    if (job_id == NULL) {
        if (st->nrejections == st->rejections_cap) {
            size_t cap = st->rejections_cap ? st->rejections_cap * 2 : 8;
            void  *p = realloc(st->rejections, cap * sizeof(*st->rejections));
            if (p == NULL) {
                return -1;
            }
            st->rejections = p;
            st->rejections_cap = cap;
        }
        const char *message
            = status != NULL && status->message != NULL ? status->message : "";
        struct import_rejection *r = &st->rejections[st->nrejections];
        memset(r, 0, sizeof(*r));
        r->request = (long) st->nrequests + 1;
        r->records = records;
        r->message = strdup(message);
        if (r->message == NULL
            || (status != NULL && state_copy_errors(r, status) != 0)) {
            state_rejection_fini(r);
            return -1;
        }
        st->nrejections++;
    }
    snprintf(st->job_ids[st->nrequests], sizeof(st->job_ids[0]), "%s",
        job_id != NULL ? job_id : "");
    st->nrequests++;
    st->records += records;
    return 0;
}

const struct import_rejection *
import_state_rejection(const struct import_state *st, long nr)
{
    for (size_t i = 0; i < st->nrejections; i++) {
        if (st->rejections[i].request == nr) {
            return &st->rejections[i];
        }
    }
    return NULL;
}

// A JSON string of s's bytes in hex; NULL when out of memory.
static json_t *
state_hex(const char *s)
{
    size_t len = strlen(s);
    char  *hex = malloc(len * 2 + 1);
    if (hex == NULL) {
        return NULL;
    }
    sodium_bin2hex(hex, len * 2 + 1, (const unsigned char *) s, len);
    json_t *v = json_string(hex);
    free(hex);
    return v;
}

// A JSON string of s (see cli_json_text), or null when s is NULL.
static json_t *
state_text(const char *s)
{
    return s != NULL ? cli_json_text(s) : json_null();
}

// Builds the object of one rejection; NULL when out of memory.
static json_t *
state_rejection_json(const struct import_rejection *r)
{
    json_t *o = json_object();
    json_t *errs = json_array();
    int     bad = o == NULL || errs == NULL;

    for (size_t i = 0; !bad && i < r->nerrors; i++) {
        const struct import_field_error *e = &r->errors[i];
        json_t                          *eo = json_object();
        bad |= eo == NULL;
        if (!bad) {
            bad |= json_object_set_new(
                eo, "record", json_integer(e->record_index));
            bad |= json_object_set_new(
                eo, "contact_key", state_text(e->contact_key));
            bad |= json_object_set_new(eo, "column", state_text(e->column));
            bad |= json_object_set_new(eo, "reason", state_text(e->reason));
        }
        bad |= json_array_append_new(errs, eo) != 0;
    }
    if (bad) {
        json_decref(errs);
        json_decref(o);
        return NULL;
    }
    bad |= json_object_set_new(o, "request", json_integer(r->request));
    bad |= json_object_set_new(o, "records", json_integer(r->records));
    bad |= json_object_set_new(o, "message", cli_json_text(r->message));
    bad |= json_object_set_new(
        o, "errors_total", json_integer((json_int_t) r->nerrors_all));
    bad |= json_object_set_new(o, "errors", errs);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

// Builds the document; NULL when out of memory. (jansson's set_new and
// append_new take the value even when they fail, and fail on NULL, so one
// check of the result is enough.)
static json_t *
state_json(const struct import_state *st)
{
    json_t *doc = json_object();
    json_t *input = json_object();
    json_t *opts = json_object();
    json_t *jobs = json_array();
    json_t *rej = json_array();
    int     bad = doc == NULL || input == NULL || opts == NULL || jobs == NULL
        || rej == NULL;

    if (!bad) {
        bad |= json_object_set_new(
            input, "path", cli_json_text(st->input.path));
        bad |= json_object_set_new(
            input, "path_hex", state_hex(st->input.path));
        bad |= json_object_set_new(
            input, "size", json_integer(st->input.size));
        bad |= json_object_set_new(
            input, "mtime_ns", json_integer(st->input.mtime_ns));
        bad |= json_object_set_new(
            input, "head_blake2b", json_string(st->input.head));
        bad |= json_object_set_new(input, "format",
            json_string(st->format == RECORDS_CSV ? "csv" : "ndjson"));
        bad |= json_object_set_new(
            opts, "batch", json_integer((json_int_t) st->batch));
        bad |= json_object_set_new(
            opts, "fail_on_error", json_boolean(st->fail_on_error));
        bad |= json_object_set_new(opts, "insert_if_not_exists",
            json_boolean(st->insert_if_not_exists));
    }
    for (size_t i = 0; !bad && i < st->nrequests; i++) {
        bad |= json_array_append_new(jobs,
                   st->job_ids[i][0] != '\0' ? json_string(st->job_ids[i])
                                             : json_null())
            != 0;
    }
    for (size_t i = 0; !bad && i < st->nrejections; i++) {
        bad |= json_array_append_new(
                   rej, state_rejection_json(&st->rejections[i]))
            != 0;
    }
    if (bad) {
        json_decref(input);
        json_decref(opts);
        json_decref(jobs);
        json_decref(rej);
        json_decref(doc);
        return NULL;
    }
    bad |= json_object_set_new(
        doc, "version", json_integer(IMPORT_STATE_VERSION));
    bad |= json_object_set_new(doc, "import_id", json_string(st->import_id));
    bad |= json_object_set_new(doc, "input", input);
    bad |= json_object_set_new(doc, "options", opts);
    bad |= json_object_set_new(
        doc, "requests", json_integer((json_int_t) st->nrequests));
    bad |= json_object_set_new(
        doc, "records", json_integer((json_int_t) st->records));
    bad |= json_object_set_new(doc, "finished", json_boolean(st->finished));
    bad |= json_object_set_new(doc, "jobs", jobs);
    bad |= json_object_set_new(doc, "rejected", rej);
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

// fsyncs the folder holding file, so that a rename in it is durable.
static int
state_sync_dir(const char *file)
{
    char        dir[PATH_MAX];
    const char *slash = strrchr(file, '/');

    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == file) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int) (slash - file), file);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return -1;
    }
    int rv = fsync(fd);
    close(fd);
    return rv;
}

int
import_state_save(
    const struct import_state *st, const char *file, char *err, size_t errlen)
{
    char tmp[PATH_MAX];

    // A unique name: two writers never share a temporary file.
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", file) >= (int) sizeof(tmp)) {
        snprintf(err, errlen, "%s: the name is too long", file);
        return -1;
    }
    json_t *doc = state_json(st);
    if (doc == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    int   fd = mkstemp(tmp);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fp == NULL) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        json_decref(doc);
        return -1;
    }
    int bad = json_dumpf(doc, fp, JSON_PRESERVE_ORDER | JSON_INDENT(2)) != 0
        || fputc('\n', fp) == EOF || fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    int saved = errno;
    bad |= fclose(fp) != 0;
    json_decref(doc);
    if (bad) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(saved ? saved : EIO));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, file) != 0) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (state_sync_dir(file) != 0) {
        snprintf(
            err, errlen, "%s: syncing its folder: %s", file, strerror(errno));
        return -1;
    }
    return 0;
}

int
import_state_lock(const char *file, int *fdp, char *err, size_t errlen)
{
    char lock[PATH_MAX];

    if (snprintf(lock, sizeof(lock), "%s.lock", file) >= (int) sizeof(lock)) {
        snprintf(err, errlen, "%s: the name is too long", file);
        return -1;
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", lock, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        if (busy) {
            snprintf(err, errlen, "%s", lock);
        } else {
            snprintf(err, errlen, "%s: %s", lock, strerror(errno));
        }
        close(fd);
        return busy ? 1 : -1;
    }
    *fdp = fd;
    return 0;
}

// Reads a string member into a malloc'd copy; NULL when missing.
static char *
state_string(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? strdup(s) : NULL;
}

// Reads the input's path: the bytes of "path_hex", or, in a file written
// before it existed, "path". NULL when missing, malformed or out of memory.
static char *
state_path(json_t *input)
{
    const char *hex = json_string_value(json_object_get(input, "path_hex"));
    if (hex == NULL) {
        return state_string(input, "path");
    }
    size_t len = strlen(hex) / 2;
    char  *path = malloc(len + 1);
    size_t got = 0;
    if (path == NULL
        || sodium_hex2bin(
               (unsigned char *) path, len, hex, strlen(hex), NULL, &got, NULL)
            != 0
        || got != len || memchr(path, '\0', got) != NULL) {
        free(path);
        return NULL;
    }
    path[got] = '\0';
    return path;
}

// Reads the field errors of a rejection object v into r (none when the
// file has no "errors"). Returns 0, or -1 when malformed or out of memory.
static int
state_load_errors(json_t *v, struct import_rejection *r)
{
    json_t *errs = json_object_get(v, "errors");
    json_t *e;
    size_t  i;
    int     bad = 0;

    if (errs == NULL) {
        return 0;
    }
    size_t n = json_array_size(errs);
    if (!json_is_array(errs) || n > IMPORT_REJECTION_ERRORS) {
        return -1;
    }
    r->nerrors_all
        = (size_t) json_integer_value(json_object_get(v, "errors_total"));
    if (r->nerrors_all < n) {
        r->nerrors_all = n;
    }
    if (n == 0) {
        return 0;
    }
    if ((r->errors = calloc(n, sizeof(*r->errors))) == NULL) {
        return -1;
    }
    json_array_foreach(errs, i, e)
    {
        struct import_field_error *fe = &r->errors[i];
        fe->record_index = json_integer_value(json_object_get(e, "record"));
        fe->contact_key = state_strdup(
            json_string_value(json_object_get(e, "contact_key")), &bad);
        fe->column = state_strdup(
            json_string_value(json_object_get(e, "column")), &bad);
        fe->reason = state_strdup(
            json_string_value(json_object_get(e, "reason")), &bad);
        r->nerrors++;
        if (bad || !json_is_integer(json_object_get(e, "record"))) {
            return -1;
        }
    }
    return 0;
}

int
import_state_load(
    struct import_state *st, const char *file, char *err, size_t errlen)
{
    json_error_t jerr;

    memset(st, 0, sizeof(*st));
    FILE *fp = fopen(file, "r");
    if (fp == NULL && errno == ENOENT) {
        return 1;
    }
    if (fp == NULL) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    json_t *doc = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (doc == NULL) {
        snprintf(err, errlen, "%s:%d: not a state file: %s", file, jerr.line,
            jerr.text);
        return -1;
    }
    json_t     *input = json_object_get(doc, "input");
    json_t     *opts = json_object_get(doc, "options");
    json_t     *jobs = json_object_get(doc, "jobs");
    json_t     *rej = json_object_get(doc, "rejected");
    const char *id = json_string_value(json_object_get(doc, "import_id"));
    const char *head
        = json_string_value(json_object_get(input, "head_blake2b"));
    const char *format = json_string_value(json_object_get(input, "format"));
    json_t     *batch = json_object_get(opts, "batch");

    if (json_integer_value(json_object_get(doc, "version"))
            != IMPORT_STATE_VERSION
        || id == NULL || strlen(id) != IMPORT_ID_LEN || head == NULL
        || strlen(head) != IMPORT_HEAD_LEN || format == NULL
        || !json_is_integer(batch) || !json_is_array(jobs)
        || !json_is_array(rej)
        || !json_is_integer(json_object_get(input, "size"))
        || !json_is_integer(json_object_get(input, "mtime_ns"))
        || !json_is_boolean(json_object_get(opts, "fail_on_error"))
        || !json_is_boolean(json_object_get(opts, "insert_if_not_exists"))
        || !json_is_boolean(json_object_get(doc, "finished"))) {
        snprintf(err, errlen,
            "%s: not a state file of 'rpc-cli import' (version %d)", file,
            IMPORT_STATE_VERSION);
        json_decref(doc);
        return -1;
    }
    snprintf(st->import_id, sizeof(st->import_id), "%s", id);
    snprintf(st->input.head, sizeof(st->input.head), "%s", head);
    st->input.path = state_path(input);
    st->input.size = json_integer_value(json_object_get(input, "size"));
    st->input.mtime_ns
        = json_integer_value(json_object_get(input, "mtime_ns"));
    st->format = strcmp(format, "ndjson") == 0 ? RECORDS_NDJSON : RECORDS_CSV;
    st->batch = (size_t) json_integer_value(batch);
    st->fail_on_error = json_is_true(json_object_get(opts, "fail_on_error"));
    st->insert_if_not_exists
        = json_is_true(json_object_get(opts, "insert_if_not_exists"));
    int ok = st->input.path != NULL;

    size_t                   i;
    json_t                  *v;
    struct import_rejection *rs = NULL;
    size_t                   nrs = json_array_size(rej);
    if (ok && nrs > 0) {
        rs = calloc(nrs, sizeof(*rs));
        ok = rs != NULL;
    }
    json_array_foreach(rej, i, v)
    {
        if (!ok) {
            break;
        }
        rs[i].request
            = (long) json_integer_value(json_object_get(v, "request"));
        rs[i].records
            = (uint32_t) json_integer_value(json_object_get(v, "records"));
        rs[i].message = state_string(v, "message");
        ok = rs[i].message != NULL && rs[i].request >= 1
            && state_load_errors(v, &rs[i]) == 0;
    }
    json_array_foreach(jobs, i, v)
    {
        if (!ok) {
            break;
        }
        const char *job = json_string_value(v);
        if (job != NULL && strlen(job) != IMPORT_JOB_LEN) {
            ok = 0;
            break;
        }
        // A rejection's records and message are in rs, moved in below.
        ok = import_state_add(st, job != NULL ? job : "", 0, NULL) == 0;
    }
    st->rejections = rs;
    st->nrejections = st->rejections_cap = rs != NULL ? nrs : 0;
    st->records
        = (uint64_t) json_integer_value(json_object_get(doc, "records"));
    st->finished = json_is_true(json_object_get(doc, "finished"));
    json_decref(doc);
    if (!ok) {
        snprintf(err, errlen, "%s: a malformed state file", file);
        import_state_fini(st);
        return -1;
    }
    return 0;
}
