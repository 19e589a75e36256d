// SPDX-License-Identifier: MIT
/*
 * UUIDv7 job ids (RFC 9562): 48 bits of Unix milliseconds then random bits,
 * so ids sort by creation time. Thread-safe (getrandom).
 */
#ifndef BU_BASE_UUID_H
#define BU_BASE_UUID_H

#define BU_UUID_SIZE 37 // 36 characters and the NUL

// bu_uuid7 writes a new lowercase UUIDv7 into out. Returns BU_OK or BU_EIO
// when the kernel's random source fails.
int bu_uuid7(char out[BU_UUID_SIZE]);

// bu_uuid_valid returns 1 when s is 36 characters in UUID text form
// (lowercase hex), 0 otherwise.
int bu_uuid_valid(const char *s);

#endif // BU_BASE_UUID_H
