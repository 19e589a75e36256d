// SPDX-License-Identifier: MIT
// Named threads with explicit stacks (Linux: pthread_setname_np).
#define _GNU_SOURCE
#include "base/thread.h"

#include "base/err.h"

#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int
bu_thread_start(pthread_t *threadp, const char *name, size_t stack_size,
    void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return BU_ENOMEM;
    }
    pthread_attr_setstacksize(
        &attr, stack_size ? stack_size : BU_THREAD_STACK);
    pthread_t t;
    int       rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        return BU_ENOMEM;
    }
    char buf[16];
    snprintf(buf, sizeof(buf), "%s", name);
    (void) pthread_setname_np(t, buf);
    *threadp = t;
    return BU_OK;
}

int
bu_thread_background(void)
{
    // On Linux the nice value is per thread: setpriority on a thread id
    // changes that thread alone.
    pid_t tid = (pid_t) syscall(SYS_gettid);
    return setpriority(PRIO_PROCESS, (id_t) tid, 10) == 0 ? BU_OK : BU_EIO;
}
