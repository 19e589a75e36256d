// SPDX-License-Identifier: MIT
/*
 * Wire-format walk (tag, then varint / 64-bit / length-delimited / 32-bit
 * value). Repeated fields count their occurrences for the path. Nesting is
 * bounded, so a hostile message cannot exhaust the stack.
 */
#include "valid/wire.h"

#include "base/err.h"

#include <stdio.h>
#include <string.h>

#define WIRE_MAX_DEPTH 32

// wire_varint reads a varint at *p (before end); 0 when malformed.
static int
wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *vp)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t) (b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *vp = v;
            return 1;
        }
    }
    return 0;
}

// wire_field returns the field numbered num, or NULL. Field numbers in one
// run (every message of this service) index the table directly; others go
// through protobuf-c's range search.
static const ProtobufCFieldDescriptor *
wire_field(const ProtobufCMessageDescriptor *desc, uint32_t num)
{
    const ProtobufCIntRange *r = desc->field_ranges;
    if (desc->n_field_ranges == 1 && num >= (uint32_t) r->start_value
        && num - (uint32_t) r->start_value < desc->n_fields) {
        return &desc->fields[(uint32_t) r->orig_index + num
            - (uint32_t) r->start_value];
    }
    return protobuf_c_message_descriptor_get_field(desc, num);
}

// One step of the path from the top message to the field being walked.
struct wire_step {
    const ProtobufCFieldDescriptor *field;
    unsigned                        nth; // occurrence, for repeated fields
};

struct wire_walk {
    size_t           budget; // fields still allowed
    struct wire_step path[WIRE_MAX_DEPTH + 1];
};

// wire_where writes the path of the first depth steps, "a.b[3].c", into
// where; only done once a fault is found.
static void
wire_where(const struct wire_walk *w, int depth, char *where, size_t len)
{
    size_t at = 0;
    where[0] = '\0';
    for (int i = 0; i < depth && at < len; i++) {
        const ProtobufCFieldDescriptor *f = w->path[i].field;
        int                             n = snprintf(where + at, len - at,
            f->label == PROTOBUF_C_LABEL_REPEATED ? "%s%s[%u]" : "%s%s",
            i > 0 ? "." : "", f->name, w->path[i].nth);
        if (n < 0 || (size_t) n >= len - at) {
            break;
        }
        at += (size_t) n;
    }
}

// wire_walk_message checks one message at nesting depth; on a fault it
// writes the path into where.
static int
wire_walk_message(struct wire_walk *w, const ProtobufCMessageDescriptor *desc,
    const uint8_t *p, const uint8_t *end, int depth, char *where, size_t len)
{
    unsigned counts[64]; // occurrences of the first 64 fields
    size_t   nfields = desc->n_fields < 64 ? desc->n_fields : 64;
    memset(counts, 0, nfields * sizeof(counts[0]));
    while (p < end) {
        uint64_t tag, v;
        if (!wire_varint(&p, end, &tag)) {
            return BU_OK; // malformed: the decoder refuses it
        }
        if (w->budget == 0) {
            wire_where(w, depth, where, len);
            return BU_ETOOBIG;
        }
        w->budget--;
        uint32_t                        num = (uint32_t) (tag >> 3);
        const ProtobufCFieldDescriptor *f = wire_field(desc, num);
        unsigned                        nth = 0;
        if (f != NULL) {
            size_t fi = (size_t) (f - desc->fields);
            if (fi < nfields) {
                nth = counts[fi]++;
            }
        }
        switch (tag & 7) {
        case 0:
            if (!wire_varint(&p, end, &v)) {
                return BU_OK;
            }
            break;
        case 1:
            if (end - p < 8) {
                return BU_OK;
            }
            p += 8;
            break;
        case 5:
            if (end - p < 4) {
                return BU_OK;
            }
            p += 4;
            break;
        case 2: {
            if (!wire_varint(&p, end, &v) || v > (uint64_t) (end - p)) {
                return BU_OK;
            }
            const uint8_t *body = p;
            p += v;
            if (f == NULL) {
                break;
            }
            w->path[depth] = (struct wire_step) { f, nth };
            if (f->type == PROTOBUF_C_TYPE_STRING
                && memchr(body, '\0', (size_t) v) != NULL) {
                wire_where(w, depth + 1, where, len);
                return BU_EINVAL;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth < WIRE_MAX_DEPTH) {
                int rv = wire_walk_message(
                    w, f->descriptor, body, body + v, depth + 1, where, len);
                if (rv != BU_OK) {
                    return rv;
                }
            }
            break;
        }
        default:
            return BU_OK; // groups or junk: the decoder refuses them
        }
    }
    return BU_OK;
}

int
bu_wire_check_strings(const ProtobufCMessageDescriptor *desc,
    const uint8_t *buf, size_t n, size_t max_fields, char *where, size_t len)
{
    if (len == 0) {
        return BU_EINVAL;
    }
    where[0] = '\0';
    struct wire_walk w = { .budget = max_fields };
    return wire_walk_message(&w, desc, buf, buf + n, 0, where, len);
}
