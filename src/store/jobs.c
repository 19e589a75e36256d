// SPDX-License-Identifier: MIT
/*
 * DATA/queue.db. Statements are prepared once per connection. The request
 * payload lives in a table of its own, `payloads`, keyed by the job's seq,
 * until the job finishes; then it is dropped so the file stays proportional
 * to the unfinished work plus a small record per finished job. Kept apart,
 * the ~120 KB payload is written once: a claim or a state change rewrites
 * only the job's small row (SQLite rewrites a whole record, overflow pages
 * included, on any UPDATE of it).
 */
#include "store/jobs.h"

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <string.h>

static const char jobs_schema[]
    = "CREATE TABLE IF NOT EXISTS jobs("
      " seq INTEGER PRIMARY KEY,"
      " job_id TEXT NOT NULL UNIQUE,"
      " tenant TEXT NOT NULL,"
      " idem TEXT,"
      " state INTEGER NOT NULL,"
      " accepted_at INTEGER NOT NULL,"
      " started_at INTEGER NOT NULL DEFAULT 0,"
      " finished_at INTEGER NOT NULL DEFAULT 0,"
      " total INTEGER NOT NULL DEFAULT 0,"
      " inserted INTEGER NOT NULL DEFAULT 0,"
      " updated INTEGER NOT NULL DEFAULT 0,"
      " unchanged INTEGER NOT NULL DEFAULT 0,"
      " superseded INTEGER NOT NULL DEFAULT 0,"
      " not_found INTEGER NOT NULL DEFAULT 0,"
      " failed INTEGER NOT NULL DEFAULT 0,"
      " error TEXT,"
      " digest BLOB);"
      "CREATE TABLE IF NOT EXISTS payloads("
      " seq INTEGER PRIMARY KEY,"
      " data BLOB NOT NULL);"
      "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(tenant, idem)"
      " WHERE idem IS NOT NULL;"
      "CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs(state)"
      " WHERE state <= 2;"
      "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at)"
      " WHERE state >= 3;"
      "CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant, seq);";

// A queue.db made before the payloads table kept each payload in a column
// of jobs: it moves to payloads and the column goes.
static const char jobs_migrate_payloads[]
    = "INSERT INTO payloads(seq, data)"
      " SELECT seq, payload FROM jobs WHERE payload IS NOT NULL;"
      "ALTER TABLE jobs DROP COLUMN payload;";

#define JOBS_COLS                                                             \
    "seq, job_id, tenant, state, accepted_at, started_at, finished_at,"       \
    " total, inserted, updated, unchanged, superseded, not_found, failed,"    \
    " error, digest"

enum jobs_stmt {
    JOBS_INSERT,
    JOBS_PAYLOAD_PUT,
    JOBS_PAYLOAD_DROP,
    JOBS_FIND_IDEM,
    JOBS_SET_RUNNING,
    JOBS_SET_FINISHED,
    JOBS_NOTE,
    JOBS_GET,
    JOBS_PAYLOAD,
    JOBS_UNFINISHED,
    JOBS_OLDEST_UNFINISHED,
    JOBS_CLAIM,
    JOBS_CANCEL,
    JOBS_PURGE,
    JOBS_LIST,
    JOBS_NSTMT,
};

