// SPDX-License-Identifier: MIT
/*
 * A check of serialized protobuf messages before they are decoded: every
 * string field, at any depth, must be free of NUL bytes. protobuf-c hands
 * strings to C as NUL-terminated, so "victim\0tail" would silently become
 * "victim" (another contact, another idempotency key); such input is
 * refused instead. It also bounds the number of fields at every depth:
 * decoding allocates per field, so 10 MB of empty records would otherwise
 * cost half a gigabyte before any check could run (DESIGN inv 6). Walks the
 * wire format with the message descriptors; it allocates nothing. Pure;
 * thread-safe.
 */
#ifndef BU_VALID_WIRE_H
#define BU_VALID_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

// The most fields a valid request holds: 1000 records of 256 Values (each
// a field holding one field), the columns, and the scalars.
#define BU_WIRE_MAX_FIELDS 600000

// bu_wire_check_strings returns BU_OK when no string field of the message
// of type desc serialized in buf holds a NUL byte and the message has at
// most max_fields fields in all. Otherwise BU_EINVAL (a NUL: the field's
// path, "contact_datas[2].values[0].string_value", is in where, len bytes)
// or BU_ETOOBIG. Malformed wire data is left for the decoder to refuse
// (BU_OK).
int bu_wire_check_strings(const ProtobufCMessageDescriptor *desc,
    const uint8_t *buf, size_t n, size_t max_fields, char *where, size_t len);

#endif // BU_VALID_WIRE_H
