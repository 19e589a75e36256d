// SPDX-License-Identifier: MIT
/*
 * The client of the C library: its nng req0 socket and dialer, its
 * settings (token, timeout, retry policy), and the public calls, each a
 * thin wrapper that names its method. Every call, synchronous or not, goes
 * through bu__call_start (call.c), which finds the method by name in the
 * service descriptor protoc-c generates, so adding a method to the proto
 * only needs a wrapper here; a synchronous call is the asynchronous one
 * followed by bulkupsert_call_result, which waits.
 *
 * The dialer: nng redials a lost connection by itself, but nng 1.5.2's
 * dialer can give up for good when a connection attempt fails in a
 * particular way (seen after a server is killed and restarted on the same
 * ipc:// path). The pipe callbacks count connections, and when a send finds
 * none for a whole timeout, bu__client_redial adds a fresh dialer (once per
 * dialer generation, however many calls saw it, and at most
 * BU__MAX_DIALERS in all; old ones are closed with the socket).
 */
#include "bulkupsert.h"

#include "client_int.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <protobuf-c/protobuf-c.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// How soon nng redials a lost connection, doubling up to the maximum.
#define CLIENT_RECONNECT_MIN_MS 100
#define CLIENT_RECONNECT_MAX_MS 1000

// nng 1.x initialises itself inside the first socket open and races when
// two threads do that at once; opens of this library take turns.
static pthread_mutex_t client_open_mtx = PTHREAD_MUTEX_INITIALIZER;

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

// Pipe callback (nng thread): counts the socket's connections. Every pipe
// that got ADD_PRE gets REM_POST, so the two pair up.
static void
client_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    struct bulkupsert_client *client = arg;
    (void) pipe;
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        atomic_fetch_add(&client->npipes, 1);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        atomic_fetch_sub(&client->npipes, 1);
    }
}

unsigned
bu__client_dial_gen(struct bulkupsert_client *client)
{
    pthread_mutex_lock(&client->dial_mtx);
    unsigned gen = client->dial_gen;
    pthread_mutex_unlock(&client->dial_mtx);
    return gen;
}

void
bu__client_redial(struct bulkupsert_client *client, unsigned gen)
{
    nng_dialer fresh;

    pthread_mutex_lock(&client->dial_mtx);
    // A connection that exists is only slow. The old dialer is not closed:
    // nng_dialer_close waits for the dialer's own callbacks, which need an
    // nng thread, and this runs on one (a deadlock once every nng thread
    // waits here). It stays until bulkupsert_client_close, harmless: if it
    // ever connects, req0 just has one more connection to use.
    if (gen == client->dial_gen && client->ndialers < BU__MAX_DIALERS
        && atomic_load(&client->npipes) == 0
        && nng_dial(client->sock, client->url, &fresh, NNG_FLAG_NONBLOCK)
            == 0) {
        client->dialer = fresh;
        client->dial_gen++;
        client->ndialers++;
    }
    pthread_mutex_unlock(&client->dial_mtx);
}

// client_port_ok returns 0 when url is a tcp:// (tcp4://, tcp6://) URL
// whose port, after the last ':', is a number outside 1 to 65535, which
// nng would accept and then fail to dial for ever; 1 otherwise (other
// URLs are left to nng_dial).
static int
client_port_ok(const char *url)
{
    static const char *const schemes[] = { "tcp://", "tcp4://", "tcp6://" };
    const char              *rest = NULL;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(url, schemes[i], n) == 0) {
            rest = url + n;
        }
    }
    const char *colon = rest != NULL ? strrchr(rest, ':') : NULL;
    if (colon == NULL || colon[1] == '\0'
        || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return 1;
    }
    unsigned long port = 0;
    for (const char *p = colon + 1; *p != '\0' && port <= 65535; p++) {
        port = port * 10 + (unsigned long) (*p - '0');
    }
    return port >= 1 && port <= 65535;
}

