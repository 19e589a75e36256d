// SPDX-License-Identifier: MIT
/*
 * The transport of the C client. A bulkupsert_client embeds the
 * ProtobufCService of bulkupsert.v1.BulkUpsert, and the service's invoke
 * callback (client_invoke) carries every call: it packs the request into an
 * RpcRequest envelope, sends it on its own nng req0 context, waits for the
 * RpcResponse, and hands the decoded reply to the closure. Every public
 * call finds its method by name in the generated descriptor
 * (client_call_method), so adding a method to the proto only needs a thin
 * wrapper here.
 *
 * A call is one nng_ctx plus one nng_aio, opened and closed by the calling
 * thread, which is why calls from several threads are safe. The socket never
 * resends (NNG_OPT_REQ_RESENDTIME is infinite): a resent submit would queue
 * a second job. Send and receive share one deadline. A send that times out
 * never left the process (req0 completes the send only once a pipe takes the
 * message), so it is UNAVAILABLE and safe to retry; a receive that times out
 * is DEADLINE_EXCEEDED, and the request may have been applied.
 */
#include "bulkupsert.h"

#include "client_int.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <protobuf-c/protobuf-c.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bulkupsert_client {
    // First member, so that client_invoke can recover the client from the
    // ProtobufCService pointer the generated stubs pass it.
    ProtobufCService service;
    nng_socket       sock;
    char            *url;
    pthread_mutex_t  mtx;
    char            *token;      // guarded by mtx; may be NULL
    int              timeout_ms; // guarded by mtx
};

// nng 1.x initialises itself inside the first socket open and races when
// two threads do that at once; opens of this library take turns.
static pthread_mutex_t client_open_mtx = PTHREAD_MUTEX_INITIALIZER;

// The closure data of every call made through client->service. The
// transport fills status; the closure stores the reply, which from then on
// belongs to the public call (and then to its caller).
struct client_call {
    struct bulkupsert_status *status;
    ProtobufCMessage         *reply;
};

static char *
client_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char  *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

static void
client_free_token(char *token)
{
    if (token != NULL) {
        bu__wipe(token, strlen(token));
        free(token);
    }
}

static int64_t
client_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Packs input into a new RpcRequest message for method and returns it in
// *msgp. Returns BULKUPSERT_OK, or fills status and returns its code.
static int
call_encode(struct bulkupsert_client *client, const char *method_path,
    const ProtobufCMessage *input, nng_msg **msgp,
    struct bulkupsert_status *status)
{
    Bulkupsert__V1__RpcRequest env = BULKUPSERT__V1__RPC_REQUEST__INIT;
    uint8_t                   *payload = NULL;
    char                      *token = NULL;
    nng_msg                   *msg = NULL;
    char                       request_id[20];
    int                        rv = BULKUPSERT_OK;

    // A NULL string in a repeated field or a missing required field would
    // crash the packer; refuse it as the caller's mistake instead.
    if (!protobuf_c_message_check(input)) {
        bu__status_set(status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: the %s is incomplete (a NULL string or message inside it)",
            method_path, input->descriptor->short_name);
        return BULKUPSERT_INVALID_ARGUMENT;
    }

    size_t plen = protobuf_c_message_get_packed_size(input);
    if ((payload = malloc(plen > 0 ? plen : 1)) == NULL) {
        rv = BULKUPSERT_INTERNAL;
        goto out;
    }
    protobuf_c_message_pack(input, payload);

    pthread_mutex_lock(&client->mtx);
    if (client->token != NULL
        && (token = client_strdup(client->token)) == NULL) {
        rv = BULKUPSERT_INTERNAL;
    }
    pthread_mutex_unlock(&client->mtx);
    if (rv != BULKUPSERT_OK) {
        goto out;
    }

    snprintf(request_id, sizeof(request_id), "%08x%08x",
        (unsigned) nng_random(), (unsigned) nng_random());
    // The envelope only borrows these strings; protobuf-c's init macro
    // types the fields as non-const.
    env.method = (char *) method_path;
    env.token = token;
    env.request_id = request_id;
    env.has_payload = 1;
    env.payload.len = plen;
    env.payload.data = payload;

    size_t elen = protobuf_c_message_get_packed_size(&env.base);
    if (nng_msg_alloc(&msg, elen) != 0) {
        rv = BULKUPSERT_INTERNAL;
        goto out;
    }
    protobuf_c_message_pack(&env.base, nng_msg_body(msg));
    *msgp = msg;

out:
    if (rv == BULKUPSERT_INTERNAL) {
        bu__status_set(status, rv, 0, "%s: out of memory building the request",
            method_path);
    }
    client_free_token(token);
    free(payload);
    return rv;
}

