// SPDX-License-Identifier: MIT
/*
 * A memo of verified tokens. A client sends the same token with every
 * request, and checking its Ed25519 signature and claims costs about a
 * tenth of a 1000-record submit's handling; the memo keeps the claims of
 * the last few tokens that verified, keyed by a BLAKE2b-256 digest of the
 * whole token text, and answers a repeat without the signature check.
 *
 * A hit is still checked against the clock (exp, the iat skew) and is
 * dropped when the keyring has been reloaded since it was verified, so a
 * removed key stops its tokens at once. Tokens that fail are never kept:
 * every failure is a full verification (bu_token_verify).
 *
 * Threads: one cache belongs to one thread (no locking). It holds no
 * pointers; a zeroed struct is an empty cache.
 */
#ifndef BU_AUTH_TOKEN_CACHE_H
#define BU_AUTH_TOKEN_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/keyring.h"
#include "auth/token.h"

#define BU_TOKEN_CACHE_SLOTS 16

struct bu_token_cache_slot {
    bool             used;
    uint8_t          digest[32]; // of the token text
    uint64_t         generation; // the keyring's when verified
    uint64_t         tick;       // last use, for eviction
    struct bu_claims claims;
};

struct bu_token_cache {
    struct bu_token_cache_slot slots[BU_TOKEN_CACHE_SLOTS];
    uint64_t                   tick;
};

// bu_token_cache_verify answers as bu_token_verify(keyring, token, now,
// claimsp) would, from the memo when it can. *claimsp is written only on
// success.
int bu_token_cache_verify(struct bu_token_cache *cache,
    struct bu_keyring *keyring, const char *token, int64_t now,
    struct bu_claims *claimsp);

// bu_token_cache_clear forgets every token (the memory is wiped).
void bu_token_cache_clear(struct bu_token_cache *cache);

#endif // BU_AUTH_TOKEN_CACHE_H
