// SPDX-License-Identifier: MIT
/*
 * A blocking FIFO of intrusive nodes: a mutex, a condvar and a linked list.
 * Producers put nodes from any thread; consumers take one node or the whole
 * backlog (for group commit). Closing wakes every consumer; they drain what
 * is left and then get NULL, which is how worker threads are stopped.
 *
 * The queue does not own its nodes: whoever takes a node owns it. Storage is
 * the caller's (_init/_fini). Thread-safe; bu_queue_fini only when no thread
 * uses the queue any more.
 */
#ifndef BU_BASE_QUEUE_H
#define BU_BASE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct bu_qnode {
    struct bu_qnode *next;
};

// Visible for embedding only; use the functions, never the fields.
struct bu_queue {
    pthread_mutex_t  mu;
    pthread_cond_t   cv;     // signalled on put and on close
    struct bu_qnode *head;   // guarded by mu
    struct bu_qnode *tail;   // guarded by mu
    size_t           len;    // guarded by mu
    bool             closed; // guarded by mu
};

// bu_queue_init prepares q (empty, open). Returns BU_OK or BU_ENOMEM.
int bu_queue_init(struct bu_queue *q);

// bu_queue_fini releases q's mutex and condvar. Nodes still queued are left
// to their owner (the queue never frees them).
void bu_queue_fini(struct bu_queue *q);

// bu_queue_put appends n. Returns BU_ECLOSED (and n stays the caller's) once
// the queue is closed. Never blocks for long.
int bu_queue_put(struct bu_queue *q, struct bu_qnode *n);

// bu_queue_get blocks until a node is queued and returns it, or returns NULL
// when the queue is closed and empty.
struct bu_qnode *bu_queue_get(struct bu_queue *q);

// bu_queue_get_all blocks like bu_queue_get but takes the whole backlog,
// returned as a chain in FIFO order (follow ->next to NULL).
struct bu_qnode *bu_queue_get_all(struct bu_queue *q);

// bu_queue_get_all_until is bu_queue_get_all that gives up after timeout_ms:
// it then returns NULL with *closedp false. NULL with *closedp true: closed
// and empty.
struct bu_qnode *bu_queue_get_all_until(
    struct bu_queue *q, int timeout_ms, bool *closedp);

// bu_queue_close refuses further puts and wakes every waiting consumer.
void bu_queue_close(struct bu_queue *q);

// bu_queue_len returns how many nodes are queued now.
size_t bu_queue_len(struct bu_queue *q);

#endif // BU_BASE_QUEUE_H