static const char *const jobs_sql[JOBS_NSTMT] = {
    [JOBS_INSERT] = "INSERT INTO jobs(job_id, tenant, idem, state,"
                    " accepted_at, total, digest)"
                    " VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6)",
    [JOBS_PAYLOAD_PUT] = "INSERT INTO payloads(seq, data) VALUES(?1, ?2)",
    [JOBS_PAYLOAD_DROP] = "DELETE FROM payloads WHERE seq ="
                          " (SELECT seq FROM jobs WHERE job_id = ?1)",
    [JOBS_FIND_IDEM]
    = "SELECT " JOBS_COLS " FROM jobs WHERE tenant = ?1 AND idem = ?2",
    [JOBS_SET_RUNNING] = "UPDATE jobs SET state = 2, started_at = ?2"
                         " WHERE job_id = ?1 AND state = 1",
    [JOBS_SET_FINISHED]
    = "UPDATE jobs SET state = ?2, inserted = ?3, updated = ?4,"
      " unchanged = ?5, superseded = ?6, not_found = ?7, failed = ?8,"
      " error = ?9, finished_at = ?10,"
      " started_at = CASE WHEN started_at = 0 THEN ?10 ELSE started_at END"
      " WHERE job_id = ?1",
    [JOBS_NOTE]
    = "UPDATE jobs SET error = ?2 WHERE job_id = ?1 AND state IN (1, 2)",
    [JOBS_GET] = "SELECT " JOBS_COLS " FROM jobs WHERE job_id = ?1",
    [JOBS_PAYLOAD] = "SELECT data FROM payloads WHERE seq ="
                     " (SELECT seq FROM jobs WHERE job_id = ?1)",
    [JOBS_UNFINISHED]
    = "SELECT " JOBS_COLS " FROM jobs WHERE state <= 2 ORDER BY seq",
    // Through the index of unfinished jobs (at most the queue limits), not
    // the tenant's, which would walk its finished jobs (a week's) first.
    [JOBS_OLDEST_UNFINISHED]
    = "SELECT min(seq) FROM jobs INDEXED BY jobs_unfinished"
      " WHERE tenant = ?1 AND state <= 2",
    // A claim keeps the note of an earlier try (why the job waits): a try
    // against a lock takes seconds, and the note stays true until the
    // job's final state replaces it.
    [JOBS_CLAIM] = "UPDATE jobs SET state = 2, started_at = CASE WHEN"
                   " started_at = 0 THEN ?2 ELSE started_at END"
                   " WHERE job_id = ?1 AND state IN (1, 2)",
    [JOBS_CANCEL] = "UPDATE jobs SET state = 6,"
                    " finished_at = ?2 WHERE job_id = ?1 AND state = 1",
    [JOBS_PURGE] = "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
                   " WHERE state >= 3 AND finished_at < ?1 LIMIT ?2)",
    // ?5 is a bit set of states (bit s for state s); 0 means any state.
    [JOBS_LIST] = "SELECT " JOBS_COLS " FROM jobs"
                  " WHERE tenant = ?1 AND seq < ?2 AND accepted_at >= ?3"
                  " AND accepted_at < ?4 AND (?5 = 0 OR (?5 >> state) & 1)"
                  " ORDER BY seq DESC LIMIT ?6",
};

struct bu_jobs {
    sqlite3      *db;
    sqlite3_stmt *stmts[JOBS_NSTMT]; // prepared lazily
};

bool
bu_job_state_final(enum bu_job_state state)
{
    return state >= BU_JOB_COMPLETED;
}

