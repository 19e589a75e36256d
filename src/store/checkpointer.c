// SPDX-License-Identifier: MIT
// The checkpoint thread and the wal hook that feeds it.
#include "store/checkpointer.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/countmap.h"
#include "base/err.h"
#include "base/log.h"
#include "base/queue.h"
#include "base/thread.h"
#include "store/sql.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

// A checkpoint asked for: the database file's path.
struct checkpointer_request {
    struct bu_qnode node; // first: the queue's node is the request
    char            path[];
};

struct bu_checkpointer {
    int                  wal_frames;
    struct bu_queue      requests; // of checkpointer_request
    struct bu_countmap  *pending;  // path -> 1 while queued or running
    pthread_mutex_t      mu;       // with done_cv, for bu_checkpointer_wait
    pthread_cond_t       done_cv;  // broadcast after each request
    pthread_t            thread;
    bool                 started;
    atomic_bool          stopping; // the thread drops what is left
    atomic_uint_fast64_t completed;
};

// checkpointer_request queues a checkpoint of path. Returns BU_OK,
// BU_EEXIST (one is queued or running already), BU_ECLOSED (stopped),
// BU_ENOMEM.
static int
checkpointer_request(struct bu_checkpointer *cp, const char *path)
{
    int rv = bu_countmap_add(cp->pending, path, 1, 1, NULL);
    if (rv != BU_OK) {
        return rv == BU_EFULL ? BU_EEXIST : rv;
    }
    size_t                       n = strlen(path) + 1;
    struct checkpointer_request *req = bu_alloc_uninit(sizeof(*req) + n);
    rv = req == NULL ? BU_ENOMEM : BU_OK;
    if (rv == BU_OK) {
        memcpy(req->path, path, n);
        rv = bu_queue_put(&cp->requests, &req->node);
        if (rv != BU_OK) {
            bu_free(req);
        }
    }
    if (rv != BU_OK) {
        (void) bu_countmap_add(cp->pending, path, -1, -1, NULL);
    }
    return rv;
}

// checkpointer_wal_hook runs after each commit of an attached connection,
// on the committing thread, with the frames now in the WAL.
static int
checkpointer_wal_hook(void *arg, sqlite3 *db, const char *schema, int frames)
{
    struct bu_checkpointer *cp = arg;
    if (frames < cp->wal_frames) {
        return SQLITE_OK;
    }
    int rv = checkpointer_request(cp, sqlite3_db_filename(db, schema));
    if (rv == BU_OK || rv == BU_EEXIST) {
        return SQLITE_OK;
    }
    // Stopped or out of memory: the writer copies the WAL itself.
    (void) sqlite3_wal_checkpoint_v2(
        db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

// checkpointer_run checkpoints the database at path on a connection of
// its own.
static void
checkpointer_run(struct bu_checkpointer *cp, const char *path)
{
    int64_t  start = bu_now_ms();
    sqlite3 *db = NULL;
    if (bu_sql_open(&db, path, BU_SQL_WRITER) != BU_OK) {
        return; // logged
    }
    int frames = 0;
    int copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(
        db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
    if (rc == SQLITE_OK) {
        atomic_fetch_add(&cp->completed, 1);
        BU_DEBUG("checkpoint %s: %d of %d frames in %lld ms", path, copied,
            frames, (long long) (bu_now_ms() - start));
    } else if ((rc & 0xff) != SQLITE_BUSY) {
        BU_WARN("checkpoint %s: %s", path, sqlite3_errmsg(db));
    }
    sqlite3_close(db);
}

static void *
checkpointer_main(void *arg)
{
    struct bu_checkpointer *cp = arg;
    // Copying pages back is background work, like applying them.
    (void) bu_thread_background();
    struct bu_qnode *n;
    while ((n = bu_queue_get(&cp->requests)) != NULL) {
        struct checkpointer_request *req = (struct checkpointer_request *) n;
        if (!atomic_load(&cp->stopping)) {
            checkpointer_run(cp, req->path);
        }
        pthread_mutex_lock(&cp->mu);
        (void) bu_countmap_add(cp->pending, req->path, -1, -1, NULL);
        pthread_cond_broadcast(&cp->done_cv);
        pthread_mutex_unlock(&cp->mu);
        bu_free(req);
    }
    return NULL;
}

int
bu_checkpointer_start(struct bu_checkpointer **cpp, int wal_frames)
{
    if (wal_frames <= 0) {
        return BU_EINVAL;
    }
    struct bu_checkpointer *cp;
    if (BU_ALLOC_STRUCT(cp) == NULL) {
        return BU_ENOMEM;
    }
    cp->wal_frames = wal_frames;
    atomic_init(&cp->stopping, false);
    atomic_init(&cp->completed, 0);
    int rv = bu_countmap_alloc(&cp->pending);
    if (rv == BU_OK) {
        rv = bu_queue_init(&cp->requests);
        if (rv != BU_OK) {
            bu_countmap_free(cp->pending);
        }
    }
    if (rv != BU_OK) {
        bu_free(cp);
        return rv;
    }
    pthread_mutex_init(&cp->mu, NULL);
    pthread_cond_init(&cp->done_cv, NULL);
    rv = bu_thread_start(
        &cp->thread, "bu-tenant-ckpt", 0, checkpointer_main, cp);
    cp->started = rv == BU_OK;
    if (rv != BU_OK) {
        bu_checkpointer_free(cp);
        return rv;
    }
    *cpp = cp;
    return BU_OK;
}

void
bu_checkpointer_attach(struct bu_checkpointer *cp, sqlite3 *db)
{
    sqlite3_wal_hook(db, checkpointer_wal_hook, cp);
}

void
bu_checkpointer_wait(struct bu_checkpointer *cp, const char *path)
{
    pthread_mutex_lock(&cp->mu);
    while (!atomic_load(&cp->stopping)
        && bu_countmap_get(cp->pending, path) > 0) {
        pthread_cond_wait(&cp->done_cv, &cp->mu);
    }
    pthread_mutex_unlock(&cp->mu);
}

uint64_t
bu_checkpointer_completed(struct bu_checkpointer *cp)
{
    return atomic_load(&cp->completed);
}

void
bu_checkpointer_stop(struct bu_checkpointer *cp)
{
    if (cp == NULL) {
        return;
    }
    pthread_mutex_lock(&cp->mu);
    atomic_store(&cp->stopping, true);
    pthread_cond_broadcast(&cp->done_cv);
    pthread_mutex_unlock(&cp->mu);
    bu_queue_close(&cp->requests);
    if (cp->started) {
        pthread_join(cp->thread, NULL);
        cp->started = false;
    }
}

void
bu_checkpointer_free(struct bu_checkpointer *cp)
{
    if (cp == NULL) {
        return;
    }
    bu_checkpointer_stop(cp);
    // Requests the thread did not take (it never started, or was stopped).
    struct bu_qnode *n;
    while ((n = bu_queue_get(&cp->requests)) != NULL) {
        bu_free(n);
    }
    bu_queue_fini(&cp->requests);
    pthread_cond_destroy(&cp->done_cv);
    pthread_mutex_destroy(&cp->mu);
    bu_countmap_free(cp->pending);
    bu_free(cp);
}