// Maps an nng error of the send or receive step to a status.
static int
call_fail(struct bulkupsert_client *client, int nrv, int sent, int timeout_ms,
    struct bulkupsert_status *status)
{
    if (nrv == NNG_ENOMEM) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0, "out of memory");
    } else if (nrv == NNG_ETIMEDOUT && sent) {
        bu__status_set(status, BULKUPSERT_DEADLINE_EXCEEDED, 0,
            "timed out after %d ms waiting for %s (the request was sent and "
            "may have been applied)",
            timeout_ms, client->url);
    } else if (nrv == NNG_ETIMEDOUT) {
        bu__status_set(status, BULKUPSERT_UNAVAILABLE, 0,
            "timed out after %d ms waiting for a connection to %s (the "
            "request was not sent; is the server running?)",
            timeout_ms, client->url);
    } else if (sent) {
        bu__status_set(status, BULKUPSERT_UNAVAILABLE, 0,
            "%s: %s before the reply (the request may have been applied)",
            client->url, nng_strerror(nrv));
    } else {
        bu__status_set(status, BULKUPSERT_UNAVAILABLE, 0,
            "%s: %s (the request was not sent)", client->url,
            nng_strerror(nrv));
    }
    return status->code;
}

// Sends *msgp on a new context and waits for the reply, within timeout_ms
// for both steps together. The request message is consumed in every case;
// on success *msgp is the reply message. Returns BULKUPSERT_OK, or fills
// status and returns its code.
static int
call_exchange(struct bulkupsert_client *client, nng_msg **msgp, int timeout_ms,
    struct bulkupsert_status *status)
{
    nng_ctx  ctx;
    nng_aio *aio = NULL;
    int      ctx_open = 0;
    int      sent = 0;
    int      nrv;

    int64_t deadline = client_mono_ms() + timeout_ms;
    if ((nrv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
        goto fail;
    }
    if ((nrv = nng_ctx_open(&ctx, client->sock)) != 0) {
        goto fail;
    }
    ctx_open = 1;

    nng_aio_set_timeout(aio, timeout_ms);
    nng_aio_set_msg(aio, *msgp);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((nrv = nng_aio_result(aio)) != 0) {
        // A failed send gives the message back through the aio.
        *msgp = nng_aio_get_msg(aio);
        goto fail;
    }
    // The context owns the request now.
    *msgp = NULL;
    sent = 1;

    int64_t left = deadline - client_mono_ms();
    if (left <= 0) {
        nrv = NNG_ETIMEDOUT;
        goto fail;
    }
    nng_aio_set_timeout(aio, (nng_duration) left);
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((nrv = nng_aio_result(aio)) != 0) {
        goto fail;
    }
    *msgp = nng_aio_get_msg(aio);
    nng_ctx_close(ctx);
    nng_aio_free(aio);
    return BULKUPSERT_OK;

fail:
    if (*msgp != NULL) {
        nng_msg_free(*msgp);
        *msgp = NULL;
    }
    if (ctx_open) {
        nng_ctx_close(ctx);
    }
    nng_aio_free(aio);
    return call_fail(client, nrv, sent, timeout_ms, status);
}

// Decodes the RpcResponse in msg, fills status from it and, when it is OK,
// unpacks the payload as a method->output message into *replyp (owned by
// the caller, freed with protobuf_c_message_free_unpacked). Returns the
// status code.
static int
call_decode(struct bulkupsert_client *client,
    const ProtobufCMethodDescriptor *method, nng_msg *msg,
    ProtobufCMessage **replyp, struct bulkupsert_status *status)
{
    Bulkupsert__V1__RpcResponse *env = bulkupsert__v1__rpc_response__unpack(
        NULL, nng_msg_len(msg), nng_msg_body(msg));
    if (env == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "%s: the reply to %s is not an RpcResponse (%zu bytes)",
            client->url, method->name, nng_msg_len(msg));
        return status->code;
    }
    if (env->status == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "%s: the reply to %s has no status", client->url, method->name);
        goto out;
    }
    bu__status_from_wire(status, env->status);
    if (status->code != BULKUPSERT_OK) {
        goto out;
    }
    ProtobufCMessage *reply = protobuf_c_message_unpack(method->output, NULL,
        env->has_payload ? env->payload.len : 0,
        env->has_payload ? env->payload.data : NULL);
    if (reply == NULL) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "%s: the payload of the %s reply is not a %s", client->url,
            method->name, method->output->name);
        goto out;
    }
    *replyp = reply;

out:
    bulkupsert__v1__rpc_response__free_unpacked(env, NULL);
    return status->code;
}

