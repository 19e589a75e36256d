// SPDX-License-Identifier: MIT
#include "base/arena.h"

#include "base/alloc.h"

#include <stdalign.h>
#include <stdint.h>

#define ARENA_FIRST_SIZE     (64u * 1024u)
#define ARENA_MAX_FIRST_SIZE (64u * 1024u * 1024u)
#define ARENA_ALIGN          alignof(max_align_t)

struct bu_arena_block {
    struct bu_arena_block *next;
    size_t                 size; // usable bytes after the header
    size_t                 used;
    alignas(max_align_t) unsigned char data[];
};

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
        if (size > SIZE_MAX - sizeof(*b)
            || (b = bu_alloc_uninit(sizeof(*b) + size)) == NULL) {
            arena->oom = true;
            return NULL;
        }
        b->size = size;
        b->used = 0;
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
        bu_free(b);
        b = next;
    }
    arena->blocks = NULL;
    arena->oom = false;
    // A reused arena starts with one block the size of the last use.
    arena->next_size = total < ARENA_FIRST_SIZE ? ARENA_FIRST_SIZE
        : total > ARENA_MAX_FIRST_SIZE          ? ARENA_MAX_FIRST_SIZE
                                                : total;
}
