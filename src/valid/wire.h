// SPDX-License-Identifier: MIT
/*
 * A check of serialized protobuf messages before they are decoded: every
 * string field, at any depth, must be free of NUL bytes. protobuf-c hands
 * strings to C as NUL-terminated, so "victim\0tail" would silently become
 * "victim" (another contact, another idempotency key); such input is
 * refused instead. Walks the wire format with the message descriptors; it
 * allocates nothing. Pure; thread-safe.
 */
#ifndef BU_VALID_WIRE_H
#define BU_VALID_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

// bu_wire_check_strings returns BU_OK when no string field of the message
// of type desc serialized in buf holds a NUL byte. Otherwise BU_EINVAL, with
// the field's path ("contact_datas[2].values[0].string_value") in where
// (len bytes). Malformed wire data is left for the decoder to refuse
// (BU_OK).
int bu_wire_check_strings(const ProtobufCMessageDescriptor *desc,
    const uint8_t *buf, size_t n, char *where, size_t len);

#endif // BU_VALID_WIRE_H
