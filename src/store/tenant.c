// SPDX-License-Identifier: MIT
/*
 * Tenant databases. master_contact is a rowid table keyed by a unique
 * contact_key. An upsert first reads the stored row for the provided
 * columns: that one read tells inserted from updated from unchanged, and
 * lets an unchanged record skip the write (and its page) entirely.
 *
 * Statements for a request's column set (SELECT, INSERT, UPDATE) are built
 * and prepared once and cached in a small ring, since a tenant's imports
 * tend to reuse the same few column sets.
 */
#include "store/tenant.h"

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define TENANT_COLSETS 8

struct tenant_colset {
    size_t        ncols;
    int           cols[BU_SCHEMA_MAX_COLUMNS];
    sqlite3_stmt *select; // ?1 = key; columns in cols order
    sqlite3_stmt *insert; // ?j+1 = cell j
    sqlite3_stmt *update; // ?2j+1 = cell j, ?2j+2 = "provided"; then key,
                          // email changed, gsm changed
    // INSERT ... ON CONFLICT(contact_key) DO UPDATE ... WHERE <a provided
    // cell differs>: ?j+1 = cell j (its default when unset), ?n+j+1 =
    // "provided". One B-tree descent decides insert, update or neither.
    sqlite3_stmt *upsert;
    // Positions in cols of the columns with status rules, or -1.
    int email_j, email_status_j, gsm_j, gsm_status_j;
};

struct bu_tenant_db {
    sqlite3                *db;
    sqlite3_stmt           *applied_get;
    sqlite3_stmt           *applied_put;
    sqlite3_stmt           *results_get;
    sqlite3_stmt           *columns_get;  // prepared once the table exists
    struct bu_checkpointer *checkpointer; // NULL: SQLite's autocheckpoint
    struct tenant_colset    colsets[TENANT_COLSETS];
    size_t                  next_colset; // ring position of the next eviction
};

static const char tenant_fixed_schema[]
    = "CREATE TABLE IF NOT EXISTS columns("
      " name TEXT PRIMARY KEY,"
      " position INTEGER NOT NULL,"
      " type INTEGER NOT NULL,"
      " max_len INTEGER NOT NULL,"
      " allowed TEXT NOT NULL DEFAULT '',"
      " nullable INTEGER NOT NULL,"
      " has_default INTEGER NOT NULL,"
      " default_value TEXT NOT NULL DEFAULT '',"
      " custom INTEGER NOT NULL,"
      " import_enabled INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS applied_jobs("
      " job_id TEXT PRIMARY KEY,"
      " seq INTEGER NOT NULL,"
      " applied_at INTEGER NOT NULL,"
      " total INTEGER NOT NULL, inserted INTEGER NOT NULL,"
      " updated INTEGER NOT NULL, unchanged INTEGER NOT NULL,"
      " superseded INTEGER NOT NULL, not_found INTEGER NOT NULL,"
      " failed INTEGER NOT NULL,"
      " results BLOB NOT NULL);"
      "CREATE INDEX IF NOT EXISTS applied_jobs_at ON "
      "applied_jobs(applied_at);";

// Appends printf-formatted text to a fixed buffer; returns 0 on overflow.
static int tenant_sql_append(char *buf, size_t len, size_t *pos,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
tenant_sql_append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= len - *pos) {
        return 0;
    }
    *pos += (size_t) n;
    return 1;
}

// The column definition for CREATE TABLE. Names come from the schema, whose
// names are checked identifiers ([a-z][a-z0-9_]*), so quoting is enough.
static int
tenant_column_ddl(
    const struct bu_column *c, char *buf, size_t len, size_t *pos)
{
    const char *sqltype = c->type == BU_COL_BOOL ? "INTEGER" : "TEXT";
    if (strcmp(c->name, BU_COL_CONTACT_KEY) == 0) {
        return tenant_sql_append(
            buf, len, pos, "\"%s\" TEXT NOT NULL UNIQUE", c->name);
    }
    if (!tenant_sql_append(buf, len, pos, "\"%s\" %s", c->name, sqltype)) {
        return 0;
    }
    if (!c->nullable && c->has_default
        && !tenant_sql_append(buf, len, pos, " NOT NULL")) {
        return 0;
    }
    if (c->has_default) {
        if (c->type == BU_COL_BOOL) {
            return tenant_sql_append(buf, len, pos, " DEFAULT %s",
                strcmp(c->default_value, "1") == 0 ? "1" : "0");
        }
        return tenant_sql_append(
            buf, len, pos, " DEFAULT '%s'", c->default_value);
    }
    return 1;
}

