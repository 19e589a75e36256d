// SPDX-License-Identifier: MIT
/*
 * Small SQLite helpers shared by the stores: opening a database in WAL mode
 * with the project's pragmas, running a statement list, and mapping SQLITE_*
 * codes to bu_err (the only place outside store/ would never see them).
 * A connection belongs to one thread at a time (SQLite's default
 * serialized mode makes misuse safe, not fast).
 */
#ifndef BU_STORE_SQL_H
#define BU_STORE_SQL_H

#include <sqlite3.h>
#include <stdbool.h>

enum bu_sql_mode {
    BU_SQL_WRITER, // read-write, creates the file, synchronous=FULL
    BU_SQL_READER, // read-only; the file must exist
};

// bu_sql_open opens path in WAL mode with a busy timeout (5 s, which also
// bounds the wait for another connection that is converting a new file to
// WAL at the same time). Returns BU_ENOENT (reader and no file), BU_EBUSY
// (still locked after the timeout), BU_ESTORE (any other SQLite failure;
// the log names path and SQLite's message). *dbp is written only on success;
// release with sqlite3_close.
int bu_sql_open(sqlite3 **dbp, const char *path, enum bu_sql_mode mode);

// bu_sql_exec runs sql (one or more statements). Returns BU_OK or the
// mapped error; logs SQLite's message with what.
int bu_sql_exec(sqlite3 *db, const char *sql, const char *what);

// bu_sql_err maps an SQLite result code: OK/DONE/ROW -> BU_OK, BUSY/LOCKED
// -> BU_EBUSY, NOMEM -> BU_ENOMEM, CORRUPT/NOTADB -> BU_ECORRUPT, FULL/IOERR
// -> BU_EIO, CONSTRAINT -> BU_EEXIST, anything else BU_ESTORE.
int bu_sql_err(int sqlite_rc);

#endif // BU_STORE_SQL_H
