// SPDX-License-Identifier: MIT
// BLAKE2b-128 content digests.
#include "auth/digest.h"

#include <sodium.h>

void
bu_digest16(const void *data, size_t n, uint8_t out[BU_DIGEST16_SIZE])
{
    crypto_generichash(out, BU_DIGEST16_SIZE, data, n, NULL, 0);
}
