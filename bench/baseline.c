// SPDX-License-Identifier: MIT
/*
 * The bare SQLite loops (see baseline.h). Each transaction's rows are made
 * first, then BEGIN, one step of the prepared upsert per row, COMMIT is
 * timed: that interval is all SQLite's (B-tree work, WAL writes, and the
 * checkpoints wal_autocheckpoint triggers at commit).
 */
#include "baseline.h"

#include "store/sql.h"
#include "store/tenant.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BASELINE_NAIVE_TXN 1000
#define BASELINE_TUNED_TXN 10000

struct baseline_db {
    sqlite3         *db;
    sqlite3_stmt    *upsert;
    size_t           txn_rows;
    struct rows_row *rows; // txn_rows rows, remade for each transaction
};

static const char baseline_upsert_sql[]
    = "INSERT INTO master_contact(contact_key, email, name, surname, gsm,"
      " email_permission, contact_status, birth_date, gender)"
      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
      " ON CONFLICT(contact_key) DO UPDATE SET"
      " email = excluded.email, name = excluded.name,"
      " surname = excluded.surname, gsm = excluded.gsm,"
      " email_permission = excluded.email_permission,"
      " contact_status = excluded.contact_status,"
      " birth_date = excluded.birth_date, gender = excluded.gender";

static void baseline_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
baseline_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static double
baseline_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

const char *
baseline_kind_name(enum baseline_kind kind)
{
    return kind == BASELINE_NAIVE ? "naive" : "tuned";
}

int
baseline_create(
    const char *data_dir, const char *tenant, char *err, size_t errlen)
{
    if (mkdir(data_dir, 0750) != 0 && errno != EEXIST) {
        baseline_err(err, errlen, "mkdir %s: %s", data_dir, strerror(errno));
        return -1;
    }
    struct bu_tenant_db *tdb = NULL;
    int rv = bu_tenant_db_open(&tdb, data_dir, tenant, BU_SQL_WRITER);
    if (rv != 0) {
        baseline_err(err, errlen,
            "cannot create %s/tenants/%s.db with the daemon's schema "
            "(store error %d)",
            data_dir, tenant, rv);
        return -1;
    }
    bu_tenant_db_close(tdb);
    return 0;
}

int
baseline_open(struct baseline_db **dbp, const char *path,
    enum baseline_kind kind, char *err, size_t errlen)
{
    struct baseline_db *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        baseline_err(err, errlen, "out of memory");
        return -1;
    }
    b->txn_rows
        = kind == BASELINE_NAIVE ? BASELINE_NAIVE_TXN : BASELINE_TUNED_TXN;
    const char *pragmas = kind == BASELINE_NAIVE
        ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
          "PRAGMA cache_size=-262144; PRAGMA wal_autocheckpoint=10000;";
    int rc = sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(b->db, pragmas, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v3(b->db, baseline_upsert_sql, -1,
            SQLITE_PREPARE_PERSISTENT, &b->upsert, NULL);
    }
    if (rc == SQLITE_OK) {
        b->rows = calloc(b->txn_rows, sizeof(*b->rows));
        if (b->rows == NULL) {
            rc = SQLITE_NOMEM;
        }
    }
    if (rc != SQLITE_OK) {
        baseline_err(err, errlen, "%s: %s", path,
            b->db != NULL ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
        baseline_close(b);
        return -1;
    }
    *dbp = b;
    return 0;
}

void
baseline_close(struct baseline_db *db)
{
    if (db == NULL) {
        return;
    }
    sqlite3_finalize(db->upsert);
    sqlite3_close(db->db);
    free(db->rows);
    free(db);
}

// baseline_txn writes rows[0 .. n-1] in one transaction. On failure it
// puts SQLite's message in err before rolling back (which would clear it).
static int
baseline_txn(struct baseline_db *b, size_t n, char *err, size_t errlen)
{
    int rc = sqlite3_exec(b->db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        const struct rows_row *r = &b->rows[i];
        for (int j = 0; j < ROWS_NCOLS; j++) {
            if (j == ROWS_BOOL_COL) {
                sqlite3_bind_int(b->upsert, j + 1, r->flag);
            } else {
                sqlite3_bind_text(b->upsert, j + 1, r->text[j],
                    (int) r->len[j], SQLITE_STATIC);
            }
        }
        rc = sqlite3_step(b->upsert);
        sqlite3_reset(b->upsert);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        baseline_err(err, errlen, "%s", sqlite3_errmsg(b->db));
        if (!sqlite3_get_autocommit(b->db)) {
            (void) sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    return rc;
}

int
baseline_run(struct baseline_db *db, uint64_t salt, enum rows_space space,
    const uint32_t *ids, uint32_t id_base, size_t n, unsigned version,
    struct baseline_pass *outp, char *err, size_t errlen)
{
    double secs = 0;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < db->txn_rows ? n - done : db->txn_rows;
        for (size_t i = 0; i < k; i++) {
            uint32_t id = ids != NULL ? ids[done + i] : (uint32_t) (done + i);
            rows_make(&db->rows[i], salt, space, id_base + id, version);
        }
        double t0 = baseline_now();
        char   msg[256];
        int    rc = baseline_txn(db, k, msg, sizeof(msg));
        secs += baseline_now() - t0;
        if (rc != SQLITE_OK) {
            baseline_err(err, errlen, "upsert after %zu rows: %s", done, msg);
            return -1;
        }
        done += k;
    }
    outp->rows = n;
    outp->secs = secs;
    outp->rps = secs > 0 ? (double) n / secs : 0;
    return 0;
}

static int
baseline_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a;
    double y = *(const double *) b;
    return x < y ? -1 : x > y;
}

