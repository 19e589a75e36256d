// SPDX-License-Identifier: MIT
// Allocation wrappers with optional failure injection for tests.
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Allocations left before injected failures start; -1 means never.
static atomic_long alloc_budget = -1;

static int
alloc_should_fail(void)
{
    long b = atomic_load(&alloc_budget);
    while (b >= 0) {
        if (b == 0) {
            return 1;
        }
        if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1)) {
            return 0;
        }
    }
    return 0;
}

void
bu_alloc_fail_after(long n)
{
    atomic_store(&alloc_budget, n < 0 ? -1 : n);
}

void *
bu_alloc(size_t n)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    return calloc(1, n ? n : 1);
}

void *
bu_alloc_uninit(size_t n)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    return malloc(n ? n : 1);
}

void *
bu_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        return NULL;
    }
    return bu_alloc(count * size);
}

void *
bu_realloc(void *p, size_t n)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    return realloc(p, n ? n : 1);
}

void
bu_free(void *p)
{
    free(p);
}

char *
bu_strndup(const char *s, size_t n)
{
    char *d = bu_alloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

char *
bu_strdup(const char *s)
{
    return s == NULL ? NULL : bu_strndup(s, strlen(s));
}