int
bulkupsert_client_open(
    bulkupsert_client **clientp, const char *url, const char *token)
{
    struct bulkupsert_client *client;
    int                       nrv;

    if (clientp == NULL || url == NULL || url[0] == '\0'
        || !client_port_ok(url)) {
        return BULKUPSERT_INVALID_ARGUMENT;
    }
    if ((client = calloc(1, sizeof(*client))) == NULL) {
        return BULKUPSERT_INTERNAL;
    }
    client->service = &bulkupsert__v1__bulk_upsert__descriptor;
    client->timeout_ms = BULKUPSERT_DEFAULT_TIMEOUT_MS;
    atomic_init(&client->npipes, 0);
    if (pthread_mutex_init(&client->mtx, NULL) != 0) {
        free(client);
        return BULKUPSERT_INTERNAL;
    }
    int rv = BULKUPSERT_INTERNAL;
    if (pthread_mutex_init(&client->dial_mtx, NULL) != 0) {
        goto fail_mtx;
    }
    if (pthread_cond_init(&client->idle_cv, NULL) != 0) {
        goto fail_dial_mtx;
    }
    if ((client->url = client_strdup(url)) == NULL) {
        goto fail_cv;
    }
    if (token != NULL && (client->token = client_strdup(token)) == NULL) {
        goto fail_cv;
    }
    pthread_mutex_lock(&client_open_mtx);
    nrv = nng_req0_open(&client->sock);
    pthread_mutex_unlock(&client_open_mtx);
    if (nrv != 0) {
        goto fail_cv;
    }
    // A resend would turn one submit into two jobs; the caller decides
    // whether to retry (with an idempotency key), or the retry policy does
    // when it is safe.
    if (nng_socket_set_ms(
            client->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)
            != 0
        || nng_socket_set_size(
               client->sock, NNG_OPT_RECVMAXSZ, BULKUPSERT_MAX_REPLY_BYTES)
            != 0
        || nng_socket_set_ms(
               client->sock, NNG_OPT_RECONNMINT, CLIENT_RECONNECT_MIN_MS)
            != 0
        || nng_socket_set_ms(
               client->sock, NNG_OPT_RECONNMAXT, CLIENT_RECONNECT_MAX_MS)
            != 0
        || nng_pipe_notify(
               client->sock, NNG_PIPE_EV_ADD_PRE, client_pipe_event, client)
            != 0
        || nng_pipe_notify(
               client->sock, NNG_PIPE_EV_REM_POST, client_pipe_event, client)
            != 0) {
        goto fail_sock;
    }
    // Non-blocking dial: nng keeps redialling in the background, so a
    // server that starts later is found by the next call.
    nrv = nng_dial(client->sock, url, &client->dialer, NNG_FLAG_NONBLOCK);
    client->ndialers = 1;
    if (nrv != 0) {
        rv = nrv == NNG_ENOMEM ? BULKUPSERT_INTERNAL
                               : BULKUPSERT_INVALID_ARGUMENT;
        goto fail_sock;
    }
    *clientp = client;
    return BULKUPSERT_OK;

fail_sock:
    nng_close(client->sock);
fail_cv:
    client_free_token(client->token);
    free(client->url);
    pthread_cond_destroy(&client->idle_cv);
fail_dial_mtx:
    pthread_mutex_destroy(&client->dial_mtx);
fail_mtx:
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
    // Calls end through their own callbacks (each closes its context), so
    // the socket closes only once none is left.
    pthread_mutex_lock(&client->mtx);
    client->closing = 1;
    bu__call_cancel_all(client);
    while (client->ncalls > 0) {
        pthread_cond_wait(&client->idle_cv, &client->mtx);
    }
    pthread_mutex_unlock(&client->mtx);

    nng_close(client->sock);
    client_free_token(client->token);
    free(client->url);
    pthread_cond_destroy(&client->idle_cv);
    pthread_mutex_destroy(&client->dial_mtx);
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

void
bulkupsert_client_set_retry(
    bulkupsert_client *client, const struct bulkupsert_retry *retry)
{
    struct bulkupsert_retry off = { 0 };

    if (client == NULL) {
        return;
    }
    pthread_mutex_lock(&client->mtx);
    client->retry = retry != NULL ? *retry : off;
    pthread_mutex_unlock(&client->mtx);
}

// client_call makes the synchronous call of the method called name: the
// asynchronous call, waited for.
static int
client_call(bulkupsert_client *client, const char *name,
    const ProtobufCMessage *request, ProtobufCMessage **replyp,
    struct bulkupsert_status *status)
{
    struct bulkupsert_status scratch;
    bulkupsert_call         *call;

    if (status == NULL) {
        status = &scratch;
    }
    bu__status_reset(status);
    *replyp = NULL;
    int rv = bu__call_start(client, name, request, NULL, NULL, &call, status);
    if (rv == BULKUPSERT_OK) {
        rv = bulkupsert_call_result(call, replyp, status);
        bulkupsert_call_free(call);
    }
    if (status == &scratch) {
        bulkupsert_status_clear(&scratch);
    }
    return rv;
}

int
bulkupsert_submit_async(bulkupsert_client         *client,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *request,
    bulkupsert_done_fn done, void *arg, bulkupsert_call **callp)
{
    return bulkupsert_call_start(client, "SubmitBulkUpsert",
        request != NULL ? &request->base : NULL, done, arg, callp);
}

int
bulkupsert_get_job_async(bulkupsert_client *client,
    const Bulkupsert__V1__GetJobRequest *request, bulkupsert_done_fn done,
    void *arg, bulkupsert_call **callp)
{
    return bulkupsert_call_start(client, "GetJob",
        request != NULL ? &request->base : NULL, done, arg, callp);
}

int
bulkupsert_cancel_job(bulkupsert_client    *client,
    const Bulkupsert__V1__CancelJobRequest *request,
    Bulkupsert__V1__Job **jobp, struct bulkupsert_status *status)
{
    return client_call(client, "CancelJob",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) jobp,
        status);
}