static int
tenant_create(sqlite3 *db)
{
    struct bu_schema schema;
    char             sql[8192];
    size_t           pos = 0;
    bu_schema_standard(&schema);
    if (!tenant_sql_append(sql, sizeof(sql), &pos,
            "CREATE TABLE IF NOT EXISTS master_contact(")) {
        return BU_EINVAL;
    }
    for (size_t i = 0; i < schema.ncols; i++) {
        if ((i > 0 && !tenant_sql_append(sql, sizeof(sql), &pos, ", "))
            || !tenant_column_ddl(&schema.cols[i], sql, sizeof(sql), &pos)) {
            return BU_EINVAL;
        }
    }
    if (!tenant_sql_append(sql, sizeof(sql), &pos, ");")) {
        return BU_EINVAL;
    }
    int rv = bu_sql_exec(db, "BEGIN IMMEDIATE", "tenant schema");
    if (rv == BU_OK) {
        rv = bu_sql_exec(db, sql, "create master_contact");
    }
    if (rv == BU_OK) {
        rv = bu_sql_exec(db, tenant_fixed_schema, "tenant schema");
    }
    sqlite3_stmt *st = NULL;
    if (rv == BU_OK) {
        rv = bu_sql_err(sqlite3_prepare_v2(db,
            "INSERT OR IGNORE INTO columns(name, position, type, max_len,"
            " allowed, nullable, has_default, default_value, custom,"
            " import_enabled) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            -1, &st, NULL));
    }
    for (size_t i = 0; rv == BU_OK && i < schema.ncols; i++) {
        const struct bu_column *c = &schema.cols[i];
        sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) i);
        sqlite3_bind_int(st, 3, (int) c->type);
        sqlite3_bind_int(st, 4, (int) c->max_len);
        sqlite3_bind_text(st, 5, c->allowed, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, c->nullable);
        sqlite3_bind_int(st, 7, c->has_default);
        sqlite3_bind_text(st, 8, c->default_value, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 9, c->custom);
        sqlite3_bind_int(st, 10, c->import_enabled);
        rv = bu_sql_err(sqlite3_step(st));
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rv == BU_OK) {
        rv = bu_sql_exec(db, "COMMIT", "tenant schema");
    } else {
        BU_ERROR("tenant schema: %s", sqlite3_errmsg(db));
        (void) bu_sql_exec(db, "ROLLBACK", "tenant schema");
    }
    return rv;
}

int
bu_tenant_db_open(struct bu_tenant_db **dbp, const char *data_dir,
    const char *tenant, enum bu_sql_mode mode)
{
    char path[4096];
    int  n = snprintf(path, sizeof(path), "%s/tenants", data_dir);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        return BU_EINVAL;
    }
    if (mode == BU_SQL_WRITER && mkdir(path, 0750) != 0 && errno != EEXIST) {
        BU_ERROR("mkdir %s: %s", path, strerror(errno));
        return BU_EIO;
    }
    n = snprintf(path, sizeof(path), "%s/tenants/%s.db", data_dir, tenant);
    if (n < 0 || (size_t) n >= sizeof(path)) {
        return BU_EINVAL;
    }
    struct bu_tenant_db *db;
    if (BU_ALLOC_STRUCT(db) == NULL) {
        return BU_ENOMEM;
    }
    int rv = bu_sql_open(&db->db, path, mode);
    if (rv == BU_OK && mode == BU_SQL_WRITER) {
        // Random keys dirty a page per row: a cache that holds the working
        // set and a WAL larger than one batch's transaction keep the
        // checkpoints (two fsyncs, every page written again) off most
        // commits. The process-wide soft heap limit (main) bounds the sum.
        // After a checkpoint the WAL file is cut back to 64 MiB, so a big
        // batch does not leave a file of its size behind.
        rv = bu_sql_exec(db->db,
            "PRAGMA cache_size = -131072; PRAGMA journal_size_limit = "
            "67108864;",
            "tenant tuning");
        sqlite3_wal_autocheckpoint(db->db, BU_TENANT_WAL_FRAMES);
    }
    if (rv == BU_OK && mode == BU_SQL_WRITER) {
        rv = tenant_create(db->db);
    }
    if (rv != BU_OK) {
        bu_tenant_db_close(db);
        return rv;
    }
    *dbp = db;
    return BU_OK;
}

void
bu_tenant_db_checkpoint_with(
    struct bu_tenant_db *db, struct bu_checkpointer *cp)
{
    bu_checkpointer_attach(cp, db->db);
    db->checkpointer = cp;
}

static void
tenant_colset_clear(struct tenant_colset *cs)
{
    sqlite3_finalize(cs->select);
    sqlite3_finalize(cs->insert);
    sqlite3_finalize(cs->update);
    sqlite3_finalize(cs->upsert);
    memset(cs, 0, sizeof(*cs));
}

