// SPDX-License-Identifier: MIT
// Opening databases the same way everywhere, and SQLite error mapping.
#include "store/sql.h"

#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

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
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    const char *pragmas = mode == BU_SQL_WRITER
        ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
          "PRAGMA foreign_keys=ON;"
        : "PRAGMA query_only=1;";
    int         rv = bu_sql_exec(db, pragmas, path);
    if (rv != BU_OK) {
        sqlite3_close(db);
        return rv;
    }
    *dbp = db;
    return BU_OK;
}
