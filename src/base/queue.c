// SPDX-License-Identifier: MIT
// Mutex + condvar FIFO with close-to-stop semantics.
#include "base/queue.h"

#include "base/clock.h"
#include "base/err.h"

#include <errno.h>
#include <time.h>

int
bu_queue_init(struct bu_queue *q)
{
    q->head = q->tail = NULL;
    q->len = 0;
    q->closed = false;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        return BU_ENOMEM;
    }
    if (pthread_cond_init(&q->cv, NULL) != 0) {
        pthread_mutex_destroy(&q->mu);
        return BU_ENOMEM;
    }
    return BU_OK;
}

void
bu_queue_fini(struct bu_queue *q)
{
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
}

int
bu_queue_put(struct bu_queue *q, struct bu_qnode *n)
{
    int rv = BU_OK;
    n->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        rv = BU_ECLOSED;
    } else {
        if (q->tail != NULL) {
            q->tail->next = n;
        } else {
            q->head = n;
        }
        q->tail = n;
        q->len++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return rv;
}

static struct bu_qnode *
queue_take(struct bu_queue *q, bool all)
{
    pthread_mutex_lock(&q->mu);
    while (q->head == NULL && !q->closed) {
        pthread_cond_wait(&q->cv, &q->mu);
    }
    struct bu_qnode *n = q->head;
    if (n != NULL) {
        if (all) {
            q->head = q->tail = NULL;
            q->len = 0;
        } else {
            q->head = n->next;
            if (q->head == NULL) {
                q->tail = NULL;
            }
            q->len--;
            n->next = NULL;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

struct bu_qnode *
bu_queue_get(struct bu_queue *q)
{
    return queue_take(q, false);
}

struct bu_qnode *
bu_queue_get_all(struct bu_queue *q)
{
    return queue_take(q, true);
}

struct bu_qnode *
bu_queue_get_all_until(struct bu_queue *q, int timeout_ms, bool *closedp)
{
    struct timespec until = bu_deadline_after(timeout_ms);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    while (q->head == NULL && !q->closed && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&q->cv, &q->mu, &until);
    }
    struct bu_qnode *n = q->head;
    q->head = q->tail = NULL;
    q->len = 0;
    *closedp = n == NULL && q->closed;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void
bu_queue_close(struct bu_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

size_t
bu_queue_len(struct bu_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}
