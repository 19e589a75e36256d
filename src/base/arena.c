// SPDX-License-Identifier: MIT
#include "base/arena.h"

#include "base/alloc.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>

#define ARENA_FIRST_SIZE     (64u * 1024u)
#define ARENA_MAX_FIRST_SIZE (64u * 1024u * 1024u)
#define ARENA_ALIGN          alignof(max_align_t)
// Spare blocks kept for the next arenas, in all, and the largest kept.
#define ARENA_CACHE_BYTES     (16u * 1024u * 1024u)
#define ARENA_CACHE_MAX_BLOCK (4u * 1024u * 1024u)

struct bu_arena_block {
    struct bu_arena_block *next;
    size_t                 size; // usable bytes after the header
    size_t                 used;
    alignas(max_align_t) unsigned char data[];
};

// The process's spare blocks, most recently released first.
static pthread_mutex_t        arena_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bu_arena_block *arena_cache;       // guarded by arena_cache_mu
static size_t                 arena_cache_bytes; // guarded by arena_cache_mu

// arena_cache_take returns a spare block of at least size usable bytes
// (used reset), or NULL.
static struct bu_arena_block *
arena_cache_take(size_t size)
{
    struct bu_arena_block *b = NULL;
    pthread_mutex_lock(&arena_cache_mu);
    for (struct bu_arena_block **pp = &arena_cache; *pp != NULL;
         pp = &(*pp)->next) {
        if ((*pp)->size >= size) {
            b = *pp;
            *pp = b->next;
            arena_cache_bytes -= b->size;
            break;
        }
    }
    pthread_mutex_unlock(&arena_cache_mu);
    if (b != NULL) {
        b->used = 0;
        b->next = NULL;
    }
    return b;
}

// arena_cache_put keeps b for a later arena when it is small enough and
// there is room; otherwise frees it.
static void
arena_cache_put(struct bu_arena_block *b)
{
    bool kept = false;
    if (b->size <= ARENA_CACHE_MAX_BLOCK) {
        pthread_mutex_lock(&arena_cache_mu);
        if (arena_cache_bytes + b->size <= ARENA_CACHE_BYTES) {
            b->next = arena_cache;
            arena_cache = b;
            arena_cache_bytes += b->size;
            kept = true;
        }
        pthread_mutex_unlock(&arena_cache_mu);
    }
    if (!kept) {
        bu_free(b);
    }
}

static void *
arena_pb_alloc(void *data, size_t n)
{
    return bu_arena_alloc(data, n);
}

static void
arena_pb_free(void *data, void *p)
{
    (void) data; // released all at once by bu_arena_fini
    (void) p;
}

void
bu_arena_init(struct bu_arena *arena, size_t first_size)
{
    arena->allocator.alloc = arena_pb_alloc;
    arena->allocator.free = arena_pb_free;
    arena->allocator.allocator_data = arena;
    arena->blocks = NULL;
    arena->oom = false;
    arena->next_size = first_size == 0      ? ARENA_FIRST_SIZE
        : first_size > ARENA_MAX_FIRST_SIZE ? ARENA_MAX_FIRST_SIZE
                                            : first_size;
}

void *
bu_arena_alloc(struct bu_arena *arena, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t) (ARENA_ALIGN - 1);
    if (need < n) {
        arena->oom = true; // overflow
        return NULL;
    }
    struct bu_arena_block *b = arena->blocks;
    if (b == NULL || b->size - b->used < need) {
        size_t size = arena->next_size;
        while (size < need) {
            size *= 2;
        }
        b = arena_cache_take(size);
        if (b == NULL) {
            if (size > SIZE_MAX - sizeof(*b)
                || (b = bu_alloc_uninit(sizeof(*b) + size)) == NULL) {
                arena->oom = true;
                return NULL;
            }
            b->size = size;
            b->used = 0;
        }
        b->next = arena->blocks;
        arena->blocks = b;
        arena->next_size = size <= SIZE_MAX / 2 ? size * 2 : size;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void
bu_arena_fini(struct bu_arena *arena)
{
    struct bu_arena_block *b = arena->blocks;
    size_t                 total = 0;
    while (b != NULL) {
        struct bu_arena_block *next = b->next;
        total += b->size;
        arena_cache_put(b);
        b = next;
    }
    arena->blocks = NULL;
    arena->oom = false;
    // A reused arena starts with one block the size of the last use.
    arena->next_size = total < ARENA_FIRST_SIZE ? ARENA_FIRST_SIZE
        : total > ARENA_MAX_FIRST_SIZE          ? ARENA_MAX_FIRST_SIZE
                                                : total;
}

void
bu_arena_cache_release(void)
{
    pthread_mutex_lock(&arena_cache_mu);
    struct bu_arena_block *b = arena_cache;
    arena_cache = NULL;
    arena_cache_bytes = 0;
    pthread_mutex_unlock(&arena_cache_mu);
    while (b != NULL) {
        struct bu_arena_block *next = b->next;
        bu_free(b);
        b = next;
    }
}