void
bu_tenant_db_close(struct bu_tenant_db *db)
{
    if (db == NULL) {
        return;
    }
    for (size_t i = 0; i < TENANT_COLSETS; i++) {
        tenant_colset_clear(&db->colsets[i]);
    }
    sqlite3_finalize(db->applied_get);
    sqlite3_finalize(db->applied_put);
    sqlite3_finalize(db->results_get);
    sqlite3_finalize(db->columns_get);
    sqlite3_close(db->db);
    bu_free(db);
}

// tenant_columns_stmt returns the reset statement that reads the column
// metadata, preparing it once the columns table exists. BU_ENOENT while a
// reader's database is still being created by its writer: until the schema
// commits, the tenant has no columns of its own yet.
static int
tenant_columns_stmt(struct bu_tenant_db *db, sqlite3_stmt **stp)
{
    if (db->columns_get != NULL) {
        *stp = db->columns_get;
        return BU_OK;
    }
    static const char exists[]
        = "SELECT 1 FROM sqlite_master WHERE type = 'table'"
          " AND name = 'columns'";
    sqlite3_stmt *st = NULL;
    int           rc = sqlite3_prepare_v2(db->db, exists, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) {
        return BU_ENOENT;
    }
    if (rc == SQLITE_ROW) {
        rc = sqlite3_prepare_v3(db->db,
            "SELECT name, type, max_len, allowed, nullable, has_default,"
            " default_value, custom, import_enabled FROM columns"
            " ORDER BY position",
            -1, SQLITE_PREPARE_PERSISTENT, &db->columns_get, NULL);
    }
    if (rc != SQLITE_OK) {
        BU_ERROR("read columns: %s", sqlite3_errmsg(db->db));
        return bu_sql_err(rc) == BU_OK ? BU_ESTORE : bu_sql_err(rc);
    }
    *stp = db->columns_get;
    return BU_OK;
}

int
bu_tenant_db_schema(struct bu_tenant_db *db, struct bu_schema *schemap)
{
    sqlite3_stmt *st = NULL;
    int           rv = tenant_columns_stmt(db, &st);
    if (rv != BU_OK) {
        return rv;
    }
    int    rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == BU_SCHEMA_MAX_COLUMNS) {
            rc = SQLITE_CORRUPT;
            break;
        }
        struct bu_column *c = &schemap->cols[n++];
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", sqlite3_column_text(st, 0));
        c->type = (enum bu_col_type) sqlite3_column_int(st, 1);
        c->max_len = (unsigned) sqlite3_column_int(st, 2);
        snprintf(
            c->allowed, sizeof(c->allowed), "%s", sqlite3_column_text(st, 3));
        c->nullable = sqlite3_column_int(st, 4) != 0;
        c->has_default = sqlite3_column_int(st, 5) != 0;
        snprintf(c->default_value, sizeof(c->default_value), "%s",
            sqlite3_column_text(st, 6));
        c->custom = sqlite3_column_int(st, 7) != 0;
        c->import_enabled = sqlite3_column_int(st, 8) != 0;
    }
    if (rc != SQLITE_DONE) {
        BU_ERROR("read columns: %s", sqlite3_errmsg(db->db));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return bu_sql_err(rc) == BU_OK ? BU_ESTORE : bu_sql_err(rc);
    }
    schemap->ncols = n;
    return BU_OK;
}

int
bu_tenant_db_begin(struct bu_tenant_db *db)
{
    if (db->checkpointer != NULL) {
        // A transaction that begins while its WAL is being copied back
        // appends to it instead of starting it over (store/checkpointer.h).
        bu_checkpointer_wait(
            db->checkpointer, sqlite3_db_filename(db->db, "main"));
    }
    return bu_sql_exec(db->db, "BEGIN IMMEDIATE", "tenant begin");
}

int
bu_tenant_db_commit(struct bu_tenant_db *db)
{
    return bu_sql_exec(db->db, "COMMIT", "tenant commit");
}

void
bu_tenant_db_rollback(struct bu_tenant_db *db)
{
    if (!sqlite3_get_autocommit(db->db)) {
        (void) bu_sql_exec(db->db, "ROLLBACK", "tenant rollback");
    }
}

int
bu_tenant_db_savepoint(struct bu_tenant_db *db)
{
    return bu_sql_exec(db->db, "SAVEPOINT job", "tenant savepoint");
}

int
bu_tenant_db_release(struct bu_tenant_db *db)
{
    return bu_sql_exec(db->db, "RELEASE job", "tenant release");
}

void
bu_tenant_db_rollback_to(struct bu_tenant_db *db)
{
    (void) bu_sql_exec(db->db, "ROLLBACK TO job; RELEASE job",
        "tenant rollback to savepoint");
}

static int
tenant_prepare(struct bu_tenant_db *db, const char *sql, sqlite3_stmt **stp)
{
    int rc = sqlite3_prepare_v3(
        db->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stp, NULL);
    if (rc != SQLITE_OK) {
        BU_ERROR("tenant prepare: %s", sqlite3_errmsg(db->db));
        return bu_sql_err(rc);
    }
    return BU_OK;
}