// jobs_has_payload_column tells whether jobs still has the payload column
// of the first queue.db layout.
static bool
jobs_has_payload_column(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool          has = false;
    if (sqlite3_prepare_v2(db,
            "SELECT 1 FROM pragma_table_info('jobs') WHERE name = 'payload'",
            -1, &st, NULL)
        == SQLITE_OK) {
        has = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return has;
}

// jobs_create makes the schema, or brings an older one up to it, in one
// transaction.
static int
jobs_create(sqlite3 *db)
{
    int rv = bu_sql_exec(db, "BEGIN IMMEDIATE", "queue.db schema");
    if (rv == BU_OK) {
        rv = bu_sql_exec(db, jobs_schema, "queue.db schema");
    }
    if (rv == BU_OK && jobs_has_payload_column(db)) {
        BU_INFO("queue.db: moving the payloads of queued jobs to their own "
                "table");
        rv = bu_sql_exec(db, jobs_migrate_payloads, "queue.db migration");
    }
    if (rv == BU_OK) {
        rv = bu_sql_exec(db, "COMMIT", "queue.db schema");
    }
    if (rv != BU_OK && !sqlite3_get_autocommit(db)) {
        (void) bu_sql_exec(db, "ROLLBACK", "queue.db schema");
    }
    return rv;
}

int
bu_jobs_open(struct bu_jobs **jobsp, const char *path, enum bu_sql_mode mode)
{
    struct bu_jobs *jobs;
    if (BU_ALLOC_STRUCT(jobs) == NULL) {
        return BU_ENOMEM;
    }
    int rv = bu_sql_open(&jobs->db, path, mode);
    if (rv == BU_OK && mode == BU_SQL_WRITER) {
        rv = jobs_create(jobs->db);
    }
    if (rv != BU_OK) {
        bu_jobs_close(jobs);
        return rv;
    }
    *jobsp = jobs;
    return BU_OK;
}

void
bu_jobs_close(struct bu_jobs *jobs)
{
    if (jobs == NULL) {
        return;
    }
    for (int i = 0; i < JOBS_NSTMT; i++) {
        sqlite3_finalize(jobs->stmts[i]);
    }
    sqlite3_close(jobs->db);
    bu_free(jobs);
}

// jobs_stmt returns the reset statement k, preparing it on first use.
static sqlite3_stmt *
jobs_stmt(struct bu_jobs *jobs, enum jobs_stmt k)
{
    if (jobs->stmts[k] == NULL) {
        int rc = sqlite3_prepare_v3(jobs->db, jobs_sql[k], -1,
            SQLITE_PREPARE_PERSISTENT, &jobs->stmts[k], NULL);
        if (rc != SQLITE_OK) {
            BU_ERROR("queue.db prepare: %s", sqlite3_errmsg(jobs->db));
            return NULL;
        }
    }
    return jobs->stmts[k];
}

static int
jobs_done(struct bu_jobs *jobs, sqlite3_stmt *st, int rc, const char *what)
{
    if (rc != SQLITE_DONE && rc != SQLITE_ROW
        && (rc & 0xff) != SQLITE_CONSTRAINT) {
        BU_ERROR("queue.db %s: %s", what, sqlite3_errmsg(jobs->db));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return bu_sql_err(rc);
}

int
bu_jobs_defer_checkpoints(struct bu_jobs *jobs)
{
    // Commits never checkpoint; the WAL file is cut back to 64 MiB when a
    // checkpoint lets SQLite start it over.
    return bu_sql_exec(jobs->db,
        "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;",
        "queue.db checkpoint settings");
}

int
bu_jobs_checkpoint(struct bu_jobs *jobs, int *framesp, int *donep)
{
    int frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(
        jobs->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        BU_ERROR("queue.db checkpoint: %s", sqlite3_errmsg(jobs->db));
        return bu_sql_err(rc);
    }
    if (framesp != NULL) {
        *framesp = frames;
    }
    if (donep != NULL) {
        *donep = done;
    }
    return BU_OK;
}

int
bu_jobs_begin(struct bu_jobs *jobs)
{
    return bu_sql_exec(jobs->db, "BEGIN IMMEDIATE", "queue.db begin");
}

int
bu_jobs_commit(struct bu_jobs *jobs)
{
    return bu_sql_exec(jobs->db, "COMMIT", "queue.db commit");
}

void
bu_jobs_rollback(struct bu_jobs *jobs)
{
    if (!sqlite3_get_autocommit(jobs->db)) {
        (void) bu_sql_exec(jobs->db, "ROLLBACK", "queue.db rollback");
    }
}

// jobs_insert_rows writes the job's row and its payload's.
static int
jobs_insert_rows(struct bu_jobs *jobs, const char *job_id, const char *tenant,
    const char *idem, const void *payload, size_t n, const uint8_t *digest,
    uint32_t total, int64_t accepted_at_ms, int64_t *seqp)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_INSERT);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    if (idem != NULL) {
        sqlite3_bind_text(st, 3, idem, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 4, accepted_at_ms);
    sqlite3_bind_int64(st, 5, total);
    if (digest != NULL) {
        sqlite3_bind_blob(st, 6, digest, 16, SQLITE_STATIC);
    }
    int rv = jobs_done(jobs, st, sqlite3_step(st), "insert");
    if (rv != BU_OK) {
        return rv;
    }
    int64_t seq = sqlite3_last_insert_rowid(jobs->db);
    if ((st = jobs_stmt(jobs, JOBS_PAYLOAD_PUT)) == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_blob64(st, 2, payload, n, SQLITE_STATIC);
    rv = jobs_done(jobs, st, sqlite3_step(st), "insert payload");
    if (rv == BU_OK) {
        *seqp = seq;
    }
    return rv;
}

int
bu_jobs_insert(struct bu_jobs *jobs, const char *job_id, const char *tenant,
    const char *idem, const void *payload, size_t n, const uint8_t *digest,
    uint32_t total, int64_t accepted_at_ms, int64_t *seqp)
{
    // Both rows or neither, inside a caller's transaction or not.
    int rv = bu_sql_exec(jobs->db, "SAVEPOINT jobs_insert", "queue.db insert");
    if (rv != BU_OK) {
        return rv;
    }
    rv = jobs_insert_rows(jobs, job_id, tenant, idem, payload, n, digest,
        total, accepted_at_ms, seqp);
    if (rv != BU_OK) {
        (void) bu_sql_exec(
            jobs->db, "ROLLBACK TO jobs_insert", "queue.db insert");
    }
    int rv2 = bu_sql_exec(jobs->db, "RELEASE jobs_insert", "queue.db insert");
    return rv != BU_OK ? rv : rv2;
}

static void
jobs_copy_text(char *dst, size_t len, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, len, "%s", t != NULL ? (const char *) t : "");
}

static void
jobs_row_info(sqlite3_stmt *st, struct bu_job_info *info)
{
    memset(info, 0, sizeof(*info));
    info->seq = sqlite3_column_int64(st, 0);
    jobs_copy_text(info->job_id, sizeof(info->job_id), st, 1);
    jobs_copy_text(info->tenant, sizeof(info->tenant), st, 2);
    info->state = (enum bu_job_state) sqlite3_column_int(st, 3);
    info->accepted_at_ms = sqlite3_column_int64(st, 4);
    info->started_at_ms = sqlite3_column_int64(st, 5);
    info->finished_at_ms = sqlite3_column_int64(st, 6);
    info->counts.total = (uint32_t) sqlite3_column_int64(st, 7);
    info->counts.inserted = (uint32_t) sqlite3_column_int64(st, 8);
    info->counts.updated = (uint32_t) sqlite3_column_int64(st, 9);
    info->counts.unchanged = (uint32_t) sqlite3_column_int64(st, 10);
    info->counts.superseded = (uint32_t) sqlite3_column_int64(st, 11);
    info->counts.not_found = (uint32_t) sqlite3_column_int64(st, 12);
    info->counts.failed = (uint32_t) sqlite3_column_int64(st, 13);
    jobs_copy_text(info->error, sizeof(info->error), st, 14);
    if (sqlite3_column_bytes(st, 15) == (int) sizeof(info->digest)) {
        memcpy(
            info->digest, sqlite3_column_blob(st, 15), sizeof(info->digest));
    }
}

// jobs_get_one runs a one-row query and fills *infop.
static int
jobs_get_one(struct bu_jobs *jobs, sqlite3_stmt *st, struct bu_job_info *infop,
    const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        jobs_row_info(st, infop);
    }
    int rv = jobs_done(jobs, st, rc, what);
    return rv == BU_OK && rc == SQLITE_DONE ? BU_ENOENT : rv;
}