int
baseline_fsync_probe(const char *dir, int n, int append, double *p50p,
    double *p99p, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/fsync-probe", dir);
    double *ms = calloc((size_t) n, sizeof(*ms));
    int     fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (ms == NULL || fd < 0) {
        baseline_err(err, errlen, "%s: %s", path,
            ms == NULL ? "out of memory" : strerror(errno));
        free(ms);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    char block[4096];
    memset(block, 'x', sizeof(block));
    int rv = 0;
    for (int i = 0; !append && rv == 0 && i < 16; i++) {
        if (pwrite(fd, block, sizeof(block), (off_t) i * 4096)
            != (ssize_t) sizeof(block)) {
            baseline_err(err, errlen, "%s: %s", path, strerror(errno));
            rv = -1;
        }
    }
    if (rv == 0 && fsync(fd) != 0) {
        baseline_err(err, errlen, "%s: %s", path, strerror(errno));
        rv = -1;
    }
    for (int i = 0; rv == 0 && i < n; i++) {
        off_t  at = (off_t) (append ? i : i % 16) * 4096;
        double t0 = baseline_now();
        if (pwrite(fd, block, sizeof(block), at) != (ssize_t) sizeof(block)
            || fdatasync(fd) != 0) {
            baseline_err(err, errlen, "%s: %s", path, strerror(errno));
            rv = -1;
            break;
        }
        ms[i] = (baseline_now() - t0) * 1000.0;
    }
    close(fd);
    unlink(path);
    if (rv == 0) {
        qsort(ms, (size_t) n, sizeof(*ms), baseline_cmp_double);
        *p50p = ms[n / 2];
        *p99p = ms[(n * 99 + 99) / 100 - 1];
    }
    free(ms);
    return rv;
}

// baseline_cpu_unit copies and sums a buffer once; the sum keeps the
// compiler from dropping the work.
static uint64_t
baseline_cpu_unit(uint8_t *dst, uint8_t *src, size_t len)
{
    memcpy(dst, src, len);
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ dst[i]) * 1099511628211u;
    }
    src[h % len]++;
    return h;
}

int
baseline_cpu_probe(
    int n, double *minp, double *p50p, double *p99p, char *err, size_t errlen)
{
    enum { LEN = 160 * 1024, CALIBRATE = 50 };
    uint8_t *src = calloc(1, LEN);
    uint8_t *dst = calloc(1, LEN);
    double  *ms = calloc((size_t) n, sizeof(*ms));
    if (src == NULL || dst == NULL || ms == NULL) {
        baseline_err(err, errlen, "out of memory");
        free(src);
        free(dst);
        free(ms);
        return -1;
    }
    volatile uint64_t sink = 0;
    // The task repeats the unit as often as its fastest run fits in 1 ms.
    double unit_min = 1e9;
    for (int i = 0; i < CALIBRATE; i++) {
        double t0 = baseline_now();
        sink += baseline_cpu_unit(dst, src, LEN);
        double t = (baseline_now() - t0) * 1000.0;
        unit_min = t < unit_min ? t : unit_min;
    }
    int reps = unit_min > 0 ? (int) (1.0 / unit_min + 0.5) : 1;
    reps = reps < 1 ? 1 : reps;
    double min = 1e9;
    for (int i = 0; i < n; i++) {
        struct timespec pause = { 0, 2000000 };
        nanosleep(&pause, NULL);
        double t0 = baseline_now();
        for (int r = 0; r < reps; r++) {
            sink += baseline_cpu_unit(dst, src, LEN);
        }
        ms[i] = (baseline_now() - t0) * 1000.0;
        min = ms[i] < min ? ms[i] : min;
    }
    (void) sink;
    qsort(ms, (size_t) n, sizeof(*ms), baseline_cmp_double);
    *minp = min;
    *p50p = ms[n / 2];
    *p99p = ms[(n * 99 + 99) / 100 - 1];
    free(src);
    free(dst);
    free(ms);
    return 0;
}
