// SPDX-License-Identifier: MIT
#include "auth/token_cache.h"

#include <sodium.h>
#include <string.h>

#include "base/err.h"

int
bu_token_cache_verify(struct bu_token_cache *cache, struct bu_keyring *keyring,
    const char *token, int64_t now, struct bu_claims *claimsp)
{
    if (keyring == NULL || token == NULL
        || strnlen(token, BU_TOKEN_MAX_BYTES + 1) > BU_TOKEN_MAX_BYTES) {
        return BU_EAUTH;
    }
    uint8_t digest[32];
    crypto_generichash(digest, sizeof(digest), (const uint8_t *) token,
        strlen(token), NULL, 0);
    uint64_t                    generation = bu_keyring_generation(keyring);
    struct bu_token_cache_slot *victim = &cache->slots[0];
    for (size_t i = 0; i < BU_TOKEN_CACHE_SLOTS; i++) {
        struct bu_token_cache_slot *s = &cache->slots[i];
        if (s->used && sodium_memcmp(s->digest, digest, sizeof(digest)) == 0) {
            if (s->generation == generation
                && s->claims.iat <= now + BU_TOKEN_SKEW_SECS
                && now < s->claims.exp) {
                s->tick = ++cache->tick;
                *claimsp = s->claims;
                return BU_OK;
            }
            // Stale: verify again, into this slot.
            sodium_memzero(s, sizeof(*s));
            victim = s;
            break;
        }
        if (!s->used || (victim->used && s->tick < victim->tick)) {
            victim = s;
        }
    }
    struct bu_claims claims;
    int              rv = bu_token_verify(keyring, token, now, &claims);
    if (rv != BU_OK) {
        return rv;
    }
    victim->used = true;
    memcpy(victim->digest, digest, sizeof(digest));
    victim->generation = generation;
    victim->tick = ++cache->tick;
    victim->claims = claims;
    *claimsp = claims;
    return BU_OK;
}

void
bu_token_cache_clear(struct bu_token_cache *cache)
{
    sodium_memzero(cache, sizeof(*cache));
}