int
bu_jobs_find_idem(struct bu_jobs *jobs, const char *tenant, const char *idem,
    struct bu_job_info *infop)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_FIND_IDEM);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, idem, -1, SQLITE_STATIC);
    return jobs_get_one(jobs, st, infop, "find idempotency key");
}

int
bu_jobs_get(
    struct bu_jobs *jobs, const char *job_id, struct bu_job_info *infop)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_GET);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    return jobs_get_one(jobs, st, infop, "get");
}

int
bu_jobs_list(struct bu_jobs *jobs, const char *tenant,
    const struct bu_jobs_filter *filter, struct bu_job_info *infos, size_t max,
    size_t *np)
{
    *np = 0;
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_LIST);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(
        st, 2, filter->before_seq > 0 ? filter->before_seq : INT64_MAX);
    sqlite3_bind_int64(st, 3, filter->accepted_after_ms);
    sqlite3_bind_int64(st, 4,
        filter->accepted_before_ms > 0 ? filter->accepted_before_ms
                                       : INT64_MAX);
    sqlite3_bind_int64(st, 5, filter->states);
    sqlite3_bind_int64(st, 6, (sqlite3_int64) max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        jobs_row_info(st, &infos[(*np)++]);
    }
    return jobs_done(jobs, st, rc, "list");
}

int
bu_jobs_set_running(struct bu_jobs *jobs, const char *job_id, int64_t at_ms)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_SET_RUNNING);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, at_ms);
    return jobs_done(jobs, st, sqlite3_step(st), "set running");
}

// jobs_drop_payload deletes the payload of job_id, if it has one.
static int
jobs_drop_payload(struct bu_jobs *jobs, const char *job_id)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_PAYLOAD_DROP);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    return jobs_done(jobs, st, sqlite3_step(st), "drop payload");
}

