// SPDX-License-Identifier: MIT
// A VFS shim over the default one: every file operation is passed through;
// writes to databases and WALs start the kernel's writeback early.
#define _GNU_SOURCE
#include "store/vfs.h"

#include "base/err.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

// The real file follows this header in the memory SQLite allocates.
struct vfs_file {
    sqlite3_file  base; // pMethods = &vfs_io
    sqlite3_file *real;
    int           fd;      // our own read-only descriptor, or -1
    size_t        written; // bytes written since the last kick
};

// The default VFS, set once by bu_vfs_register: unix, whose files have
// every method of io version 3.
static sqlite3_vfs *vfs_real;

static atomic_uint_fast64_t vfs_kicks; // see bu_vfs_kicks

static sqlite3_file *
vfs_real_file(sqlite3_file *f)
{
    return ((struct vfs_file *) f)->real;
}

static int
vfs_close(sqlite3_file *f)
{
    struct vfs_file *vf = (struct vfs_file *) f;
    if (vf->fd >= 0) {
        close(vf->fd);
        vf->fd = -1;
    }
    return vf->real->pMethods->xClose(vf->real);
}

static int
vfs_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xRead(r, buf, n, off);
}

static int
vfs_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    struct vfs_file *vf = (struct vfs_file *) f;
    int              rc = vf->real->pMethods->xWrite(vf->real, buf, n, off);
    if (rc == SQLITE_OK && vf->fd >= 0) {
        vf->written += (size_t) n;
        if (vf->written >= BU_VFS_KICK_BYTES) {
            vf->written = 0;
            // Advice only: a failure changes nothing SQLite relies on.
            if (sync_file_range(vf->fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0) {
                atomic_fetch_add(&vfs_kicks, 1);
            }
        }
    }
    return rc;
}

static int
vfs_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xTruncate(r, size);
}

static int
vfs_sync(sqlite3_file *f, int flags)
{
    struct vfs_file *vf = (struct vfs_file *) f;
    vf->written = 0;
    return vf->real->pMethods->xSync(vf->real, flags);
}

static int
vfs_file_size(sqlite3_file *f, sqlite3_int64 *sizep)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xFileSize(r, sizep);
}

static int
vfs_lock(sqlite3_file *f, int level)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xLock(r, level);
}

static int
vfs_unlock(sqlite3_file *f, int level)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xUnlock(r, level);
}

static int
vfs_check_reserved_lock(sqlite3_file *f, int *outp)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xCheckReservedLock(r, outp);
}

static int
vfs_file_control(sqlite3_file *f, int op, void *arg)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xFileControl(r, op, arg);
}

static int
vfs_sector_size(sqlite3_file *f)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xSectorSize(r);
}

static int
vfs_device_characteristics(sqlite3_file *f)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xDeviceCharacteristics(r);
}

static int
vfs_shm_map(
    sqlite3_file *f, int region, int size, int extend, void volatile **pp)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xShmMap(r, region, size, extend, pp);
}

static int
vfs_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xShmLock(r, offset, n, flags);
}

static void
vfs_shm_barrier(sqlite3_file *f)
{
    sqlite3_file *r = vfs_real_file(f);
    r->pMethods->xShmBarrier(r);
}

static int
vfs_shm_unmap(sqlite3_file *f, int delete_flag)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xShmUnmap(r, delete_flag);
}

static int
vfs_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xFetch(r, off, n, pp);
}

static int
vfs_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    sqlite3_file *r = vfs_real_file(f);
    return r->pMethods->xUnfetch(r, off, p);
}

static const sqlite3_io_methods vfs_io = {
    .iVersion = 3,
    .xClose = vfs_close,
    .xRead = vfs_read,
    .xWrite = vfs_write,
    .xTruncate = vfs_truncate,
    .xSync = vfs_sync,
    .xFileSize = vfs_file_size,
    .xLock = vfs_lock,
    .xUnlock = vfs_unlock,
    .xCheckReservedLock = vfs_check_reserved_lock,
    .xFileControl = vfs_file_control,
    .xSectorSize = vfs_sector_size,
    .xDeviceCharacteristics = vfs_device_characteristics,
    .xShmMap = vfs_shm_map,
    .xShmLock = vfs_shm_lock,
    .xShmBarrier = vfs_shm_barrier,
    .xShmUnmap = vfs_shm_unmap,
    .xFetch = vfs_fetch,
    .xUnfetch = vfs_unfetch,
};

static int
vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out_flags)
{
    (void) vfs;
    struct vfs_file *vf = (struct vfs_file *) f;
    vf->base.pMethods = NULL;
    vf->real = (sqlite3_file *) (vf + 1);
    vf->fd = -1;
    vf->written = 0;
    int rc = vfs_real->xOpen(vfs_real, name, vf->real, flags, out_flags);
    if (vf->real->pMethods == NULL) {
        return rc;
    }
    // Whatever happened, SQLite now closes the file through us.
    vf->base.pMethods = &vfs_io;
    if (rc == SQLITE_OK && name != NULL
        && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0) {
        vf->fd = open(name, O_RDONLY | O_CLOEXEC);
    }
    return rc;
}

static int
vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void) vfs;
    return vfs_real->xDelete(vfs_real, name, sync_dir);
}

static int
vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *outp)
{
    (void) vfs;
    return vfs_real->xAccess(vfs_real, name, flags, outp);
}

static int
vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void) vfs;
    return vfs_real->xFullPathname(vfs_real, name, n, out);
}

static int
vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void) vfs;
    return vfs_real->xRandomness(vfs_real, n, out);
}

static int
vfs_sleep(sqlite3_vfs *vfs, int us)
{
    (void) vfs;
    return vfs_real->xSleep(vfs_real, us);
}

static int
vfs_current_time(sqlite3_vfs *vfs, double *outp)
{
    (void) vfs;
    return vfs_real->xCurrentTime(vfs_real, outp);
}

static int
vfs_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void) vfs;
    return vfs_real->xGetLastError(vfs_real, n, out);
}

static int
vfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *outp)
{
    (void) vfs;
    return vfs_real->xCurrentTimeInt64(vfs_real, outp);
}

static sqlite3_vfs    vfs_kick;
static pthread_once_t vfs_once = PTHREAD_ONCE_INIT;
static int            vfs_rv = BU_ESTORE;

static void
vfs_register_once(void)
{
    vfs_real = sqlite3_vfs_find(NULL);
    if (vfs_real == NULL || vfs_real->iVersion < 2) {
        return;
    }
    vfs_kick = (sqlite3_vfs) {
        .iVersion = 2,
        .szOsFile = (int) sizeof(struct vfs_file) + vfs_real->szOsFile,
        .mxPathname = vfs_real->mxPathname,
        .zName = BU_VFS_NAME,
        .xOpen = vfs_open,
        .xDelete = vfs_delete,
        .xAccess = vfs_access,
        .xFullPathname = vfs_full_pathname,
        .xRandomness = vfs_randomness,
        .xSleep = vfs_sleep,
        .xCurrentTime = vfs_current_time,
        .xGetLastError = vfs_get_last_error,
        .xCurrentTimeInt64 = vfs_current_time_int64,
    };
    vfs_rv
        = sqlite3_vfs_register(&vfs_kick, 0) == SQLITE_OK ? BU_OK : BU_ESTORE;
}

int
bu_vfs_register(void)
{
    pthread_once(&vfs_once, vfs_register_once);
    return vfs_rv;
}

uint64_t
bu_vfs_kicks(void)
{
    return atomic_load(&vfs_kicks);
}