// tenant_upsert_changed appends the "the value at position j changed" arm
// of a status column's CASE in the upsert: " WHEN ?provided AND <stored
// value differs> THEN 'A'".
static void
tenant_upsert_changed(sqlite3_str *ups, int j, size_t n,
    const struct bu_schema *schema, const struct tenant_colset *cs)
{
    const char *name = schema->cols[cs->cols[j]].name;
    sqlite3_str_appendf(ups,
        " WHEN ?%d AND \"%w\" IS NOT excluded.\"%w\" THEN 'A'",
        (int) n + j + 1, name, name);
}

// tenant_colset_build prepares the statements of a column set.
static int
tenant_colset_build(struct bu_tenant_db *db, const struct bu_schema *schema,
    struct tenant_colset *cs)
{
    // sqlite3_str grows as needed: 256 columns of 63-character names make
    // statements of tens of kilobytes.
    sqlite3_str *sel = sqlite3_str_new(db->db);
    sqlite3_str *ins = sqlite3_str_new(db->db);
    sqlite3_str *vals = sqlite3_str_new(db->db);
    sqlite3_str *upd = sqlite3_str_new(db->db);
    sqlite3_str *ups = sqlite3_str_new(db->db);  // DO UPDATE SET ...
    sqlite3_str *diff = sqlite3_str_new(db->db); // ... WHERE
    sqlite3_str_appendall(sel, "SELECT ");
    sqlite3_str_appendall(ins, "INSERT INTO master_contact(");
    sqlite3_str_appendall(upd, "UPDATE master_contact SET ");
    int    nset = 0;
    size_t n = cs->ncols;
    cs->email_j = cs->email_status_j = cs->gsm_j = cs->gsm_status_j = -1;
    for (size_t j = 0; j < n; j++) {
        const char *name = schema->cols[cs->cols[j]].name;
        int        *slot = strcmp(name, "email") == 0  ? &cs->email_j
                   : strcmp(name, "email_status") == 0 ? &cs->email_status_j
                   : strcmp(name, "gsm") == 0          ? &cs->gsm_j
                   : strcmp(name, "gsm_status") == 0   ? &cs->gsm_status_j
                                                       : NULL;
        if (slot != NULL) {
            *slot = (int) j;
        }
    }
    for (size_t j = 0; j < n; j++) {
        const char *name = schema->cols[cs->cols[j]].name;
        const char *sep = j > 0 ? ", " : "";
        sqlite3_str_appendf(sel, "%s\"%w\"", sep, name);
        sqlite3_str_appendf(ins, "%s\"%w\"", sep, name);
        sqlite3_str_appendf(vals, "%s?%d", sep, (int) j + 1);
        if (strcmp(name, BU_COL_CONTACT_KEY) == 0) {
            continue;
        }
        // A changed email (gsm) makes its status A again unless the same
        // record sets the status: "WHEN ?changed THEN 'A'".
        int chg = 0;
        if ((int) j == cs->email_status_j && cs->email_j >= 0) {
            chg = (int) (2 * n + 2);
        } else if ((int) j == cs->gsm_status_j && cs->gsm_j >= 0) {
            chg = (int) (2 * n + 3);
        }
        sqlite3_str_appendf(upd, "%s\"%w\" = CASE WHEN ?%d THEN ?%d",
            nset > 0 ? ", " : "", name, (int) (2 * j + 2), (int) (2 * j + 1));
        if (chg != 0) {
            sqlite3_str_appendf(upd, " WHEN ?%d THEN 'A'", chg);
        }
        sqlite3_str_appendf(upd, " ELSE \"%w\" END", name);
        // The same in the upsert: the right-hand sides see the stored row.
        sqlite3_str_appendf(ups,
            "%s\"%w\" = CASE WHEN ?%d THEN excluded.\"%w\"",
            nset > 0 ? ", " : "", name, (int) (n + j + 1), name);
        if (chg != 0) {
            tenant_upsert_changed(ups,
                chg == (int) (2 * n + 2) ? cs->email_j : cs->gsm_j, n, schema,
                cs);
        }
        sqlite3_str_appendf(ups, " ELSE \"%w\" END", name);
        sqlite3_str_appendf(diff, "%s(?%d AND \"%w\" IS NOT excluded.\"%w\")",
            nset > 0 ? " OR " : "", (int) (n + j + 1), name, name);
        nset++;
    }
    if (cs->email_j >= 0 && cs->email_status_j < 0) {
        sqlite3_str_appendf(upd,
            "%s\"email_status\" = CASE WHEN ?%d THEN 'A' ELSE"
            " \"email_status\" END",
            nset > 0 ? ", " : "", (int) (2 * n + 2));
        sqlite3_str_appendf(
            ups, "%s\"email_status\" = CASE", nset > 0 ? ", " : "");
        tenant_upsert_changed(ups, cs->email_j, n, schema, cs);
        sqlite3_str_appendall(ups, " ELSE \"email_status\" END");
        nset++;
    }
    if (cs->gsm_j >= 0 && cs->gsm_status_j < 0) {
        sqlite3_str_appendf(upd,
            "%s\"gsm_status\" = CASE WHEN ?%d THEN 'A' ELSE"
            " \"gsm_status\" END",
            nset > 0 ? ", " : "", (int) (2 * n + 3));
        sqlite3_str_appendf(
            ups, "%s\"gsm_status\" = CASE", nset > 0 ? ", " : "");
        tenant_upsert_changed(ups, cs->gsm_j, n, schema, cs);
        sqlite3_str_appendall(ups, " ELSE \"gsm_status\" END");
        nset++;
    }
    sqlite3_str_appendall(sel, " FROM master_contact WHERE contact_key = ?1");
    sqlite3_str_appendf(ins, ") VALUES(%s)", sqlite3_str_value(vals));
    sqlite3_str_appendf(
        upd, " WHERE contact_key = ?%d", (int) (2 * cs->ncols + 1));
    int rv = BU_OK;
    if (sqlite3_str_errcode(sel) != SQLITE_OK
        || sqlite3_str_errcode(ins) != SQLITE_OK
        || sqlite3_str_errcode(vals) != SQLITE_OK
        || sqlite3_str_errcode(upd) != SQLITE_OK
        || sqlite3_str_errcode(ups) != SQLITE_OK
        || sqlite3_str_errcode(diff) != SQLITE_OK) {
        rv = BU_ENOMEM;
    }
    char *ssel = sqlite3_str_finish(sel);
    char *sins = sqlite3_str_finish(ins);
    sqlite3_free(sqlite3_str_finish(vals));
    char *supd = sqlite3_str_finish(upd);
    char *supsset = sqlite3_str_finish(ups);
    char *sdiff = sqlite3_str_finish(diff);
    // "INSERT ... ON CONFLICT(contact_key) DO UPDATE SET ... WHERE ...":
    // a WHERE that is false leaves the row alone and changes nothing.
    char *sups = rv != BU_OK ? NULL
        : nset == 0
        ? sqlite3_mprintf("%s ON CONFLICT(contact_key) DO NOTHING", sins)
        : sqlite3_mprintf("%s ON CONFLICT(contact_key) DO UPDATE SET %s"
                          " WHERE %s",
            sins, supsset, sdiff);
    if (rv == BU_OK && sups == NULL) {
        rv = BU_ENOMEM;
    }
    if (rv == BU_OK) {
        rv = tenant_prepare(db, ssel, &cs->select);
    }
    if (rv == BU_OK) {
        rv = tenant_prepare(db, sins, &cs->insert);
    }
    // A request of contact_key alone has nothing to update.
    if (rv == BU_OK && nset > 0) {
        rv = tenant_prepare(db, supd, &cs->update);
    }
    if (rv == BU_OK) {
        rv = tenant_prepare(db, sups, &cs->upsert);
    }
    sqlite3_free(ssel);
    sqlite3_free(sins);
    sqlite3_free(supd);
    sqlite3_free(supsset);
    sqlite3_free(sdiff);
    sqlite3_free(sups);
    return rv;
}