int
bu_jobs_set_finished(struct bu_jobs *jobs, const char *job_id,
    enum bu_job_state state, const struct bu_job_counts *c, const char *error,
    int64_t finished_at_ms)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_SET_FINISHED);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int) state);
    sqlite3_bind_int64(st, 3, c->inserted);
    sqlite3_bind_int64(st, 4, c->updated);
    sqlite3_bind_int64(st, 5, c->unchanged);
    sqlite3_bind_int64(st, 6, c->superseded);
    sqlite3_bind_int64(st, 7, c->not_found);
    sqlite3_bind_int64(st, 8, c->failed);
    if (error != NULL && error[0] != '\0') {
        sqlite3_bind_text(st, 9, error, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 10, finished_at_ms);
    int rv = jobs_done(jobs, st, sqlite3_step(st), "set finished");
    return rv == BU_OK ? jobs_drop_payload(jobs, job_id) : rv;
}

int
bu_jobs_note(struct bu_jobs *jobs, const char *job_id, const char *note)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_NOTE);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, note, -1, SQLITE_STATIC);
    int rv = jobs_done(jobs, st, sqlite3_step(st), "note");
    return rv == BU_OK && sqlite3_changes(jobs->db) == 0 ? BU_ENOENT : rv;
}

int
bu_jobs_payload(
    struct bu_jobs *jobs, const char *job_id, uint8_t **payloadp, size_t *np)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_PAYLOAD);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int rv = BU_ENOENT;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        size_t   n = (size_t) sqlite3_column_bytes(st, 0);
        uint8_t *p = bu_alloc(n);
        if (p == NULL) {
            rv = BU_ENOMEM;
        } else {
            if (n > 0) {
                memcpy(p, sqlite3_column_blob(st, 0), n);
            }
            *payloadp = p;
            *np = n;
            rv = BU_OK;
        }
    }
    int rv2 = jobs_done(jobs, st, rc, "payload");
    return rv2 != BU_OK ? rv2 : rv;
}

int
bu_jobs_oldest_unfinished(
    struct bu_jobs *jobs, const char *tenant, int64_t *seqp)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_OLDEST_UNFINISHED);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int rv = BU_ENOENT;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *seqp = sqlite3_column_int64(st, 0);
        rv = BU_OK;
    }
    int rv2 = jobs_done(jobs, st, rc, "oldest unfinished");
    return rv2 != BU_OK ? rv2 : rv;
}

int
bu_jobs_each_unfinished(struct bu_jobs *jobs,
    int (*fn)(void *arg, const struct bu_job_info *info), void *arg)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_UNFINISHED);
    if (st == NULL) {
        return BU_ESTORE;
    }
    int                rc;
    int                rv = BU_OK;
    struct bu_job_info info;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        jobs_row_info(st, &info);
        if ((rv = fn(arg, &info)) != BU_OK) {
            break;
        }
    }
    int rv2 = jobs_done(jobs, st, rc, "unfinished");
    return rv != BU_OK ? rv : rv2;
}

// jobs_update_one runs a one-row UPDATE bound to job_id and at_ms; BU_ENOENT
// when it changed nothing.
static int
jobs_update_one(struct bu_jobs *jobs, enum jobs_stmt k, const char *job_id,
    int64_t at_ms, const char *what)
{
    sqlite3_stmt *st = jobs_stmt(jobs, k);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, at_ms);
    int rv = jobs_done(jobs, st, sqlite3_step(st), what);
    if (rv == BU_OK && sqlite3_changes(jobs->db) == 0) {
        rv = BU_ENOENT;
    }
    return rv;
}

int
bu_jobs_claim(struct bu_jobs *jobs, const char *job_id, int64_t at_ms)
{
    return jobs_update_one(jobs, JOBS_CLAIM, job_id, at_ms, "claim");
}

int
bu_jobs_cancel(struct bu_jobs *jobs, const char *job_id, int64_t at_ms)
{
    int rv = jobs_update_one(jobs, JOBS_CANCEL, job_id, at_ms, "cancel");
    return rv == BU_OK ? jobs_drop_payload(jobs, job_id) : rv;
}

int
bu_jobs_purge(struct bu_jobs *jobs, int64_t before_ms, int limit, size_t *np)
{
    sqlite3_stmt *st = jobs_stmt(jobs, JOBS_PURGE);
    if (st == NULL) {
        return BU_ESTORE;
    }
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int(st, 2, limit);
    int rv = jobs_done(jobs, st, sqlite3_step(st), "purge");
    if (rv == BU_OK) {
        *np = (size_t) sqlite3_changes(jobs->db);
    }
    return rv;
}
