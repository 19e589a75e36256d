// SPDX-License-Identifier: MIT
/*
 * Tests of the SQLite stores in a scratch directory: the job queue
 * (queue.db: insert, idempotency lookup, state changes, the payload table
 * and its migration from the payload column, acceptance-order walks,
 * reader isolation) and a tenant database (schema creation, upsert
 * outcomes, defaults and unset cells, NULLs, applied-markers with their
 * results, rollback). Stored values are checked through a separate plain
 * SQLite connection, as another process would.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "base/alloc.h"
#include "base/err.h"
#include "store/checkpointer.h"
#include "store/jobs.h"
#include "store/schema.h"
#include "store/sql.h"
#include "store/tenant.h"
#include "store/writeback.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define ID1 "0190f0e4-7b8a-7c3d-8e9f-000000000001"
#define ID2 "0190f0e4-7b8a-7c3d-8e9f-000000000002"
#define ID3 "0190f0e4-7b8a-7c3d-8e9f-000000000003"
#define ID4 "0190f0e4-7b8a-7c3d-8e9f-000000000004"
#define ID5 "0190f0e4-7b8a-7c3d-8e9f-000000000005"

// ---- fixture: a scratch data directory ----

struct fx {
    char dir[64];
    char qpath[128]; // dir/queue.db
    char tpath[128]; // dir/tenants/acme.db
};

static int
fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/bu-store-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->qpath, sizeof(fx->qpath), "%s/queue.db", fx->dir);
    snprintf(fx->tpath, sizeof(fx->tpath), "%s/tenants/acme.db", fx->dir);
    *state = fx;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

// ---- peeking with plain SQLite ----

static sqlite3 *
peek_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
        SQLITE_OK) {
        fail_msg("open %s: %s", path, sqlite3_errmsg(db));
    }
    return db;
}

// peek_text runs sql (one row, one column) and copies the text into out.
// Returns 1 for text, 0 for SQL NULL, -1 for no row.
static int
peek_text(const char *path, const char *sql, char *out, size_t len)
{
    sqlite3 *db = peek_open(path);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    int ret = -1;
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
            ret = 0;
        } else {
            snprintf(out, len, "%s", sqlite3_column_text(st, 0));
            ret = 1;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ret;
}

static long long
peek_int(const char *path, const char *sql)
{
    char buf[64];
    if (peek_text(path, sql, buf, sizeof(buf)) != 1) {
        fail_msg("%s: no value", sql);
    }
    return atoll(buf);
}

// ---- jobs ----

static const struct bu_job_counts no_counts;

static void
test_jobs_roundtrip(void **state)
{
    struct fx *fx = *state;
    struct bu_jobs *w = NULL;
    struct bu_job_info info;
    int64_t seq = 0;

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_insert(w, ID1, "acme", "idem-1", "abc", 3, NULL, 3, 1000,
                  &seq),
        BU_OK);
    assert_int_equal(seq, 1);
    assert_rv(bu_jobs_insert(w, ID2, "acme", NULL, "de", 2, NULL, 2, 1001, &seq),
        BU_OK);
    assert_int_equal(seq, 2);

    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_int_equal(info.seq, 1);
    assert_string_equal(info.job_id, ID1);
    assert_string_equal(info.tenant, "acme");
    assert_int_equal(info.state, BU_JOB_QUEUED);
    assert_int_equal(info.accepted_at_ms, 1000);
    assert_int_equal(info.started_at_ms, 0);
    assert_int_equal(info.finished_at_ms, 0);
    assert_int_equal(info.counts.total, 3);
    assert_int_equal(info.counts.inserted, 0);
    assert_string_equal(info.error, "");
    assert_rv(bu_jobs_get(w, ID3, &info), BU_ENOENT);

    uint8_t *p = NULL;
    size_t n = 0;
    assert_rv(bu_jobs_payload(w, ID1, &p, &n), BU_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    bu_free(p);
    assert_rv(bu_jobs_payload(w, ID3, &p, &n), BU_ENOENT);

    assert_rv(bu_jobs_find_idem(w, "acme", "idem-1", &info), BU_OK);
    assert_string_equal(info.job_id, ID1);
    assert_rv(bu_jobs_find_idem(w, "acme", "idem-2", &info), BU_ENOENT);
    // Keys belong to a tenant.
    assert_rv(bu_jobs_find_idem(w, "other", "idem-1", &info), BU_ENOENT);

    assert_rv(bu_jobs_set_running(w, ID1, 2000), BU_OK);
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_int_equal(info.state, BU_JOB_RUNNING);
    assert_int_equal(info.started_at_ms, 2000);

    struct bu_job_counts c = { .total = 3, .inserted = 1, .updated = 1,
        .unchanged = 1 };
    assert_rv(bu_jobs_set_finished(w, ID1, BU_JOB_COMPLETED, &c, NULL, 3000),
        BU_OK);
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_int_equal(info.state, BU_JOB_COMPLETED);
    assert_int_equal(info.started_at_ms, 2000);
    assert_int_equal(info.finished_at_ms, 3000);
    assert_int_equal(info.counts.total, 3);
    assert_int_equal(info.counts.inserted, 1);
    assert_int_equal(info.counts.updated, 1);
    assert_int_equal(info.counts.unchanged, 1);
    assert_string_equal(info.error, "");
    // A finished job's payload is dropped.
    assert_rv(bu_jobs_payload(w, ID1, &p, &n), BU_ENOENT);
    // RUNNING only moves a QUEUED job.
    assert_rv(bu_jobs_set_running(w, ID1, 4000), BU_OK);
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_int_equal(info.state, BU_JOB_COMPLETED);
    assert_int_equal(info.started_at_ms, 2000);

    // Finishing a job never marked running sets started_at too; the error
    // text is kept.
    assert_rv(bu_jobs_set_finished(w, ID2, BU_JOB_FAILED, &no_counts,
                  "stored request unreadable", 5000),
        BU_OK);
    assert_rv(bu_jobs_get(w, ID2, &info), BU_OK);
    assert_int_equal(info.state, BU_JOB_FAILED);
    assert_int_equal(info.started_at_ms, 5000);
    assert_int_equal(info.finished_at_ms, 5000);
    assert_int_equal(info.counts.total, 2);
    assert_string_equal(info.error, "stored request unreadable");
    bu_jobs_close(w);

    // It is all on disk: a reader opened afterwards sees it.
    struct bu_jobs *r = NULL;
    assert_rv(bu_jobs_open(&r, fx->qpath, BU_SQL_READER), BU_OK);
    assert_rv(bu_jobs_get(r, ID2, &info), BU_OK);
    assert_string_equal(info.error, "stored request unreadable");
    bu_jobs_close(r);
    bu_jobs_close(NULL);
}

static void
test_jobs_duplicates(void **state)
{
    struct fx *fx = *state;
    struct bu_jobs *w = NULL;
    int64_t seq = 0;
    struct bu_job_info info;

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_insert(w, ID1, "acme", "k", "x", 1, NULL, 1, 1, &seq),
        BU_OK);
    // Same (tenant, idem).
    seq = -7;
    assert_rv(bu_jobs_insert(w, ID2, "acme", "k", "x", 1, NULL, 1, 1, &seq),
        BU_EEXIST);
    assert_int_equal(seq, -7);
    assert_rv(bu_jobs_get(w, ID2, &info), BU_ENOENT);
    // Same job id.
    assert_rv(bu_jobs_insert(w, ID1, "acme", "k2", "x", 1, NULL, 1, 1, &seq),
        BU_EEXIST);
    // Same key, other tenant: a different job.
    assert_rv(bu_jobs_insert(w, ID3, "beta", "k", "x", 1, NULL, 1, 1, &seq),
        BU_OK);
    // No key: never a duplicate.
    assert_rv(bu_jobs_insert(w, ID4, "acme", NULL, "x", 1, NULL, 1, 1, &seq),
        BU_OK);
    assert_rv(bu_jobs_insert(w, ID5, "acme", NULL, "x", 1, NULL, 1, 1, &seq),
        BU_OK);
    assert_rv(bu_jobs_find_idem(w, "beta", "k", &info), BU_OK);
    assert_string_equal(info.job_id, ID3);

    // A failed insert inside a transaction leaves the transaction usable.
    assert_rv(bu_jobs_begin(w), BU_OK);
    assert_rv(bu_jobs_insert(w, ID1, "acme", NULL, "x", 1, NULL, 1, 1, &seq),
        BU_EEXIST);
    assert_rv(bu_jobs_set_running(w, ID4, 10), BU_OK);
    assert_rv(bu_jobs_commit(w), BU_OK);
    assert_rv(bu_jobs_get(w, ID4, &info), BU_OK);
    assert_int_equal(info.state, BU_JOB_RUNNING);
    bu_jobs_close(w);
}

// The payload is a row of its own: a claim leaves it alone, cancelling or
// finishing a job deletes it, and nothing else is left behind.
static void
test_jobs_payload_table(void **state)
{
    struct fx      *fx = *state;
    struct bu_jobs *w = NULL;
    int64_t         seq;
    static uint8_t  big[100 * 1024];
    uint8_t        *p = NULL;
    size_t          n = 0;

    memset(big, 'p', sizeof(big));
    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_insert(w, ID1, "acme", NULL, big, sizeof(big), NULL, 1,
                  1, &seq),
        BU_OK);
    assert_rv(bu_jobs_insert(w, ID2, "acme", NULL, "b", 1, NULL, 1, 2, &seq),
        BU_OK);
    assert_int_equal(peek_int(fx->qpath, "SELECT count(*) FROM payloads"), 2);
    assert_int_equal(
        peek_int(fx->qpath, "SELECT length(data) FROM payloads WHERE seq = 1"),
        sizeof(big));
    assert_rv(bu_jobs_claim(w, ID1, 5), BU_OK);
    assert_rv(bu_jobs_payload(w, ID1, &p, &n), BU_OK);
    assert_int_equal(n, sizeof(big));
    assert_memory_equal(p, big, sizeof(big));
    bu_free(p);
    assert_rv(bu_jobs_cancel(w, ID2, 6), BU_OK);
    assert_int_equal(peek_int(fx->qpath, "SELECT count(*) FROM payloads"), 1);
    assert_rv(bu_jobs_set_finished(w, ID1, BU_JOB_COMPLETED, &no_counts, NULL,
                  7),
        BU_OK);
    assert_int_equal(peek_int(fx->qpath, "SELECT count(*) FROM payloads"), 0);
    assert_rv(bu_jobs_payload(w, ID1, &p, &n), BU_ENOENT);
    // A duplicate leaves no payload row behind.
    assert_rv(bu_jobs_insert(w, ID1, "acme", NULL, "x", 1, NULL, 1, 8, &seq),
        BU_EEXIST);
    assert_int_equal(peek_int(fx->qpath, "SELECT count(*) FROM payloads"), 0);
    bu_jobs_close(w);
}

// A note says why an unfinished job waits; a new claim, and the job's end,
// take it away; a finished job takes no note.
static void
test_jobs_note(void **state)
{
    struct fx         *fx = *state;
    struct bu_jobs    *w = NULL;
    struct bu_job_info info;
    int64_t            seq;

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_insert(w, ID1, "acme", NULL, "a", 1, NULL, 1, 1, &seq),
        BU_OK);
    assert_rv(bu_jobs_claim(w, ID1, 2), BU_OK);
    assert_rv(bu_jobs_note(w, ID1, "waiting: disk full"), BU_OK);
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_int_equal(info.state, BU_JOB_RUNNING);
    assert_string_equal(info.error, "waiting: disk full");
    // Claimed again (the next try, or after a restart): the note stays
    // until the final state replaces it.
    assert_rv(bu_jobs_claim(w, ID1, 3), BU_OK);
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_string_equal(info.error, "waiting: disk full");
    assert_int_equal(info.started_at_ms, 2);
    assert_rv(bu_jobs_note(w, ID1, "waiting: locked"), BU_OK);
    assert_rv(bu_jobs_set_finished(w, ID1, BU_JOB_COMPLETED, &no_counts, NULL,
                  4),
        BU_OK);
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    assert_string_equal(info.error, "");
    assert_rv(bu_jobs_note(w, ID1, "late"), BU_ENOENT);
    assert_rv(bu_jobs_note(w, ID2, "unknown"), BU_ENOENT);
    bu_jobs_close(w);
}

// The oldest job of a tenant still QUEUED or RUNNING.
static void
test_jobs_oldest_unfinished(void **state)
{
    struct fx      *fx = *state;
    struct bu_jobs *w = NULL;
    int64_t         s1, s2, s3, got = -1;

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_oldest_unfinished(w, "acme", &got), BU_ENOENT);
    assert_rv(bu_jobs_insert(w, ID1, "acme", NULL, "a", 1, NULL, 1, 1, &s1),
        BU_OK);
    assert_rv(bu_jobs_insert(w, ID2, "beta", NULL, "b", 1, NULL, 1, 2, &s2),
        BU_OK);
    assert_rv(bu_jobs_insert(w, ID3, "acme", NULL, "c", 1, NULL, 1, 3, &s3),
        BU_OK);
    assert_rv(bu_jobs_oldest_unfinished(w, "acme", &got), BU_OK);
    assert_int_equal(got, s1);
    assert_rv(bu_jobs_claim(w, ID1, 4), BU_OK); // RUNNING still counts
    assert_rv(bu_jobs_oldest_unfinished(w, "acme", &got), BU_OK);
    assert_int_equal(got, s1);
    assert_rv(bu_jobs_set_finished(w, ID1, BU_JOB_COMPLETED, &no_counts, NULL,
                  5),
        BU_OK);
    assert_rv(bu_jobs_oldest_unfinished(w, "acme", &got), BU_OK);
    assert_int_equal(got, s3);
    assert_rv(bu_jobs_oldest_unfinished(w, "beta", &got), BU_OK);
    assert_int_equal(got, s2);
    assert_rv(bu_jobs_cancel(w, ID3, 6), BU_OK);
    assert_rv(bu_jobs_oldest_unfinished(w, "acme", &got), BU_ENOENT);
    bu_jobs_close(w);
}

// A queue.db of the first layout (the payload a column of jobs) is brought
// up to date on open: queued jobs keep their payloads, the column goes.
static void
test_jobs_migrates_payload_column(void **state)
{
    struct fx *fx = *state;
    sqlite3   *db = NULL;
    assert_int_equal(sqlite3_open(fx->qpath, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
            "CREATE TABLE jobs(seq INTEGER PRIMARY KEY,"
            " job_id TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, idem TEXT,"
            " state INTEGER NOT NULL, payload BLOB,"
            " accepted_at INTEGER NOT NULL,"
            " started_at INTEGER NOT NULL DEFAULT 0,"
            " finished_at INTEGER NOT NULL DEFAULT 0,"
            " total INTEGER NOT NULL DEFAULT 0,"
            " inserted INTEGER NOT NULL DEFAULT 0,"
            " updated INTEGER NOT NULL DEFAULT 0,"
            " unchanged INTEGER NOT NULL DEFAULT 0,"
            " superseded INTEGER NOT NULL DEFAULT 0,"
            " not_found INTEGER NOT NULL DEFAULT 0,"
            " failed INTEGER NOT NULL DEFAULT 0, error TEXT, digest BLOB);"
            "INSERT INTO jobs(job_id, tenant, state, payload, accepted_at,"
            " total) VALUES('" ID1 "', 'acme', 1, x'616263', 1, 3),"
            " ('" ID2 "', 'acme', 3, NULL, 2, 1);",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    struct bu_jobs *w = NULL;
    uint8_t        *p = NULL;
    size_t          n = 0;
    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_payload(w, ID1, &p, &n), BU_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    bu_free(p);
    assert_rv(bu_jobs_payload(w, ID2, &p, &n), BU_ENOENT);
    assert_int_equal(peek_int(fx->qpath,
                         "SELECT count(*) FROM pragma_table_info('jobs')"
                         " WHERE name = 'payload'"),
        0);
    // New jobs go on after the old ones.
    int64_t seq = 0;
    assert_rv(bu_jobs_insert(w, ID3, "acme", NULL, "d", 1, NULL, 1, 3, &seq),
        BU_OK);
    assert_int_equal(seq, 3);
    bu_jobs_close(w);
    // Opening again finds nothing to move.
    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_payload(w, ID1, &p, &n), BU_OK);
    bu_free(p);
    bu_jobs_close(w);
}

struct walk {
    int64_t seqs[16];
    char ids[16][BU_JOB_ID_SIZE];
    int states[16];
    size_t n;
    size_t stop_after; // 0: never
};

static int
walk_fn(void *arg, const struct bu_job_info *info)
{
    struct walk *wk = arg;
    if (wk->n < NELEM(wk->seqs)) {
        wk->seqs[wk->n] = info->seq;
        snprintf(wk->ids[wk->n], BU_JOB_ID_SIZE, "%s", info->job_id);
        wk->states[wk->n] = info->state;
    }
    wk->n++;
    return wk->stop_after != 0 && wk->n == wk->stop_after ? BU_EFULL : BU_OK;
}


// With checkpoints deferred, commits leave every frame in the WAL, past
// SQLite's usual 1000-page point; a checkpoint from a second connection
// copies them all into the database.
static void
test_jobs_deferred_checkpoint(void **state)
{
    struct fx      *fx = *state;
    struct bu_jobs *w = NULL, *c = NULL;
    int64_t         seq;
    static uint8_t  payload[64 * 1024];
    char            id[40];

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_defer_checkpoints(w), BU_OK);
    assert_rv(bu_jobs_open(&c, fx->qpath, BU_SQL_WRITER), BU_OK);
    // 80 jobs of 64 KiB: some 1300 pages, one commit each.
    for (int i = 0; i < 80; i++) {
        snprintf(id, sizeof(id), "0190b7c4-5a4e-7c1d-9b7e-%012d", i);
        payload[0] = (uint8_t) i;
        assert_rv(bu_jobs_insert(w, id, "acme", NULL, payload,
                      sizeof(payload), NULL, 1, i, &seq),
            BU_OK);
    }
    int frames = 0, done = -1;
    // Had a commit checkpointed, the WAL would have started over and hold
    // far fewer frames.
    assert_rv(bu_jobs_checkpoint(c, &frames, &done), BU_OK);
    assert_true(frames > 1000);
    assert_int_equal(done, frames);
    bu_jobs_close(c);
    bu_jobs_close(w);
}

static void
test_jobs_each_unfinished(void **state)
{
    struct fx *fx = *state;
    struct bu_jobs *w = NULL;
    int64_t seq;
    static const char *ids[] = { ID1, ID2, ID3, ID4, ID5 };

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    struct walk wk = { 0 };
    assert_rv(bu_jobs_each_unfinished(w, walk_fn, &wk), BU_OK);
    assert_int_equal(wk.n, 0);

    // Inserted out of id order, across two tenants: seq is the order.
    static const int order[] = { 4, 0, 3, 1, 2 };
    for (size_t i = 0; i < NELEM(order); i++) {
        assert_rv(bu_jobs_insert(w, ids[order[i]], i % 2 ? "beta" : "acme",
                      NULL, "p", 1, NULL, 1, (int64_t) i, &seq),
            BU_OK);
    }
    assert_rv(bu_jobs_set_running(w, ids[3], 5), BU_OK);
    assert_rv(bu_jobs_set_finished(w, ids[0], BU_JOB_COMPLETED, &no_counts,
                  NULL, 6),
        BU_OK);
    assert_rv(bu_jobs_set_finished(w, ids[2], BU_JOB_CANCELLED, &no_counts,
                  NULL, 6),
        BU_OK);

    memset(&wk, 0, sizeof(wk));
    assert_rv(bu_jobs_each_unfinished(w, walk_fn, &wk), BU_OK);
    assert_int_equal(wk.n, 3);
    assert_int_equal(wk.seqs[0], 1);
    assert_string_equal(wk.ids[0], ID5);
    assert_int_equal(wk.states[0], BU_JOB_QUEUED);
    assert_int_equal(wk.seqs[1], 3);
    assert_string_equal(wk.ids[1], ID4);
    assert_int_equal(wk.states[1], BU_JOB_RUNNING);
    assert_int_equal(wk.seqs[2], 4);
    assert_string_equal(wk.ids[2], ID2);

    // A non-zero return stops the walk and is what the walk returns; the
    // statement is reset, so the next walk starts from the top.
    memset(&wk, 0, sizeof(wk));
    wk.stop_after = 2;
    assert_rv(bu_jobs_each_unfinished(w, walk_fn, &wk), BU_EFULL);
    assert_int_equal(wk.n, 2);
    memset(&wk, 0, sizeof(wk));
    assert_rv(bu_jobs_each_unfinished(w, walk_fn, &wk), BU_OK);
    assert_int_equal(wk.n, 3);
    bu_jobs_close(w);

    assert_false(bu_job_state_final(BU_JOB_QUEUED));
    assert_false(bu_job_state_final(BU_JOB_RUNNING));
    assert_true(bu_job_state_final(BU_JOB_COMPLETED));
    assert_true(bu_job_state_final(BU_JOB_COMPLETED_WITH_ERRORS));
    assert_true(bu_job_state_final(BU_JOB_FAILED));
    assert_true(bu_job_state_final(BU_JOB_CANCELLED));
}

static void
test_jobs_reader_isolation(void **state)
{
    struct fx *fx = *state;
    struct bu_jobs *w = NULL, *r = NULL;
    struct bu_job_info info;
    int64_t seq;

    assert_rv(bu_jobs_open(&w, fx->qpath, BU_SQL_WRITER), BU_OK);
    assert_rv(bu_jobs_open(&r, fx->qpath, BU_SQL_READER), BU_OK);

    assert_rv(bu_jobs_begin(w), BU_OK);
    assert_rv(bu_jobs_insert(w, ID1, "acme", "k", "abc", 3, NULL, 1, 1, &seq),
        BU_OK);
    // The writer sees its own transaction...
    assert_rv(bu_jobs_get(w, ID1, &info), BU_OK);
    // ...a reader does not, by any path.
    assert_rv(bu_jobs_get(r, ID1, &info), BU_ENOENT);
    assert_rv(bu_jobs_find_idem(r, "acme", "k", &info), BU_ENOENT);
    uint8_t *p = NULL;
    size_t n = 0;
    assert_rv(bu_jobs_payload(r, ID1, &p, &n), BU_ENOENT);
    struct walk wk = { 0 };
    assert_rv(bu_jobs_each_unfinished(r, walk_fn, &wk), BU_OK);
    assert_int_equal(wk.n, 0);
    assert_rv(bu_jobs_commit(w), BU_OK);
    assert_rv(bu_jobs_get(r, ID1, &info), BU_OK);
    assert_rv(bu_jobs_payload(r, ID1, &p, &n), BU_OK);
    assert_int_equal(n, 3);
    bu_free(p);

    // A rolled-back insert is gone for everyone.
    assert_rv(bu_jobs_begin(w), BU_OK);
    assert_rv(bu_jobs_insert(w, ID2, "acme", NULL, "x", 1, NULL, 1, 1, &seq),
        BU_OK);
    bu_jobs_rollback(w);
    assert_rv(bu_jobs_get(w, ID2, &info), BU_ENOENT);
    assert_rv(bu_jobs_get(r, ID2, &info), BU_ENOENT);
    // Rolling back outside a transaction is harmless.
    bu_jobs_rollback(w);

    // Readers never write.
    assert_true(bu_jobs_insert(r, ID3, "acme", NULL, "x", 1, NULL, 1, 1, &seq) !=
        BU_OK);
    assert_rv(bu_jobs_get(w, ID3, &info), BU_ENOENT);
    bu_jobs_close(r);
    bu_jobs_close(w);
}

static void
test_jobs_reader_missing(void **state)
{
    struct fx *fx = *state;
    struct bu_jobs *r = (struct bu_jobs *) &r;
    char path[160];

    assert_rv(bu_jobs_open(&r, fx->qpath, BU_SQL_READER), BU_ENOENT);
    // *jobsp is written only on success.
    assert_ptr_equal(r, (struct bu_jobs *) &r);
    snprintf(path, sizeof(path), "%s/no/such/dir/queue.db", fx->dir);
    assert_rv(bu_jobs_open(&r, path, BU_SQL_READER), BU_ENOENT);
    // A writer cannot create a file in a missing directory.
    assert_true(bu_jobs_open(&r, path, BU_SQL_WRITER) != BU_OK);
    // A file that is not a database.
    FILE *f = fopen(fx->qpath, "w");
    assert_non_null(f);
    fputs("this is not an SQLite database, just some text padding it out "
          "to more than a header's worth of bytes................",
        f);
    fclose(f);
    assert_true(bu_jobs_open(&r, fx->qpath, BU_SQL_WRITER) != BU_OK);
    assert_ptr_equal(r, (struct bu_jobs *) &r);
}

// ---- tenant databases ----

static struct bu_cell
T(const char *s)
{
    return (struct bu_cell) { .kind = BU_CELL_TEXT, .text = s,
        .len = strlen(s) };
}

static struct bu_cell
I(long long i)
{
    return (struct bu_cell) { .kind = BU_CELL_INT, .i = i };
}

static const struct bu_cell CU = { .kind = BU_CELL_UNSET };
static const struct bu_cell CN = { .kind = BU_CELL_NULL };

// resolve maps column names to schema indexes.
static void
resolve(const struct bu_schema *schema, const char *const *names, size_t n,
    int *cols)
{
    for (size_t i = 0; i < n; i++) {
        cols[i] = bu_schema_find(schema, names[i]);
        if (cols[i] < 0) {
            fail_msg("unknown column %s", names[i]);
        }
    }
}

// upsert1 writes one record in its own transaction and returns the outcome.
static enum bu_upsert_outcome
upsert1(struct bu_tenant_db *db, const struct bu_schema *schema,
    const int *cols, size_t ncols, const struct bu_cell *cells,
    int insert_missing)
{
    enum bu_upsert_outcome out = 0;
    assert_rv(bu_tenant_db_begin(db), BU_OK);
    assert_rv(bu_tenant_db_upsert(db, schema, cols, ncols, cells,
                  insert_missing, &out),
        BU_OK);
    assert_rv(bu_tenant_db_commit(db), BU_OK);
    return out;
}

// field returns column col of the row with contact_key key, "<null>" for
// SQL NULL and "<none>" when the row does not exist.
static const char *
field(struct fx *fx, const char *key, const char *col)
{
    static char buf[512];
    char sql[256];
    snprintf(sql, sizeof(sql),
        "SELECT \"%s\" FROM master_contact WHERE contact_key = '%s'", col,
        key);
    int rc = peek_text(fx->tpath, sql, buf, sizeof(buf));
    return rc == 1 ? buf : rc == 0 ? "<null>" : "<none>";
}

static long long
nrows(struct fx *fx)
{
    return peek_int(fx->tpath, "SELECT count(*) FROM master_contact");
}

static void
test_tenant_schema(void **state)
{
    struct fx *fx = *state;
    struct bu_tenant_db *db = NULL;
    struct bu_schema *got = calloc(1, sizeof(*got));
    struct bu_schema *want = calloc(1, sizeof(*want));
    struct stat st;

    assert_non_null(got);
    assert_non_null(want);
    // No database yet: a reader gets ENOENT and creates nothing.
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_READER),
        BU_ENOENT);
    assert_int_equal(stat(fx->tpath, &st), -1);

    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_int_equal(stat(fx->tpath, &st), 0);
    assert_rv(bu_tenant_db_schema(db, got), BU_OK);
    bu_schema_standard(want);
    assert_int_equal(got->ncols, 13);
    assert_int_equal(want->ncols, 13);
    assert_string_equal(got->cols[0].name, "contact_key");
    for (size_t i = 0; i < got->ncols; i++) {
        const struct bu_column *g = &got->cols[i];
        const struct bu_column *w = &want->cols[i];
        assert_string_equal(g->name, w->name);
        assert_int_equal(g->type, w->type);
        assert_int_equal(g->max_len, w->max_len);
        assert_string_equal(g->allowed, w->allowed);
        assert_int_equal(g->nullable, w->nullable);
        assert_int_equal(g->has_default, w->has_default);
        assert_string_equal(g->default_value, w->default_value);
        assert_int_equal(g->custom, w->custom);
        assert_int_equal(g->import_enabled, w->import_enabled);
    }
    static const char *const names[] = { "contact_key", "contact_status",
        "email", "email_permission", "email_status", "gsm", "gsm_permission",
        "gsm_status", "name", "surname", "gender", "birth_date",
        "subscription_start_date" };
    for (size_t i = 0; i < NELEM(names); i++) {
        assert_string_equal(got->cols[i].name, names[i]);
    }
    bu_tenant_db_close(db);

    // Opening again finds the schema as it was (no duplicate columns).
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_rv(bu_tenant_db_schema(db, got), BU_OK);
    assert_int_equal(got->ncols, 13);
    bu_tenant_db_close(db);
    // And a reader now opens it and reads the same.
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_READER), BU_OK);
    assert_rv(bu_tenant_db_schema(db, got), BU_OK);
    assert_int_equal(got->ncols, 13);
    bu_tenant_db_close(db);
    bu_tenant_db_close(NULL);
    free(got);
    free(want);
}

static void
test_tenant_upsert_outcomes(void **state)
{
    struct fx *fx = *state;
    struct bu_tenant_db *db = NULL;
    struct bu_schema *schema = calloc(1, sizeof(*schema));
    static const char *const names[] = { "contact_key", "name", "email" };
    int cols[3];

    assert_non_null(schema);
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_rv(bu_tenant_db_schema(db, schema), BU_OK);
    resolve(schema, names, 3, cols);

    struct bu_cell c1[] = { T("k1"), T("Ada"), T("ada@example.com") };
    assert_int_equal(upsert1(db, schema, cols, 3, c1, 1), BU_UPSERT_INSERTED);
    assert_string_equal(field(fx, "k1", "name"), "Ada");
    // The same values again.
    assert_int_equal(upsert1(db, schema, cols, 3, c1, 1),
        BU_UPSERT_UNCHANGED);
    // Unset cells compare equal to anything.
    struct bu_cell c2[] = { T("k1"), T("Ada"), CU };
    assert_int_equal(upsert1(db, schema, cols, 3, c2, 1),
        BU_UPSERT_UNCHANGED);
    // A changed cell; the unset one keeps its stored value.
    struct bu_cell c3[] = { T("k1"), T("Grace"), CU };
    assert_int_equal(upsert1(db, schema, cols, 3, c3, 1), BU_UPSERT_UPDATED);
    assert_string_equal(field(fx, "k1", "name"), "Grace");
    assert_string_equal(field(fx, "k1", "email"), "ada@example.com");
    // Comparison is exact (bytes), not case-folded.
    struct bu_cell c4[] = { T("k1"), T("grace"), CU };
    assert_int_equal(upsert1(db, schema, cols, 3, c4, 1), BU_UPSERT_UPDATED);
    // A prefix of the stored text is a change too.
    struct bu_cell c5[] = { T("k1"), T("gra"), CU };
    assert_int_equal(upsert1(db, schema, cols, 3, c5, 1), BU_UPSERT_UPDATED);
    assert_string_equal(field(fx, "k1", "name"), "gra");
    // Missing key without insert_missing: NOT_FOUND and nothing written.
    struct bu_cell c6[] = { T("k2"), T("Bob"), CU };
    assert_int_equal(upsert1(db, schema, cols, 3, c6, 0),
        BU_UPSERT_NOT_FOUND);
    assert_string_equal(field(fx, "k2", "name"), "<none>");
    assert_int_equal(nrows(fx), 1);
    // An existing key without insert_missing still updates.
    struct bu_cell c7[] = { T("k1"), T("Ada"), CU };
    assert_int_equal(upsert1(db, schema, cols, 3, c7, 0), BU_UPSERT_UPDATED);

    // A record of contact_key alone: inserts, then can only be unchanged.
    int keyonly = cols[0];
    struct bu_cell k3[] = { T("k3") };
    assert_int_equal(upsert1(db, schema, &keyonly, 1, k3, 1),
        BU_UPSERT_INSERTED);
    assert_int_equal(upsert1(db, schema, &keyonly, 1, k3, 1),
        BU_UPSERT_UNCHANGED);
    struct bu_cell k1[] = { T("k1") };
    assert_int_equal(upsert1(db, schema, &keyonly, 1, k1, 0),
        BU_UPSERT_UNCHANGED);
    assert_int_equal(nrows(fx), 2);

    // The cell order of a column set need not be the table's.
    static const char *const rev[] = { "email", "name", "contact_key" };
    int rcols[3];
    resolve(schema, rev, 3, rcols);
    struct bu_cell r1[] = { T("z@example.com"), T("Zed"), T("k1") };
    assert_int_equal(upsert1(db, schema, rcols, 3, r1, 1),
        BU_UPSERT_UPDATED);
    assert_string_equal(field(fx, "k1", "email"), "z@example.com");
    assert_string_equal(field(fx, "k1", "name"), "Zed");

    // The contact_key cell must be text.
    enum bu_upsert_outcome out = 0;
    struct bu_cell bad[] = { CU, T("x"), CU };
    assert_rv(bu_tenant_db_begin(db), BU_OK);
    assert_rv(bu_tenant_db_upsert(db, schema, cols, 3, bad, 1, &out),
        BU_EINVAL);
    bu_tenant_db_rollback(db);
    bu_tenant_db_close(db);
    free(schema);
}

// More column sets than the statement cache holds, twice over, so entries
// are evicted and rebuilt while the data stays right.
static void
test_tenant_colset_cache(void **state)
{
    struct fx *fx = *state;
    struct bu_tenant_db *db = NULL;
    struct bu_schema *schema = calloc(1, sizeof(*schema));

    assert_non_null(schema);
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_rv(bu_tenant_db_schema(db, schema), BU_OK);
    static const char *const texts[] = { "name", "surname", "gender" };
    for (int round = 0; round < 2; round++) {
        assert_rv(bu_tenant_db_begin(db), BU_OK);
        for (size_t c = 1; c < schema->ncols; c++) {
            for (size_t t = 0; t < NELEM(texts); t++) {
                int cols[3] = { 0, (int) c,
                    bu_schema_find(schema, texts[t]) };
                if (cols[2] == cols[1]) {
                    continue;
                }
                char val[32];
                snprintf(val, sizeof(val), "r%d-c%zu-t%zu", round, c, t);
                struct bu_cell cells[3] = { T("k1"), CU, T(val) };
                enum bu_upsert_outcome out = 0;
                assert_rv(bu_tenant_db_upsert(db, schema, cols, 3, cells, 1,
                              &out),
                    BU_OK);
                assert_int_equal(out, round == 0 && c == 1 && t == 0
                        ? BU_UPSERT_INSERTED
                        : BU_UPSERT_UPDATED);
            }
        }
        assert_rv(bu_tenant_db_commit(db), BU_OK);
    }
    assert_string_equal(field(fx, "k1", "gender"), "r1-c12-t2");
    assert_int_equal(nrows(fx), 1);
    bu_tenant_db_close(db);
    free(schema);
}

static void
test_tenant_defaults_and_unset(void **state)
{
    struct fx *fx = *state;
    struct bu_tenant_db *db = NULL;
    struct bu_schema *schema = calloc(1, sizeof(*schema));
    static const char *const names[] = { "contact_key", "name",
        "contact_status", "email_permission", "gender", "birth_date" };
    int cols[6];

    assert_non_null(schema);
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_rv(bu_tenant_db_schema(db, schema), BU_OK);
    resolve(schema, names, 6, cols);

    // Insert with every provided column unset: each takes its default, and
    // so do the columns not in the request at all.
    struct bu_cell c1[] = { T("k1"), CU, CU, CU, CU, CU };
    assert_int_equal(upsert1(db, schema, cols, 6, c1, 1), BU_UPSERT_INSERTED);
    assert_string_equal(field(fx, "k1", "name"), "");
    assert_string_equal(field(fx, "k1", "contact_status"), "A");
    assert_string_equal(field(fx, "k1", "email_permission"), "1");
    assert_string_equal(field(fx, "k1", "gender"), "<null>");
    assert_string_equal(field(fx, "k1", "birth_date"), "<null>");
    assert_string_equal(field(fx, "k1", "email"), "");
    assert_string_equal(field(fx, "k1", "email_status"), "A");
    assert_string_equal(field(fx, "k1", "gsm"), "");
    assert_string_equal(field(fx, "k1", "gsm_permission"), "1");
    assert_string_equal(field(fx, "k1", "gsm_status"), "A");
    assert_string_equal(field(fx, "k1", "surname"), "");
    assert_string_equal(field(fx, "k1", "subscription_start_date"),
        "<null>");
    assert_int_equal(peek_int(fx->tpath,
                         "SELECT typeof(email_permission) = 'integer'"
                         " FROM master_contact WHERE contact_key = 'k1'"),
        1);
    // Re-sending the defaults changes nothing.
    struct bu_cell c1b[] = { T("k1"), T(""), T("A"), I(1), CN, CN };
    assert_int_equal(upsert1(db, schema, cols, 6, c1b, 1),
        BU_UPSERT_UNCHANGED);

    // Set values...
    struct bu_cell c2[] = { T("k1"), T("Ada"), T("P"), I(0), T("f"),
        T("1990-05-17") };
    assert_int_equal(upsert1(db, schema, cols, 6, c2, 1), BU_UPSERT_UPDATED);
    // ...then update one column; unset cells keep what is stored.
    struct bu_cell c3[] = { T("k1"), CU, CU, CU, CU, T("1991-01-01") };
    assert_int_equal(upsert1(db, schema, cols, 6, c3, 1), BU_UPSERT_UPDATED);
    assert_string_equal(field(fx, "k1", "name"), "Ada");
    assert_string_equal(field(fx, "k1", "contact_status"), "P");
    assert_string_equal(field(fx, "k1", "email_permission"), "0");
    assert_string_equal(field(fx, "k1", "gender"), "f");
    assert_string_equal(field(fx, "k1", "birth_date"), "1991-01-01");

    // NULL cells store NULL, and NULL equals NULL.
    struct bu_cell c4[] = { T("k1"), CU, CU, CU, CN, CN };
    assert_int_equal(upsert1(db, schema, cols, 6, c4, 1), BU_UPSERT_UPDATED);
    assert_string_equal(field(fx, "k1", "gender"), "<null>");
    assert_string_equal(field(fx, "k1", "birth_date"), "<null>");
    assert_string_equal(field(fx, "k1", "name"), "Ada");
    assert_int_equal(upsert1(db, schema, cols, 6, c4, 1),
        BU_UPSERT_UNCHANGED);
    // Text and NULL differ both ways.
    struct bu_cell c5[] = { T("k1"), CU, CU, CU, T(""), CU };
    assert_int_equal(upsert1(db, schema, cols, 6, c5, 1), BU_UPSERT_UPDATED);
    assert_string_equal(field(fx, "k1", "gender"), "");

    // Insert with NULLs and explicit values.
    struct bu_cell c6[] = { T("k2"), T("Bob"), T("P"), I(0), CN, CN };
    assert_int_equal(upsert1(db, schema, cols, 6, c6, 1), BU_UPSERT_INSERTED);
    assert_string_equal(field(fx, "k2", "contact_status"), "P");
    assert_string_equal(field(fx, "k2", "email_permission"), "0");
    assert_string_equal(field(fx, "k2", "gender"), "<null>");
    bu_tenant_db_close(db);
    free(schema);
}

static void
test_tenant_applied_roundtrip(void **state)
{
    struct fx *fx = *state;
    struct bu_tenant_db *db = NULL, *rd = NULL;
    struct bu_job_counts c = { .total = 9, .inserted = 1, .updated = 2,
        .unchanged = 3, .superseded = 1, .not_found = 1, .failed = 1 };
    struct bu_job_counts got;
    uint8_t *blob = NULL;
    size_t n = 0;

    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_rv(bu_tenant_db_open(&rd, fx->dir, "acme", BU_SQL_READER), BU_OK);
    assert_rv(bu_tenant_db_applied(db, ID1, &got), BU_ENOENT);
    assert_rv(bu_tenant_db_results(db, ID1, &blob, &n), BU_ENOENT);

    assert_rv(bu_tenant_db_begin(db), BU_OK);
    assert_rv(bu_tenant_db_mark_applied(db, ID1, 7, &c, "\x0a\x00xyz", 5),
        BU_OK);
    // Not visible to a reader before the commit.
    assert_rv(bu_tenant_db_applied(rd, ID1, &got), BU_ENOENT);
    assert_rv(bu_tenant_db_commit(db), BU_OK);

    memset(&got, 0xff, sizeof(got));
    assert_rv(bu_tenant_db_applied(rd, ID1, &got), BU_OK);
    assert_memory_equal(&got, &c, sizeof(c));
    assert_rv(bu_tenant_db_results(rd, ID1, &blob, &n), BU_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(blob, "\x0a\x00xyz", 5);
    bu_free(blob);
    assert_int_equal(peek_int(fx->tpath,
                         "SELECT seq FROM applied_jobs WHERE job_id = '" ID1
                         "'"),
        7);

    // Empty results are stored as an empty blob, not refused.
    assert_rv(bu_tenant_db_begin(db), BU_OK);
    assert_rv(bu_tenant_db_mark_applied(db, ID2, 8, &c, NULL, 0), BU_OK);
    // A job is marked once.
    assert_rv(bu_tenant_db_mark_applied(db, ID1, 9, &c, "z", 1), BU_EEXIST);
    assert_rv(bu_tenant_db_commit(db), BU_OK);
    blob = NULL;
    assert_rv(bu_tenant_db_results(db, ID2, &blob, &n), BU_OK);
    assert_int_equal(n, 0);
    bu_free(blob);
    assert_rv(bu_tenant_db_results(db, ID3, &blob, &n), BU_ENOENT);
    assert_int_equal(peek_int(fx->tpath,
                         "SELECT seq FROM applied_jobs WHERE job_id = '" ID1
                         "'"),
        7);
    bu_tenant_db_close(rd);
    bu_tenant_db_close(db);
}

static void
test_tenant_rollback(void **state)
{
    struct fx *fx = *state;
    struct bu_tenant_db *db = NULL;
    struct bu_schema *schema = calloc(1, sizeof(*schema));
    static const char *const names[] = { "contact_key", "name" };
    int cols[2];
    struct bu_job_counts c = { .total = 2, .inserted = 1, .updated = 1 };
    struct bu_job_counts got;
    enum bu_upsert_outcome out = 0;

    assert_non_null(schema);
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    assert_rv(bu_tenant_db_schema(db, schema), BU_OK);
    resolve(schema, names, 2, cols);
    struct bu_cell keep[] = { T("k0"), T("kept") };
    assert_int_equal(upsert1(db, schema, cols, 2, keep, 1),
        BU_UPSERT_INSERTED);

    assert_rv(bu_tenant_db_begin(db), BU_OK);
    struct bu_cell c1[] = { T("k9"), T("gone") };
    assert_rv(bu_tenant_db_upsert(db, schema, cols, 2, c1, 1, &out), BU_OK);
    assert_int_equal(out, BU_UPSERT_INSERTED);
    struct bu_cell c2[] = { T("k0"), T("changed") };
    assert_rv(bu_tenant_db_upsert(db, schema, cols, 2, c2, 1, &out), BU_OK);
    assert_int_equal(out, BU_UPSERT_UPDATED);
    assert_rv(bu_tenant_db_mark_applied(db, ID1, 1, &c, "r", 1), BU_OK);
    bu_tenant_db_rollback(db);

    assert_rv(bu_tenant_db_applied(db, ID1, &got), BU_ENOENT);
    assert_string_equal(field(fx, "k9", "name"), "<none>");
    assert_string_equal(field(fx, "k0", "name"), "kept");
    assert_int_equal(nrows(fx), 1);
    // Harmless outside a transaction; the handle stays usable.
    bu_tenant_db_rollback(db);
    assert_int_equal(upsert1(db, schema, cols, 2, c1, 1),
        BU_UPSERT_INSERTED);
    bu_tenant_db_close(db);
    free(schema);
}

// ---- the checkpointer ----

// ckpt_fill commits one transaction of rows 4000-byte blobs: a page each,
// so a little over rows frames in the WAL.
static void
ckpt_fill(sqlite3 *db, int rows)
{
    static uint8_t blob[4000];
    sqlite3_stmt  *st = NULL;
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO t(b) VALUES(?1)", -1, &st, NULL),
        SQLITE_OK);
    for (int i = 0; i < rows; i++) {
        blob[0] = (uint8_t) i;
        sqlite3_bind_blob(st, 1, blob, sizeof(blob), SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
}

static long long
ckpt_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long) st.st_size : -1;
}

// ckpt_wait waits (up to 30 s) until cp has run want checkpoints.
static void
ckpt_wait(struct bu_checkpointer *cp, uint64_t want)
{
    for (int i = 0; i < 30000 && bu_checkpointer_completed(cp) < want; i++) {
        struct timespec ts = { 0, 1000000L };
        nanosleep(&ts, NULL);
    }
    assert_true(bu_checkpointer_completed(cp) >= want);
}

static sqlite3 *
ckpt_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_rv(bu_sql_open(&db, path, BU_SQL_WRITER), BU_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(b BLOB)", NULL, NULL,
                         NULL),
        SQLITE_OK);
    return db;
}

// Commits past wal_frames are copied back by the thread, each checkpoint
// whole, and the writer waits for it before its next transaction, so every
// next commit starts the WAL over: it never holds much more than one commit. (SQLite's own autocheckpoint, 1000 frames by default,
// would let it reach about 1000.)
static void
test_checkpointer_copies_in_background(void **state)
{
    struct fx              *fx = *state;
    struct bu_checkpointer *cp = NULL;
    char                    path[160], wal[170];

    snprintf(path, sizeof(path), "%s/c.db", fx->dir);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    assert_rv(bu_checkpointer_start(&cp, 100), BU_OK);
    sqlite3 *db = ckpt_open(path);
    bu_checkpointer_attach(cp, db);
    for (uint64_t round = 1; round <= 20; round++) {
        ckpt_fill(db, 150);
        // What a writer does before its next transaction.
        bu_checkpointer_wait(cp, sqlite3_db_filename(db, "main"));
        assert_int_equal(bu_checkpointer_completed(cp), round);
    }
    assert_true(ckpt_file_size(wal) < 400LL * (4096 + 24));
    // Every row is in the database file itself.
    assert_true(ckpt_file_size(path) >= 20LL * 150 * 4096);
    sqlite3_close(db);
    bu_checkpointer_free(cp);
}

// A stopped checkpointer takes no requests: the commit checkpoints itself,
// so the pages are in the database file when it returns.
static void
test_checkpointer_stopped_copies_inline(void **state)
{
    struct fx              *fx = *state;
    struct bu_checkpointer *cp = NULL;
    char                    path[160];

    snprintf(path, sizeof(path), "%s/c.db", fx->dir);
    assert_rv(bu_checkpointer_start(&cp, 100), BU_OK);
    sqlite3 *db = ckpt_open(path);
    bu_checkpointer_attach(cp, db);
    bu_checkpointer_stop(cp);
    long long before = ckpt_file_size(path);
    ckpt_fill(db, 150);
    assert_true(ckpt_file_size(path) >= before + 150LL * 4096);
    assert_int_equal(bu_checkpointer_completed(cp), 0);
    sqlite3_close(db);
    bu_checkpointer_free(cp);
}

static void
test_checkpointer_bad_config(void **state)
{
    (void) state;
    struct bu_checkpointer *cp = NULL;
    assert_rv(bu_checkpointer_start(&cp, 0), BU_EINVAL);
    assert_rv(bu_checkpointer_start(&cp, -1), BU_EINVAL);
    assert_null(cp);
}

// A tenant database handed to a checkpointer asks it for its checkpoints.
static void
test_tenant_checkpoint_with(void **state)
{
    struct fx              *fx = *state;
    struct bu_checkpointer *cp = NULL;
    struct bu_tenant_db    *db = NULL;
    struct bu_schema       *schema = calloc(1, sizeof(*schema));

    assert_non_null(schema);
    assert_rv(bu_checkpointer_start(&cp, 50), BU_OK);
    assert_rv(bu_tenant_db_open(&db, fx->dir, "acme", BU_SQL_WRITER), BU_OK);
    bu_tenant_db_checkpoint_with(db, cp);
    assert_rv(bu_tenant_db_schema(db, schema), BU_OK);
    int cols[2] = { 0, bu_schema_find(schema, "name") };
    assert_rv(bu_tenant_db_begin(db), BU_OK);
    for (int i = 0; i < 5000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key-%d", i);
        struct bu_cell         cells[2] = { T(key), T("a name") };
        enum bu_upsert_outcome out = 0;
        assert_rv(bu_tenant_db_upsert(db, schema, cols, 2, cells, 1, &out),
            BU_OK);
    }
    assert_rv(bu_tenant_db_commit(db), BU_OK);
    ckpt_wait(cp, 1);
    assert_int_equal(nrows(fx), 5000);
    bu_tenant_db_close(db);
    bu_checkpointer_free(cp);
    free(schema);
}

struct race_opener {
    const char        *dir;
    pthread_barrier_t *start;
    int                failures;
};

static void *
race_opener_main(void *arg)
{
    struct race_opener *o = arg;
    char                path[200];
    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "%s/race-%d.db", o->dir, i);
        pthread_barrier_wait(o->start);
        sqlite3 *db = NULL;
        if (bu_sql_open(&db, path, BU_SQL_WRITER) != BU_OK) {
            o->failures++;
            continue;
        }
        sqlite3_close(db);
    }
    return NULL;
}

// Two writers that open a new file at the same moment (a worker and a
// handler on a tenant's first request) both get it: SQLite answers the
// second one's WAL pragma with SQLITE_BUSY at once, without its busy
// handler, about one time in twenty here.
static void
test_sql_open_race(void **state)
{
    struct fx         *fx = *state;
    pthread_barrier_t  start;
    struct race_opener o[2] = { { fx->dir, &start, 0 },
        { fx->dir, &start, 0 } };
    pthread_t          t[2];

    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            pthread_create(&t[i], NULL, race_opener_main, &o[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(o[0].failures + o[1].failures, 0);
}

// SQLite's writes start the kernel's writeback early: a transaction that
// writes 12 MiB of pages has the thread kick it (every 4 MiB written
// through the WAL's descriptor; kicks due before the thread gets to them
// count once), and the rows read back.
static void
test_writeback_kicks(void **state)
{
    struct fx *fx = *state;
    char       path[160];

    assert_rv(bu_writeback_install(), BU_OK);
    snprintf(path, sizeof(path), "%s/w.db", fx->dir);
    sqlite3 *db = ckpt_open(path);
    uint64_t before = bu_writeback_kicks();
    ckpt_fill(db, 3 * 1024); // 3072 rows of a 4000-byte blob
    for (int i = 0; i < 1000 && bu_writeback_kicks() == before; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_true(bu_writeback_kicks() > before);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1,
                         &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3 * 1024);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

// This program's path (argv[0]), to start it again as a probe.
static const char *store_test_path = "/proc/self/exe";

// close_probe is what this program does when started as
// "store_test --close-probe PATH": open PATH, read it, close it. A close
// that finds no other process holding the file checkpoints it and deletes
// its WAL.
static int
close_probe(const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : 1;
}

// Closing one connection keeps the locks of the process's other
// connections to the same file (POSIX locks belong to the process and
// file, and closing any descriptor of the file drops them all; SQLite
// defers such closes, and nothing here may open a descriptor of its own).
// While a connection is open, another process's close must leave the WAL
// alone.
static void
test_close_keeps_other_locks(void **state)
{
    struct fx *fx = *state;
    char       path[160], wal[170];

    assert_rv(bu_writeback_install(), BU_OK);
    snprintf(path, sizeof(path), "%s/l.db", fx->dir);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    sqlite3 *keep = ckpt_open(path);
    ckpt_fill(keep, 8);
    sqlite3 *other = NULL;
    assert_rv(bu_sql_open(&other, path, BU_SQL_WRITER), BU_OK);
    ckpt_fill(other, 8);
    sqlite3_close(other);
    assert_true(ckpt_file_size(wal) > 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(store_test_path, "store_test", "--close-probe", path,
            (char *) NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(ckpt_file_size(wal) > 0);
    sqlite3_close(keep);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--close-probe") == 0) {
        return close_probe(argv[2]);
    }
    if (argc > 0 && strchr(argv[0], '/') != NULL) {
        store_test_path = argv[0];
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_jobs_roundtrip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_duplicates, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_payload_table, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_note, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_oldest_unfinished, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_migrates_payload_column, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_deferred_checkpoint, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_each_unfinished, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_reader_isolation, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_jobs_reader_missing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tenant_schema, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tenant_upsert_outcomes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tenant_colset_cache, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tenant_defaults_and_unset, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tenant_applied_roundtrip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tenant_rollback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_checkpointer_copies_in_background, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_checkpointer_stopped_copies_inline, fx_setup, fx_teardown),
        cmocka_unit_test(test_checkpointer_bad_config),
        cmocka_unit_test_setup_teardown(
            test_tenant_checkpoint_with, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_sql_open_race, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_writeback_kicks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_close_keeps_other_locks, fx_setup, fx_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (bu_writeback_install() == BU_OK) {
        bu_writeback_uninstall();
    }
    return failed;
}