// tenant_colset finds or builds the cached statements for cols.
static int
tenant_colset(struct bu_tenant_db *db, const struct bu_schema *schema,
    const int *cols, size_t ncols, struct tenant_colset **csp)
{
    for (size_t i = 0; i < TENANT_COLSETS; i++) {
        struct tenant_colset *cs = &db->colsets[i];
        if (cs->select != NULL && cs->ncols == ncols
            && memcmp(cs->cols, cols, ncols * sizeof(int)) == 0) {
            *csp = cs;
            return BU_OK;
        }
    }
    if (ncols > BU_SCHEMA_MAX_COLUMNS) {
        return BU_EINVAL;
    }
    struct tenant_colset *cs = &db->colsets[db->next_colset];
    db->next_colset = (db->next_colset + 1) % TENANT_COLSETS;
    tenant_colset_clear(cs);
    cs->ncols = ncols;
    memcpy(cs->cols, cols, ncols * sizeof(int));
    int rv = tenant_colset_build(db, schema, cs);
    if (rv != BU_OK) {
        tenant_colset_clear(cs);
        return rv;
    }
    *csp = cs;
    return BU_OK;
}

static void
tenant_bind_cell(sqlite3_stmt *st, int idx, const struct bu_cell *cell)
{
    switch (cell->kind) {
    case BU_CELL_TEXT:
        sqlite3_bind_text64(
            st, idx, cell->text, cell->len, SQLITE_STATIC, SQLITE_UTF8);
        break;
    case BU_CELL_INT:
        sqlite3_bind_int64(st, idx, cell->i);
        break;
    case BU_CELL_NULL:
    case BU_CELL_UNSET:
        sqlite3_bind_null(st, idx);
        break;
    }
}

