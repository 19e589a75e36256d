// SPDX-License-Identifier: MIT
/*
 * A bump arena for protobuf-c unpacking. Unpacking a 1000-record request
 * makes some twenty thousand small allocations (a message per Value, a
 * string per cell); taking them from a few large blocks and releasing them
 * all at once costs a fraction of malloc and free. The arena's
 * ProtobufCAllocator goes to protobuf-c's unpack; the messages it returns
 * must never be passed to free_unpacked: bu_arena_fini releases them.
 *
 * Blocks come from bu_alloc_uninit, so failure injection and BU_ENOMEM
 * behave as elsewhere; they are not zeroed (protobuf-c initialises every
 * message it unpacks), and bu_arena_alloc's memory is not either. One arena
 * belongs to one thread at a time.
 *
 * Released blocks of up to 4 MiB are kept, 16 MiB of them at most in the
 * process, and later arenas on any thread take them before asking malloc:
 * a request's megabyte block was otherwise mapped afresh each time, and
 * the kernel's page faults and zeroing took 8% of a handler's time. The
 * cache is guarded by a mutex, taken once per block.
 */
#ifndef BU_BASE_ARENA_H
#define BU_BASE_ARENA_H

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>

struct bu_arena_block;

struct bu_arena {
    ProtobufCAllocator     allocator; // for protobuf-c's unpack
    struct bu_arena_block *blocks;    // newest first
    size_t                 next_size; // of the next block
    bool                   oom;       // an allocation has failed
};

// bu_arena_init makes an empty arena whose first block will be first_size
// bytes (0: 64 KiB; at most 64 MiB); blocks double from there. Never fails:
// memory is taken on first use.
void bu_arena_init(struct bu_arena *arena, size_t first_size);

// bu_arena_alloc returns n bytes aligned for any type, or NULL when out of
// memory (and then sets arena->oom, so that a caller whose unpack returned
// NULL can tell OOM from bad input). The memory lives until bu_arena_fini.
void *bu_arena_alloc(struct bu_arena *arena, size_t n);

// bu_arena_fini releases every block; the arena is empty and may be used
// again, and then starts with one block as large as this use took (at most
// 64 MiB).
void bu_arena_fini(struct bu_arena *arena);

// bu_arena_cache_release frees the kept blocks (at exit, so that leak
// checkers see none). Thread-safe; arenas may go on using the cache.
void bu_arena_cache_release(void);

#endif // BU_BASE_ARENA_H
