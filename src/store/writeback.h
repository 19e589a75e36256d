// SPDX-License-Identifier: MIT
/*
 * Early writeback: the kernel is told to start writing a file out
 * (sync_file_range, SYNC_FILE_RANGE_WRITE: no wait, no cache flush) after
 * every BU_WRITEBACK_KICK_BYTES that SQLite writes to it through one
 * descriptor.
 *
 * Why: a sync flushes the disk's write cache and waits for every write the
 * kernel still holds, whichever file it belongs to. A worker's commit
 * writes tens of megabytes of WAL and syncs once, at its checkpoint; a
 * queue.db commit (the 202 of a submit waits for it) that syncs meanwhile
 * waited for all of them. Started early, those writes are mostly done by
 * then. What SQLite syncs, and when, is unchanged.
 *
 * How: SQLite's unix VFS lets a program replace the system calls it makes
 * (sqlite3_vfs.xSetSystemCall); this replaces its "pwrite64" with one that
 * counts bytes per descriptor. It works on SQLite's own descriptor: a
 * second descriptor of the file would be wrong, as closing it drops every
 * POSIX lock the process holds on the file, other connections' included.
 *
 * The kick itself (sync_file_range) can block while the disk's queue is
 * full; it runs on a thread of its own, "bu-writeback", so that no writer
 * waits for it: a write only marks its descriptor due.
 *
 * Threads: bu_writeback_install and bu_writeback_uninstall on one thread,
 * while no other thread uses SQLite and no SQLite file is open
 * (xSetSystemCall is not thread-safe). The replacement is safe on any
 * thread: its counters are atomic, one per descriptor below
 * BU_WRITEBACK_MAX_FD (descriptors above it are written without kicks).
 */
#ifndef BU_STORE_WRITEBACK_H
#define BU_STORE_WRITEBACK_H

#include <stdint.h>

#define BU_WRITEBACK_KICK_BYTES (4u * 1024 * 1024)
#define BU_WRITEBACK_MAX_FD     4096

// bu_writeback_install replaces the default VFS's pwrite64 and starts the
// thread. Returns BU_OK (also when already installed), BU_ENOMEM (no
// thread), or BU_ESTORE when the default VFS has no pwrite64 to replace
// (not the unix VFS, or a build that writes with lseek and write): SQLite
// then writes as before.
int bu_writeback_install(void);

// bu_writeback_uninstall puts SQLite's pwrite64 back and stops the thread.
// Only after a successful bu_writeback_install.
void bu_writeback_uninstall(void);

// bu_writeback_kicks returns how many times writeback was started early so
// far in the whole process (for tests and the debug log).
uint64_t bu_writeback_kicks(void);

#endif // BU_STORE_WRITEBACK_H