int
bulkupsert_list_jobs(bulkupsert_client    *client,
    const Bulkupsert__V1__ListJobsRequest *request,
    Bulkupsert__V1__ListJobsResponse     **replyp,
    struct bulkupsert_status              *status)
{
    return client_call(client, "ListJobs",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_describe_table(bulkupsert_client    *client,
    const Bulkupsert__V1__DescribeTableRequest *request,
    Bulkupsert__V1__DescribeTableResponse     **replyp,
    struct bulkupsert_status                   *status)
{
    return client_call(client, "DescribeTable",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_add_column(bulkupsert_client    *client,
    const Bulkupsert__V1__AddColumnRequest *request,
    Bulkupsert__V1__AddColumnResponse     **replyp,
    struct bulkupsert_status               *status)
{
    return client_call(client, "AddColumn",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_set_import_enabled(bulkupsert_client   *client,
    const Bulkupsert__V1__SetImportEnabledRequest *request,
    Bulkupsert__V1__SetImportEnabledResponse     **replyp,
    struct bulkupsert_status                      *status)
{
    return client_call(client, "SetImportEnabled",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_submit(bulkupsert_client               *client,
    const Bulkupsert__V1__SubmitBulkUpsertRequest *request,
    Bulkupsert__V1__SubmitBulkUpsertResponse     **replyp,
    struct bulkupsert_status                      *status)
{
    return client_call(client, "SubmitBulkUpsert",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) replyp,
        status);
}

int
bulkupsert_get_job(bulkupsert_client    *client,
    const Bulkupsert__V1__GetJobRequest *request, Bulkupsert__V1__Job **jobp,
    struct bulkupsert_status *status)
{
    return client_call(client, "GetJob",
        request != NULL ? &request->base : NULL, (ProtobufCMessage **) jobp,
        status);
}
