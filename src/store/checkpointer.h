// SPDX-License-Identifier: MIT
/*
 * A checkpointer: a thread that copies the WAL of SQLite databases back into
 * their files, so that the writers need not spend their own time on it.
 *
 * A checkpoint writes every page of the WAL a second time and syncs the
 * database file; run on the commit that passed the autocheckpoint size, as
 * SQLite does by default, it stalls that writer for all of it. A connection
 * given to bu_checkpointer_attach instead asks this thread for a PASSIVE
 * checkpoint of its file when a commit leaves the WAL at wal_frames or
 * more, and goes on at once. A commit that cannot queue its request (the
 * thread is stopped, no memory) checkpoints inline as SQLite's
 * autocheckpoint would.
 *
 * The writer must call bu_checkpointer_wait before its next transaction.
 * SQLite starts a WAL over from its beginning only for a writer whose read
 * snapshot began after a checkpoint that copied all of it; a writer that
 * begins while the checkpoint runs appends to the WAL, and so does every
 * next one, and the WAL (and the cost of finding a page in it) grows
 * without end. The checkpoint still overlaps all the writer does between
 * its transactions (for a worker: reporting, gathering and reading the
 * next jobs).
 *
 * The thread opens a connection of its own for each checkpoint (they are
 * seconds apart per database) and closes it after, so it holds no file
 * open between checkpoints. A request for a file already queued or being
 * checkpointed adds nothing.
 *
 * Threads: bu_checkpointer_attach on the connection's own thread; the
 * requests come from the attached connections' commits, on any thread.
 * Lifetime: close every attached connection before bu_checkpointer_free;
 * after bu_checkpointer_stop, their commits checkpoint inline again.
 */
#ifndef BU_STORE_CHECKPOINTER_H
#define BU_STORE_CHECKPOINTER_H

#include <sqlite3.h>
#include <stdint.h>

struct bu_checkpointer;

// bu_checkpointer_start starts the thread. wal_frames > 0 (a frame is a
// page). Returns BU_OK, BU_EINVAL, BU_ENOMEM.
int bu_checkpointer_start(struct bu_checkpointer **cpp, int wal_frames);

// bu_checkpointer_attach makes db's commits ask cp for their checkpoints
// (SQLite's wal hook; this replaces the connection's autocheckpoint).
void bu_checkpointer_attach(struct bu_checkpointer *cp, sqlite3 *db);

// bu_checkpointer_wait returns once no checkpoint of the database at path
// (sqlite3_db_filename) is queued or running, or cp is stopping.
void bu_checkpointer_wait(struct bu_checkpointer *cp, const char *path);

// bu_checkpointer_completed returns how many checkpoints the thread has
// run so far (each copies what it can: all the frames the WAL held when it
// began, less when a reader still needs some).
uint64_t bu_checkpointer_completed(struct bu_checkpointer *cp);

// bu_checkpointer_stop ends the thread after the checkpoint it is running;
// requests still waiting are dropped (their WAL frames stay, safe, until
// the next checkpoint of that file). Later commits checkpoint inline.
// NULL is ignored.
void bu_checkpointer_stop(struct bu_checkpointer *cp);

// bu_checkpointer_free stops cp and frees it; NULL is ignored.
void bu_checkpointer_free(struct bu_checkpointer *cp);

#endif // BU_STORE_CHECKPOINTER_H