// The invoke callback of client->service: one RPC, start to end. It calls
// closure exactly once, with the reply (whose ownership passes to the
// closure) or with NULL when status is not OK. closure_data must be a
// struct client_call.
static void
client_invoke(ProtobufCService *service, unsigned method_index,
    const ProtobufCMessage *input, ProtobufCClosure closure,
    void *closure_data)
{
    struct bulkupsert_client *client = (struct bulkupsert_client *) service;
    struct client_call       *call = closure_data;
    struct bulkupsert_status *status = call->status;
    const ProtobufCMethodDescriptor *method
        = &service->descriptor->methods[method_index];
    ProtobufCMessage *reply = NULL;
    nng_msg          *msg = NULL;
    char              method_path[128];

    int n = snprintf(method_path, sizeof(method_path), "%s/%s",
        service->descriptor->name, method->name);
    if (n < 0 || (size_t) n >= sizeof(method_path)) {
        bu__status_set(status, BULKUPSERT_INTERNAL, 0,
            "method name %s/%s is too long", service->descriptor->name,
            method->name);
        closure(NULL, closure_data);
        return;
    }

    pthread_mutex_lock(&client->mtx);
    int timeout_ms = client->timeout_ms;
    pthread_mutex_unlock(&client->mtx);

    int rv = call_encode(client, method_path, input, &msg, status);
    if (rv == BULKUPSERT_OK) {
        rv = call_exchange(client, &msg, timeout_ms, status);
    }
    if (rv == BULKUPSERT_OK) {
        call_decode(client, method, msg, &reply, status);
    }
    if (msg != NULL) {
        nng_msg_free(msg);
    }
    closure(reply, closure_data);
}

// The closure of every call: it keeps the reply the transport hands over.
// The const comes from protobuf-c's closure type; the transport gives the
// message up, so the call may free it.
static void
client_keep_reply(const ProtobufCMessage *reply, void *closure_data)
{
    struct client_call *call = closure_data;
    call->reply = (ProtobufCMessage *) reply;
}