// tenant_bind_default binds a column's default for an unset cell on insert.
static void
tenant_bind_default(sqlite3_stmt *st, int idx, const struct bu_column *c)
{
    if (!c->has_default) {
        sqlite3_bind_null(st, idx);
    } else if (c->type == BU_COL_BOOL) {
        sqlite3_bind_int(st, idx, strcmp(c->default_value, "1") == 0);
    } else {
        sqlite3_bind_text(st, idx, c->default_value, -1, SQLITE_STATIC);
    }
}

// tenant_cell_equal compares a provided cell with the stored column value.
static int
tenant_cell_equal(sqlite3_stmt *st, int col, const struct bu_cell *cell)
{
    int t = sqlite3_column_type(st, col);
    switch (cell->kind) {
    case BU_CELL_UNSET:
        return 1;
    case BU_CELL_NULL:
        return t == SQLITE_NULL;
    case BU_CELL_INT:
        return t == SQLITE_INTEGER && sqlite3_column_int64(st, col) == cell->i;
    case BU_CELL_TEXT:
        return t == SQLITE_TEXT
            && (size_t) sqlite3_column_bytes(st, col) == cell->len
            && memcmp(sqlite3_column_text(st, col), cell->text, cell->len)
            == 0;
    }
    return 0;
}

static int
tenant_step_done(struct bu_tenant_db *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        BU_ERROR("tenant %s: %s", what, sqlite3_errmsg(db->db));
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? BU_OK : bu_sql_err(rc);
}

// tenant_upsert_one writes a record with the colset's upsert statement.
// Which of insert, update or nothing happened: an insert sets the last
// insert rowid (reset to 0 first; new rows get rowids from 1 up), an
// update counts one change, and a row equal on every provided cell counts
// none.
static int
tenant_upsert_one(struct bu_tenant_db *db, const struct bu_schema *schema,
    const struct tenant_colset *cs, const struct bu_cell *cells,
    enum bu_upsert_outcome *outcomep)
{
    sqlite3_stmt *st = cs->upsert;
    size_t        n = cs->ncols;
    for (size_t j = 0; j < n; j++) {
        int provided = cells[j].kind != BU_CELL_UNSET;
        if (provided) {
            tenant_bind_cell(st, (int) j + 1, &cells[j]);
        } else {
            tenant_bind_default(st, (int) j + 1, &schema->cols[cs->cols[j]]);
        }
        sqlite3_bind_int(st, (int) (n + j + 1), provided);
    }
    sqlite3_set_last_insert_rowid(db->db, 0);
    int rv = tenant_step_done(db, st, "upsert");
    if (rv == BU_OK) {
        *outcomep = sqlite3_last_insert_rowid(db->db) != 0 ? BU_UPSERT_INSERTED
            : sqlite3_changes(db->db) > 0                  ? BU_UPSERT_UPDATED
                                          : BU_UPSERT_UNCHANGED;
    }
    return rv;
}

