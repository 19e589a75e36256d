// SPDX-License-Identifier: MIT
/*
 * The retry policy of the C client: which failures are safe to send again
 * and how long to wait first. Pure functions of their arguments, so that
 * the transport decides and waits in one place and tests can check the
 * arithmetic. A retry must never apply a request twice: only a refusal the
 * server made before doing anything (429, 503) or a request that never
 * left the process may go again.
 */
#include "client_int.h"

#define RETRY_BASE_DEFAULT_MS 100u
#define RETRY_MAX_DEFAULT_MS  10000u

int
bu__retry_safe(const struct bulkupsert_status *status, int sent)
{
    switch (status->code) {
    case BULKUPSERT_RESOURCE_EXHAUSTED:
        // Only the server says RESOURCE_EXHAUSTED, and only before it
        // takes the request.
        return status->http_status == 429;
    case BULKUPSERT_UNAVAILABLE:
        return !sent || status->http_status == 503;
    default:
        return 0;
    }
}

unsigned
bu__retry_delay_ms(const struct bulkupsert_retry *policy, unsigned attempt,
    unsigned retry_after_ms, uint32_t random)
{
    uint64_t base = policy->base_delay_ms != 0 ? policy->base_delay_ms
                                               : RETRY_BASE_DEFAULT_MS;
    uint64_t cap = policy->max_delay_ms != 0 ? policy->max_delay_ms
                                             : RETRY_MAX_DEFAULT_MS;
    // base * 2^(attempt-1), capped; the shift stops early so that it
    // cannot overflow.
    uint64_t backoff = base;
    for (unsigned i = 1; i < attempt && backoff < cap; i++) {
        backoff *= 2;
    }
    if (backoff > cap) {
        backoff = cap;
    }
    // Jitter: uniform in [backoff/2, backoff].
    uint64_t half = backoff / 2;
    uint64_t wait = retry_after_ms + half + random % (backoff - half + 1);
    return (unsigned) (wait < cap ? wait : cap);
}