int
bulkupsert_client_open(
    bulkupsert_client **clientp, const char *url, const char *token)
{
    struct bulkupsert_client *client;
    int                       nrv;

    if (clientp == NULL || url == NULL || url[0] == '\0') {
        return BULKUPSERT_INVALID_ARGUMENT;
    }
    if ((client = calloc(1, sizeof(*client))) == NULL) {
        return BULKUPSERT_INTERNAL;
    }
    client->service.descriptor = &bulkupsert__v1__bulk_upsert__descriptor;
    client->service.invoke = client_invoke;
    // No destroy callback: bulkupsert_client_close owns the teardown.
    client->service.destroy = NULL;
    client->timeout_ms = BULKUPSERT_DEFAULT_TIMEOUT_MS;
    if (pthread_mutex_init(&client->mtx, NULL) != 0) {
        free(client);
        return BULKUPSERT_INTERNAL;
    }
    int rv = BULKUPSERT_INTERNAL;
    if ((client->url = client_strdup(url)) == NULL) {
        goto fail_mtx;
    }
    if (token != NULL && (client->token = client_strdup(token)) == NULL) {
        goto fail_mtx;
    }
    pthread_mutex_lock(&client_open_mtx);
    nrv = nng_req0_open(&client->sock);
    pthread_mutex_unlock(&client_open_mtx);
    if (nrv != 0) {
        goto fail_mtx;
    }
    // A resend would turn one submit into two jobs; the caller decides
    // whether to retry (with an idempotency key).
    if (nng_socket_set_ms(
            client->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)
            != 0
        || nng_socket_set_size(
               client->sock, NNG_OPT_RECVMAXSZ, BULKUPSERT_MAX_REPLY_BYTES)
            != 0) {
        goto fail_sock;
    }
    // Non-blocking dial: nng keeps redialling in the background, so a
    // server that starts later is found by the next call.
    if ((nrv = nng_dial(client->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        rv = nrv == NNG_ENOMEM ? BULKUPSERT_INTERNAL
                               : BULKUPSERT_INVALID_ARGUMENT;
        goto fail_sock;
    }
    *clientp = client;
    return BULKUPSERT_OK;

fail_sock:
    nng_close(client->sock);
fail_mtx:
    client_free_token(client->token);
    free(client->url);
    pthread_mutex_destroy(&client->mtx);
    free(client);
    return rv;
}

void
bulkupsert_client_close(bulkupsert_client *client)
{
    if (client == NULL) {
        return;
    }
    nng_close(client->sock);
    client_free_token(client->token);
    free(client->url);
    pthread_mutex_destroy(&client->mtx);
    free(client);
}

int
bulkupsert_client_set_token(bulkupsert_client *client, const char *token)
{
    char *copy = NULL;

    if (token != NULL && (copy = client_strdup(token)) == NULL) {
        return BULKUPSERT_INTERNAL;
    }
    pthread_mutex_lock(&client->mtx);
    char *old = client->token;
    client->token = copy;
    pthread_mutex_unlock(&client->mtx);
    client_free_token(old);
    return BULKUPSERT_OK;
}

void
bulkupsert_client_set_timeout(bulkupsert_client *client, int timeout_ms)
{
    if (timeout_ms <= 0) {
        return;
    }
    pthread_mutex_lock(&client->mtx);
    client->timeout_ms = timeout_ms;
    pthread_mutex_unlock(&client->mtx);
}

// Checks the arguments every public call shares. Returns BULKUPSERT_OK or
// fills status with INVALID_ARGUMENT.
static int
client_call_check(const bulkupsert_client *client, const void *request,
    const char *what, struct bulkupsert_status *status)
{
    if (client == NULL || request == NULL) {
        bu__status_set(status, BULKUPSERT_INVALID_ARGUMENT, 0,
            "%s: %s is NULL", what, client == NULL ? "client" : "request");
        return BULKUPSERT_INVALID_ARGUMENT;
    }
    return BULKUPSERT_OK;
}

// client_call_method calls the method called name through the service's
// invoke (the path the generated stubs take too) and hands back the reply.
static int
client_call_method(bulkupsert_client *client, const char *name,
    const ProtobufCMessage *request, ProtobufCMessage **replyp,
    struct bulkupsert_status *status)
{
    struct bulkupsert_status scratch;
    struct client_call       call = { .status = status, .reply = NULL };

    if (status == NULL) {
        call.status = &scratch;
    }
    bu__status_reset(call.status);
    *replyp = NULL;
    const ProtobufCMethodDescriptor *m = NULL;
    if (client_call_check(client, request, name, call.status)
        == BULKUPSERT_OK) {
        m = protobuf_c_service_descriptor_get_method_by_name(
            client->service.descriptor, name);
        if (m == NULL || m->input != request->descriptor) {
            bu__status_set(call.status, BULKUPSERT_INVALID_ARGUMENT, 0,
                "%s: not a method of %s taking %s", name,
                client->service.descriptor->name, request->descriptor->name);
        }
    }
    if (m != NULL && call.status->code == BULKUPSERT_OK) {
        unsigned index = (unsigned) (m - client->service.descriptor->methods);
        client->service.invoke(
            &client->service, index, request, client_keep_reply, &call);
    }
    int rv = call.status->code;
    if (rv == BULKUPSERT_OK) {
        *replyp = call.reply;
    } else if (call.reply != NULL) {
        protobuf_c_message_free_unpacked(call.reply, NULL);
    }
    if (status == NULL) {
        bulkupsert_status_clear(&scratch);
    }
    return rv;
}

int
bulkupsert_cancel_job(bulkupsert_client    *client,
    const Bulkupsert__V1__CancelJobRequest *request,
    Bulkupsert__V1__Job **jobp, struct bulkupsert_status *status)
{
    return client_call_method(client, "CancelJob",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) jobp,
        status);
}

int
bulkupsert_list_jobs(bulkupsert_client    *client,
    const Bulkupsert__V1__ListJobsRequest *request,
    Bulkupsert__V1__ListJobsResponse     **replyp,
    struct bulkupsert_status              *status)
{
    return client_call_method(client, "ListJobs",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_describe_table(bulkupsert_client    *client,
    const Bulkupsert__V1__DescribeTableRequest *request,
    Bulkupsert__V1__DescribeTableResponse     **replyp,
    struct bulkupsert_status                   *status)
{
    return client_call_method(client, "DescribeTable",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_add_column(bulkupsert_client    *client,
    const Bulkupsert__V1__AddColumnRequest *request,
    Bulkupsert__V1__AddColumnResponse     **replyp,
    struct bulkupsert_status               *status)
{
    return client_call_method(client, "AddColumn",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_set_import_enabled(bulkupsert_client   *client,
    const Bulkupsert__V1__SetImportEnabledRequest *request,
    Bulkupsert__V1__SetImportEnabledResponse     **replyp,
    struct bulkupsert_status                      *status)
{
    return client_call_method(client, "SetImportEnabled",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_submit(bulkupsert_client               *client,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *request,
    Bulkupsert__V1__SubmitBulkUpsertResponse     **replyp,
    struct bulkupsert_status                      *status)
{
    return client_call_method(client, "SubmitBulkUpsert",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_get_job(bulkupsert_client    *client,
    const Bulkupsert__V1__GetJobRequest *request, Bulkupsert__V1__Job **jobp,
    struct bulkupsert_status *status)
{
    return client_call_method(client, "GetJob",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) jobp,
        status);
}