int
bu_tenant_db_upsert(struct bu_tenant_db *db, const struct bu_schema *schema,
    const int *cols, size_t ncols, const struct bu_cell *cells,
    int insert_missing, enum bu_upsert_outcome *outcomep)
{
    struct tenant_colset *cs;
    int                   rv = tenant_colset(db, schema, cols, ncols, &cs);
    if (rv != BU_OK) {
        return rv;
    }
    const struct bu_cell *key = NULL;
    for (size_t j = 0; j < ncols; j++) {
        if (strcmp(schema->cols[cols[j]].name, BU_COL_CONTACT_KEY) == 0) {
            key = &cells[j];
        }
    }
    if (key == NULL || key->kind != BU_CELL_TEXT) {
        return BU_EINVAL;
    }
    if (insert_missing) {
        return tenant_upsert_one(db, schema, cs, cells, outcomep);
    }

    tenant_bind_cell(cs->select, 1, key);
    int rc = sqlite3_step(cs->select);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        BU_ERROR("tenant select: %s", sqlite3_errmsg(db->db));
        sqlite3_reset(cs->select);
        return bu_sql_err(rc);
    }
    int found = rc == SQLITE_ROW;
    int same = found;
    for (size_t j = 0; same && j < ncols; j++) {
        same = tenant_cell_equal(cs->select, (int) j, &cells[j]);
    }
    int email_changed = found && cs->email_j >= 0
        && !tenant_cell_equal(cs->select, cs->email_j, &cells[cs->email_j]);
    int gsm_changed = found && cs->gsm_j >= 0
        && !tenant_cell_equal(cs->select, cs->gsm_j, &cells[cs->gsm_j]);
    sqlite3_reset(cs->select);

    enum bu_upsert_outcome outcome;
    if (!found && !insert_missing) {
        outcome = BU_UPSERT_NOT_FOUND;
    } else if (!found) {
        for (size_t j = 0; j < ncols; j++) {
            if (cells[j].kind == BU_CELL_UNSET) {
                tenant_bind_default(
                    cs->insert, (int) j + 1, &schema->cols[cols[j]]);
            } else {
                tenant_bind_cell(cs->insert, (int) j + 1, &cells[j]);
            }
        }
        rv = tenant_step_done(db, cs->insert, "insert");
        outcome = BU_UPSERT_INSERTED;
    } else if (same || cs->update == NULL) {
        outcome = BU_UPSERT_UNCHANGED;
    } else {
        for (size_t j = 0; j < ncols; j++) {
            tenant_bind_cell(cs->update, (int) (2 * j + 1), &cells[j]);
            sqlite3_bind_int(
                cs->update, (int) (2 * j + 2), cells[j].kind != BU_CELL_UNSET);
        }
        tenant_bind_cell(cs->update, (int) (2 * ncols + 1), key);
        sqlite3_bind_int(cs->update, (int) (2 * ncols + 2), email_changed);
        sqlite3_bind_int(cs->update, (int) (2 * ncols + 3), gsm_changed);
        rv = tenant_step_done(db, cs->update, "update");
        outcome = BU_UPSERT_UPDATED;
    }
    if (rv == BU_OK) {
        *outcomep = outcome;
    }
    return rv;
}

int
bu_tenant_db_applied(
    struct bu_tenant_db *db, const char *job_id, struct bu_job_counts *countsp)
{
    if (db->applied_get == NULL) {
        int rv = tenant_prepare(db,
            "SELECT total, inserted, updated, unchanged, superseded,"
            " not_found, failed FROM applied_jobs WHERE job_id = ?1",
            &db->applied_get);
        if (rv != BU_OK) {
            return rv;
        }
    }
    sqlite3_stmt *st = db->applied_get;
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        countsp->total = (uint32_t) sqlite3_column_int64(st, 0);
        countsp->inserted = (uint32_t) sqlite3_column_int64(st, 1);
        countsp->updated = (uint32_t) sqlite3_column_int64(st, 2);
        countsp->unchanged = (uint32_t) sqlite3_column_int64(st, 3);
        countsp->superseded = (uint32_t) sqlite3_column_int64(st, 4);
        countsp->not_found = (uint32_t) sqlite3_column_int64(st, 5);
        countsp->failed = (uint32_t) sqlite3_column_int64(st, 6);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return BU_OK;
    }
    return rc == SQLITE_DONE ? BU_ENOENT : bu_sql_err(rc);
}

int
bu_tenant_db_mark_applied(struct bu_tenant_db *db, const char *job_id,
    int64_t seq, const struct bu_job_counts *c, const void *results, size_t n)
{
    if (db->applied_put == NULL) {
        int rv = tenant_prepare(db,
            "INSERT INTO applied_jobs(job_id, seq, applied_at, total,"
            " inserted, updated, unchanged, superseded, not_found, failed,"
            " results) VALUES(?1, ?2, strftime('%s','now') * 1000, ?3, ?4,"
            " ?5, ?6, ?7, ?8, ?9, ?10)",
            &db->applied_put);
        if (rv != BU_OK) {
            return rv;
        }
    }
    sqlite3_stmt *st = db->applied_put;
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, c->total);
    sqlite3_bind_int64(st, 4, c->inserted);
    sqlite3_bind_int64(st, 5, c->updated);
    sqlite3_bind_int64(st, 6, c->unchanged);
    sqlite3_bind_int64(st, 7, c->superseded);
    sqlite3_bind_int64(st, 8, c->not_found);
    sqlite3_bind_int64(st, 9, c->failed);
    sqlite3_bind_blob64(st, 10, n > 0 ? results : "", n, SQLITE_STATIC);
    int rv = tenant_step_done(db, st, "mark applied");
    sqlite3_clear_bindings(st);
    return rv;
}

int
bu_tenant_db_results(
    struct bu_tenant_db *db, const char *job_id, uint8_t **blobp, size_t *np)
{
    if (db->results_get == NULL) {
        int rv = tenant_prepare(db,
            "SELECT results FROM applied_jobs WHERE job_id = ?1",
            &db->results_get);
        if (rv != BU_OK) {
            return rv;
        }
    }
    sqlite3_stmt *st = db->results_get;
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int rv = rc == SQLITE_DONE ? BU_ENOENT : bu_sql_err(rc);
    if (rc == SQLITE_ROW) {
        size_t   n = (size_t) sqlite3_column_bytes(st, 0);
        uint8_t *p = bu_alloc(n);
        if (p == NULL) {
            rv = BU_ENOMEM;
        } else {
            if (n > 0) {
                memcpy(p, sqlite3_column_blob(st, 0), n);
            }
            *blobp = p;
            *np = n;
        }
    }
    sqlite3_reset(st);
    return rv;
}

