// SPDX-License-Identifier: MIT
/*
 * The SQLite VFS the stores open their files with: the platform's own
 * (unix), except that the kernel is told to start writing a database or
 * WAL file out (sync_file_range, SYNC_FILE_RANGE_WRITE: no wait, no cache
 * flush) after every BU_VFS_KICK_BYTES written to it.
 *
 * Why: a sync flushes the disk's write cache, and waits for every write
 * the kernel still holds, whichever file it belongs to. A worker's commit
 * writes tens of megabytes of WAL and syncs once at the end; a queue.db
 * commit (the 202 of a submit waits for it) that syncs meanwhile waited
 * for all of them. Started early, those writes are mostly done by then.
 * What SQLite syncs and when is unchanged.
 *
 * Thread-safe: the counters live in each open file, which SQLite uses from
 * one thread at a time.
 */
#ifndef BU_STORE_VFS_H
#define BU_STORE_VFS_H

#include <stdint.h>

#define BU_VFS_NAME       "bu-kick"
#define BU_VFS_KICK_BYTES (4 * 1024 * 1024)

// bu_vfs_register registers BU_VFS_NAME (once; later calls return what the
// first returned). Not the default VFS: bu_sql_open names it. Returns BU_OK
// or BU_ESTORE (no default VFS to wrap).
int bu_vfs_register(void);

// bu_vfs_kicks returns how many times writeback was started early so far,
// in the whole process (for tests and debugging).
uint64_t bu_vfs_kicks(void);

#endif // BU_STORE_VFS_H
