// SPDX-License-Identifier: MIT
// Opening databases the same way everywhere, and SQLite error mapping.
#include "store/sql.h"

#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

#define SQL_BUSY_TIMEOUT_MS 5000
#define SQL_BUSY_RETRY_MS   5

int
bu_sql_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return BU_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return BU_EBUSY;
    case SQLITE_NOMEM:
        return BU_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return BU_ECORRUPT;
    case SQLITE_FULL:
    case SQLITE_IOERR:
        return BU_EIO;
    case SQLITE_CONSTRAINT:
        return BU_EEXIST;
    default:
        return BU_ESTORE;
    }
}

int
bu_sql_exec(sqlite3 *db, const char *sql, const char *what)
{
    char *msg = NULL;
    int   rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        BU_ERROR("%s: %s", what, msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return bu_sql_err(rc);
    }
    return BU_OK;
}

// sql_wal_mode puts db in WAL mode. SQLite does not call the busy handler
// for this pragma: two connections that open a new file at once (a worker
// and a handler, on a tenant's first request) make one of them fail at
// once with SQLITE_BUSY. It is retried here for as long as the busy
// timeout would have waited.
static int
sql_wal_mode(sqlite3 *db, const char *path)
{
    int waited_ms = 0;
    for (;;) {
        char *msg = NULL;
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg);
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= SQL_BUSY_TIMEOUT_MS) {
            if (rc != SQLITE_OK) {
                BU_ERROR("%s: WAL mode: %s", path,
                    msg != NULL ? msg : sqlite3_errstr(rc));
            }
            sqlite3_free(msg);
            return bu_sql_err(rc);
        }
        sqlite3_free(msg);
        sqlite3_sleep(SQL_BUSY_RETRY_MS);
        waited_ms += SQL_BUSY_RETRY_MS;
    }
}

int
bu_sql_open(sqlite3 **dbp, const char *path, enum bu_sql_mode mode)
{
    sqlite3 *db = NULL;
    int      flags = SQLITE_OPEN_NOMUTEX;
    if (mode == BU_SQL_WRITER) {
        flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    } else {
        struct stat st;
        if (stat(path, &st) != 0) {
            return errno == ENOENT ? BU_ENOENT : BU_EIO;
        }
        // WAL readers still need write access to the -shm file, so readers
        // open read-write but never write.
        flags |= SQLITE_OPEN_READWRITE;
    }
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        BU_ERROR("open %s: %s", path,
            db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return bu_sql_err(rc) == BU_EIO ? BU_EIO : BU_ESTORE;
    }
    sqlite3_busy_timeout(db, SQL_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    int rv = mode == BU_SQL_WRITER ? sql_wal_mode(db, path) : BU_OK;
    if (rv == BU_OK) {
        rv = bu_sql_exec(db,
            mode == BU_SQL_WRITER
                ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                : "PRAGMA query_only=1;",
            path);
    }
    if (rv != BU_OK) {
        sqlite3_close(db);
        return rv;
    }
    *dbp = db;
    return BU_OK;
}