// tenant_column_get reads one column's metadata by name.
static int
tenant_column_get(
    struct bu_tenant_db *db, const char *name, struct bu_column *colp)
{
    struct bu_schema *schema = bu_alloc(sizeof(*schema));
    if (schema == NULL) {
        return BU_ENOMEM;
    }
    int rv = bu_tenant_db_schema(db, schema);
    if (rv == BU_OK) {
        int i = bu_schema_find(schema, name);
        if (i < 0) {
            rv = BU_ENOENT;
        } else if (colp != NULL) {
            *colp = schema->cols[i];
        }
    }
    bu_free(schema);
    return rv;
}

int
bu_tenant_db_add_column(struct bu_tenant_db *db, const char *name,
    unsigned max_len, int import_enabled, struct bu_column *colp)
{
    char reason[128];
    if (!bu_column_name_check(name, reason, sizeof(reason)) || max_len < 1
        || max_len > BU_CUSTOM_MAX_LEN) {
        return BU_EINVAL;
    }
    struct bu_schema *schema = bu_alloc(sizeof(*schema));
    if (schema == NULL) {
        return BU_ENOMEM;
    }
    sqlite3_stmt *st = NULL;
    int           rv = bu_tenant_db_begin(db);
    if (rv == BU_OK) {
        rv = bu_tenant_db_schema(db, schema);
    }
    if (rv == BU_OK && bu_schema_find(schema, name) >= 0) {
        rv = BU_EEXIST;
    }
    if (rv == BU_OK
        && (schema->ncols >= BU_SCHEMA_MAX_COLUMNS
            || bu_schema_row_width(schema) + max_len > BU_ROW_WIDTH_MAX)) {
        rv = BU_EFULL;
    }
    char sql[256];
    if (rv == BU_OK) {
        // The name passed bu_column_name_check: safe to quote as is.
        snprintf(sql, sizeof(sql),
            "ALTER TABLE master_contact ADD COLUMN \"%s\" TEXT", name);
        rv = bu_sql_exec(db->db, sql, "add column");
    }
    if (rv == BU_OK) {
        rv = tenant_prepare(db,
            "INSERT INTO columns(name, position, type, max_len, allowed,"
            " nullable, has_default, default_value, custom, import_enabled)"
            " VALUES(?1, (SELECT max(position) + 1 FROM columns), ?2, ?3, '',"
            " 1, 0, '', 1, ?4)",
            &st);
    }
    if (rv == BU_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int) BU_COL_TEXT);
        sqlite3_bind_int(st, 3, (int) max_len);
        sqlite3_bind_int(st, 4, import_enabled != 0);
        rv = tenant_step_done(db, st, "add column metadata");
    }
    sqlite3_finalize(st);
    if (rv == BU_OK) {
        rv = bu_tenant_db_commit(db);
    }
    if (rv != BU_OK) {
        bu_tenant_db_rollback(db);
    }
    bu_free(schema);
    if (rv == BU_OK) {
        rv = tenant_column_get(db, name, colp);
    }
    return rv;
}

int
bu_tenant_db_set_import(struct bu_tenant_db *db, const char *name, int enabled,
    struct bu_column *colp)
{
    if (!enabled && strcmp(name, BU_COL_CONTACT_KEY) == 0) {
        return BU_EINVAL;
    }
    sqlite3_stmt *st = NULL;
    int           rv = tenant_prepare(
                  db, "UPDATE columns SET import_enabled = ?2 WHERE name = ?1", &st);
    if (rv == BU_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, enabled != 0);
        rv = tenant_step_done(db, st, "set import");
        if (rv == BU_OK && sqlite3_changes(db->db) == 0) {
            rv = BU_ENOENT;
        }
    }
    sqlite3_finalize(st);
    if (rv == BU_OK) {
        rv = tenant_column_get(db, name, colp);
    }
    return rv;
}

int
bu_tenant_db_purge(
    struct bu_tenant_db *db, int64_t before_ms, int64_t below_seq)
{
    sqlite3_stmt *st = NULL;
    int           rv = tenant_prepare(db,
                  "DELETE FROM applied_jobs WHERE applied_at < ?1 AND seq < ?2", &st);
    if (rv == BU_OK) {
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int64(st, 2, below_seq);
        rv = tenant_step_done(db, st, "purge");
    }
    sqlite3_finalize(st);
    return rv;
}
