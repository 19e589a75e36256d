// SPDX-License-Identifier: MIT
/*
 * Allocation wrappers. Every allocation of the server goes through these so
 * that tests can inject failures (bu_alloc_fail_after) and so that OOM is an
 * ordinary error on the request path: callers return BU_ENOMEM. Memory is
 * zeroed, so _fini/_free functions are safe on half-built objects.
 * Thread-safe.
 */
#ifndef BU_BASE_ALLOC_H
#define BU_BASE_ALLOC_H

#include <stddef.h>

// bu_alloc returns n zeroed bytes, or NULL when out of memory. Release with
// bu_free.
void *bu_alloc(size_t n);

// bu_alloc_uninit returns n bytes that are not zeroed, or NULL when out of
// memory: for large buffers that are written before they are read (arena
// blocks), where zeroing would touch every page for nothing.
void *bu_alloc_uninit(size_t n);

// bu_calloc returns count*size zeroed bytes, or NULL on overflow or OOM.
void *bu_calloc(size_t count, size_t size);

// bu_realloc resizes p (which may be NULL). Returns the new pointer, after
// which p is dead; on failure returns NULL and p is unchanged.
void *bu_realloc(void *p, size_t n);

// bu_free releases p; NULL is ignored.
void bu_free(void *p);

// bu_strdup copies s (NULL gives NULL). Release with bu_free.
char *bu_strdup(const char *s);

// bu_strndup copies the n bytes at s and NUL-terminates them.
char *bu_strndup(const char *s, size_t n);

// bu_alloc_fail_after makes the n+1-th allocation from now fail (and every
// one after it); a negative n turns injection off. For tests only.
void bu_alloc_fail_after(long n);

#define BU_ALLOC_STRUCT(p) ((p) = bu_alloc(sizeof(*(p))))

#endif // BU_BASE_ALLOC_H
