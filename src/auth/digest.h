// SPDX-License-Identifier: MIT
/*
 * Content digests (unkeyed BLAKE2b via libsodium): telling whether a request
 * repeated under an idempotency key is the same request. Not for secrets.
 * Thread-safe once sodium_init() has run.
 */
#ifndef BU_AUTH_DIGEST_H
#define BU_AUTH_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define BU_DIGEST16_SIZE 16

// bu_digest16 writes the 16-byte BLAKE2b digest of the n bytes at data.
void bu_digest16(const void *data, size_t n, uint8_t out[BU_DIGEST16_SIZE]);

#endif // BU_AUTH_DIGEST_H
