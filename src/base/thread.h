// SPDX-License-Identifier: MIT
/*
 * Thread creation with a name and an explicit stack size, and the signal
 * mask rule: main blocks the signals it waits for before any thread exists,
 * so every thread inherits the mask and only main's sigwait sees them.
 * The one place with OS-specific thread calls.
 */
#ifndef BU_BASE_THREAD_H
#define BU_BASE_THREAD_H

#include <pthread.h>
#include <stddef.h>

#define BU_THREAD_STACK (1024 * 1024)

// bu_thread_start starts fn(arg) on a new thread named name (at most 15
// characters are kept) with stack_size bytes of stack (0: BU_THREAD_STACK).
// Returns BU_OK or BU_ENOMEM; on error fn never runs.
int bu_thread_start(pthread_t *threadp, const char *name, size_t stack_size,
    void *(*fn)(void *), void *arg);

// bu_thread_background lowers the calling thread's CPU priority (nice +10)
// so that threads on a client's answer path run first when the CPUs are
// all busy; background work still gets the idle time. Returns BU_OK, or
// BU_EIO when the system refused (the thread then runs as before).
int bu_thread_background(void);

#endif // BU_BASE_THREAD_H
