// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the request envelope, decoded the way svc_serve in
 * rpc/service.c decodes it: the bytes as an RpcRequest, its method path
 * resolved on the generated BulkUpsert service descriptor, its payload
 * unpacked with that method's input descriptor, and a
 * SubmitBulkUpsertRequest then validated against the standard columns.
 * No sockets, keyring or SQLite are involved, so each input runs in
 * microseconds.
 *
 * Beyond "no crash", it checks what the service relies on: a decoded input
 * packs and decodes again; bu_validate never fails without OOM; its verdict
 * counts agree with its per-record flags; and every cell of a request found
 * valid converts with bu_validate_cell, since the workers convert cells
 * again when they apply the job. A broken check aborts, which libFuzzer
 * reports as a crash with the input saved.
 *
 * Every message is released with its own free_unpacked and every verdict
 * with bu_verdict_fini, so LeakSanitizer checks the decode paths as well.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/utf8.h"
#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "store/schema.h"
#include "valid/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Filled on the first input, then only read.
static struct bu_schema envelope_schema;

// envelope_check aborts with a message when an expectation is broken.
static void
envelope_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_envelope: check failed: %s\n", what);
        abort();
    }
}

// envelope_resolve is svc_resolve of rpc/service.c (static there): the
// method of "bulkupsert.v1.BulkUpsert/<Method>", or NULL.
static const ProtobufCMethodDescriptor *
envelope_resolve(const char *path)
{
    const ProtobufCServiceDescriptor *d =
        &bulkupsert__v1__bulk_upsert__descriptor;
    size_t n = strlen(d->name);
    if (path == NULL || strncmp(path, d->name, n) != 0 || path[n] != '/') {
        return NULL;
    }
    return protobuf_c_service_descriptor_get_method_by_name(d, path + n + 1);
}

// envelope_quote does what svc_quote does before a client string goes into
// an error message: length bound, then UTF-8 check.
static void
envelope_quote(const char *s)
{
    size_t chars;
    if (s != NULL && strlen(s) <= 200) {
        (void) bu_utf8_count(s, strlen(s), &chars);
    }
}

// envelope_has_tag0 returns 1 when msg or a message inside it kept an
// unknown field numbered 0. protobuf-c 1.4 decodes one whose tag is
// spelled in more than one byte (80 00 ...), keeps it, packs it back as a
// one-byte tag 00, and then refuses its own output. The server never
// re-packs a decoded request (the journal stores the payload bytes as
// received), so this is noted here rather than reported as a failure.
static int
envelope_has_tag0(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *) msg;
    for (unsigned u = 0; u < msg->n_unknown_fields; u++) {
        if (msg->unknown_fields[u].tag == 0) {
            return 1;
        }
    }
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + fd->quantifier_offset);
            ProtobufCMessage *const *sub =
                *(ProtobufCMessage *const *const *) (base + fd->offset);
            for (size_t k = 0; k < n; k++) {
                if (envelope_has_tag0(sub[k])) {
                    return 1;
                }
            }
            continue;
        }
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
            *(const uint32_t *) (base + fd->quantifier_offset) != fd->id) {
            continue;
        }
        const ProtobufCMessage *sub =
            *(ProtobufCMessage *const *) (base + fd->offset);
        if (sub != NULL && envelope_has_tag0(sub)) {
            return 1;
        }
    }
    return 0;
}

// envelope_repack packs msg and decodes the bytes again with the same
// descriptor: whatever protobuf-c decoded, it must be able to send.
static void
envelope_repack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    envelope_check(buf != NULL, "malloc");
    envelope_check(protobuf_c_message_pack(msg, buf) == len,
        "pack wrote get_packed_size bytes");
    ProtobufCMessage *again =
        protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
    envelope_check(again != NULL || envelope_has_tag0(msg),
        "a packed message decodes again");
    if (again != NULL) {
        protobuf_c_message_free_unpacked(again, NULL);
    }
    free(buf);
}

// envelope_validate runs the submit path's validation on req.
static void
envelope_validate(Bulkupsert__V1__SubmitBulkUpsertRequest *req)
{
    struct bu_verdict v;
    int rv = bu_validate(&envelope_schema, req, &v);
    envelope_check(rv == BU_OK, "bu_validate returns BU_OK without OOM");
    envelope_check(!v.shape_failed || v.nerrors > 0,
        "a shape failure carries an error");
    if (!v.shape_failed) {
        size_t nbad = 0;
        for (size_t r = 0; r < req->n_contact_datas; r++) {
            nbad += v.bad[r] != 0;
        }
        envelope_check(nbad == v.nbad, "nbad counts the bad records");
        envelope_check((v.nerrors > 0) == (v.nbad > 0),
            "record errors and bad records go together");
    }
    for (size_t e = 0; e < v.nerrors; e++) {
        const struct bu_field_error *fe = &v.errors[e];
        envelope_check(fe->record_index >= -1 &&
                fe->record_index < (int64_t) req->n_contact_datas,
            "record_index is -1 or a record of the request");
        envelope_check(memchr(fe->reason, '\0', sizeof(fe->reason)) != NULL,
            "reason is NUL-terminated");
    }
    // The workers convert every cell of an accepted record again; a record
    // that passed here must convert there.
    for (size_t r = 0; !v.shape_failed && r < req->n_contact_datas; r++) {
        if (v.bad[r]) {
            continue;
        }
        Bulkupsert__V1__ContactData *rec = req->contact_datas[r];
        for (size_t i = 0; i < req->n_columns; i++) {
            const struct bu_column *col =
                &envelope_schema.cols[v.colmap[i]];
            struct bu_cell cell;
            char reason[160];
            envelope_check(bu_validate_cell(col, rec->values[i], &cell, NULL,
                               reason, sizeof(reason)) == 1,
                "a cell of a valid record converts again");
        }
    }
    bu_verdict_fini(&v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (envelope_schema.ncols == 0) {
        bu_schema_standard(&envelope_schema);
    }
    Bulkupsert__V1__RpcRequest *env =
        bulkupsert__v1__rpc_request__unpack(NULL, size, data);
    if (env == NULL) {
        return 0;
    }
    envelope_quote(env->method);
    envelope_quote(env->request_id);
    envelope_repack(&env->base);

    const ProtobufCMethodDescriptor *method = envelope_resolve(env->method);
    if (method != NULL) {
        ProtobufCMessage *input = protobuf_c_message_unpack(method->input,
            NULL, env->payload.len, env->payload.data);
        if (input != NULL) {
            envelope_repack(input);
            if (input->descriptor ==
                &bulkupsert__v1__submit_bulk_upsert_request__descriptor) {
                envelope_validate(
                    (Bulkupsert__V1__SubmitBulkUpsertRequest *) input);
            }
            protobuf_c_message_free_unpacked(input, NULL);
        }
    }
    bulkupsert__v1__rpc_request__free_unpacked(env, NULL);
    return 0;
}
