// SPDX-License-Identifier: MIT
// SQLite's pwrite64, counted per descriptor; writeback started early by a
// thread of its own.
#define _GNU_SOURCE // sync_file_range
#include "store/writeback.h"

#include "base/err.h"
#include "base/thread.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*writeback_pwrite_fn)(int, const void *, size_t, off_t);

static writeback_pwrite_fn writeback_real_pwrite;
static _Atomic uint32_t    writeback_pending[BU_WRITEBACK_MAX_FD];
static _Atomic uint8_t     writeback_due[BU_WRITEBACK_MAX_FD];
static _Atomic int         writeback_top_fd; // highest fd ever due
static _Atomic uint64_t    writeback_kick_count;

static pthread_mutex_t writeback_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  writeback_cv = PTHREAD_COND_INITIALIZER;
static bool            writeback_woken;    // under writeback_mu
static bool            writeback_stopping; // under writeback_mu
static bool            writeback_installed;
static pthread_t       writeback_thread;

// writeback_pwrite is what SQLite calls instead of pwrite64. It only marks
// the descriptor due: the kick itself can block while the disk's queue is
// full, and that wait belongs to no writer. A descriptor reused for
// another file starts with the old one's count, and a kick that comes
// after its file was closed may start the writeback of another file: at
// worst one early kick, never a change to what is written or synced.
static ssize_t
writeback_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t w = writeback_real_pwrite(fd, buf, n, off);
    if (w <= 0 || fd < 0 || fd >= BU_WRITEBACK_MAX_FD) {
        return w;
    }
    uint32_t was = atomic_fetch_add_explicit(
        &writeback_pending[fd], (uint32_t) w, memory_order_relaxed);
    if (was + (uint32_t) w < BU_WRITEBACK_KICK_BYTES) {
        return w;
    }
    atomic_store_explicit(&writeback_pending[fd], 0, memory_order_relaxed);
    if (atomic_exchange_explicit(&writeback_due[fd], 1, memory_order_acq_rel)
        == 0) {
        int top
            = atomic_load_explicit(&writeback_top_fd, memory_order_relaxed);
        while (fd > top
            && !atomic_compare_exchange_weak_explicit(&writeback_top_fd, &top,
                fd, memory_order_relaxed, memory_order_relaxed)) { }
        pthread_mutex_lock(&writeback_mu);
        writeback_woken = true;
        pthread_cond_signal(&writeback_cv);
        pthread_mutex_unlock(&writeback_mu);
    }
    return w;
}

static void *
writeback_main(void *arg)
{
    (void) arg;
    pthread_mutex_lock(&writeback_mu);
    for (;;) {
        while (!writeback_woken && !writeback_stopping) {
            pthread_cond_wait(&writeback_cv, &writeback_mu);
        }
        if (writeback_stopping) {
            break;
        }
        writeback_woken = false;
        pthread_mutex_unlock(&writeback_mu);
        int top
            = atomic_load_explicit(&writeback_top_fd, memory_order_relaxed);
        for (int fd = 0; fd <= top; fd++) {
            if (atomic_exchange_explicit(
                    &writeback_due[fd], 0, memory_order_acq_rel)
                != 0) {
                // Errors change nothing: SQLite's own syncs write it all.
                if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0) {
                    atomic_fetch_add_explicit(
                        &writeback_kick_count, 1, memory_order_relaxed);
                }
            }
        }
        pthread_mutex_lock(&writeback_mu);
    }
    pthread_mutex_unlock(&writeback_mu);
    return NULL;
}

int
bu_writeback_install(void)
{
    if (writeback_installed) {
        return BU_OK;
    }
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    if (vfs == NULL || vfs->iVersion < 3 || vfs->xGetSystemCall == NULL
        || vfs->xSetSystemCall == NULL) {
        return BU_ESTORE;
    }
    sqlite3_syscall_ptr real = vfs->xGetSystemCall(vfs, "pwrite64");
    if (real == NULL) {
        return BU_ESTORE;
    }
    writeback_stopping = false;
    int rv = bu_thread_start(
        &writeback_thread, "bu-writeback", 64 * 1024, writeback_main, NULL);
    if (rv != BU_OK) {
        return rv;
    }
    writeback_real_pwrite = (writeback_pwrite_fn) real;
    if (vfs->xSetSystemCall(
            vfs, "pwrite64", (sqlite3_syscall_ptr) writeback_pwrite)
        != SQLITE_OK) {
        bu_writeback_uninstall();
        return BU_ESTORE;
    }
    writeback_installed = true;
    return BU_OK;
}

void
bu_writeback_uninstall(void)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    if (writeback_real_pwrite != NULL && vfs != NULL) {
        vfs->xSetSystemCall(
            vfs, "pwrite64", (sqlite3_syscall_ptr) writeback_real_pwrite);
    }
    pthread_mutex_lock(&writeback_mu);
    writeback_stopping = true;
    pthread_cond_signal(&writeback_cv);
    pthread_mutex_unlock(&writeback_mu);
    pthread_join(writeback_thread, NULL);
    writeback_installed = false;
}

uint64_t
bu_writeback_kicks(void)
{
    return atomic_load_explicit(&writeback_kick_count, memory_order_relaxed);
}
