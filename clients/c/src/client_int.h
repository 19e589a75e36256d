// SPDX-License-Identifier: MIT
/*
 * Private interface shared by the files of the C client library: the client
 * struct (client.c owns its lifecycle and dialer, call.c runs calls on it),
 * the status helpers of status.c and the retry policy of retry.c. Nothing
 * here is part of bulkupsert.h, and the symbols are hidden from the shared
 * library.
 *
 * Locks, in the order they may be taken: client->mtx, then a call's mtx
 * (call.c), then client->dial_mtx. A call's aio callback holds at most its
 * call's mtx and then dial_mtx; it takes client->mtx only with no other
 * lock held. The status and retry helpers touch no shared state.
 */
#ifndef BU_CLIENTS_CLIENT_INT_H
#define BU_CLIENTS_CLIENT_INT_H

#include "bulkupsert.h"

#include <nng/nng.h>

#include <pthread.h>
#include <stdatomic.h>

#define BU__HIDDEN __attribute__((visibility("hidden")))

struct bulkupsert_client {
    // Set by bulkupsert_client_open, read-only until close.
    nng_socket                        sock;
    char                             *url;
    const ProtobufCServiceDescriptor *service;

    pthread_mutex_t         mtx;
    pthread_cond_t          idle_cv;    // signalled when ncalls drops to 0
    char                   *token;      // guarded by mtx; may be NULL
    int                     timeout_ms; // guarded by mtx
    struct bulkupsert_retry retry;      // guarded by mtx; max_retries 0 = off
    struct bulkupsert_call *calls;      // guarded by mtx; not yet completed
    unsigned                ncalls;     // guarded by mtx; started calls whose
                                        // done callback has not returned
    int closing;                        // guarded by mtx

    pthread_mutex_t dial_mtx;
    nng_dialer      dialer;   // guarded by dial_mtx
    unsigned        dial_gen; // guarded by dial_mtx; +1 per new dialer
    unsigned        ndialers; // guarded by dial_mtx; dialers opened
    atomic_int      npipes;   // connections, from the pipe callbacks
};

// bu__client_dial_gen returns the generation of the client's current
// dialer, for a later bu__client_redial. Takes dial_mtx.
BU__HIDDEN unsigned bu__client_dial_gen(struct bulkupsert_client *client);

// The most dialers a client opens (the first and the redials).
#define BU__MAX_DIALERS 8

// bu__client_redial starts a fresh dialer when the current one is still
// generation gen and the socket has no connection: a send found no pipe
// for a whole timeout, and nng's dialer may have stopped redialling. The
// old dialer is left open (closing it blocks on nng's own threads) until
// the socket closes; after BU__MAX_DIALERS nothing more is started. Calls
// that saw the same generation redial once between them. Takes dial_mtx
// and calls only nng_dial with NNG_FLAG_NONBLOCK, so it never waits on
// nng's threads and may run in an aio callback.
BU__HIDDEN void bu__client_redial(
    struct bulkupsert_client *client, unsigned gen);

// bu__call_start is bulkupsert_call_start with a status: when the call
// cannot be started, status says why (and the code is returned).
BU__HIDDEN int bu__call_start(struct bulkupsert_client *client,
    const char *method, const ProtobufCMessage *request,
    bulkupsert_done_fn done, void *arg, bulkupsert_call **callp,
    struct bulkupsert_status *status);

// bu__call_cancel_all cancels every call in flight on client, so that
// bulkupsert_client_close can wait for them. Caller holds client->mtx.
BU__HIDDEN void bu__call_cancel_all(struct bulkupsert_client *client);

// bu__status_reset zeroes status and points its message at a static empty
// text, so that it is valid to print and to clear before a call fills it.
BU__HIDDEN void bu__status_reset(struct bulkupsert_status *status);

// bu__status_set clears status, then sets code, http_status and a message
// formatted from fmt. When the message cannot be allocated, status->message
// points at a static "out of memory" text (bulkupsert_status_clear knows not
// to free it). Never fails.
BU__HIDDEN void bu__status_set(struct bulkupsert_status *status, int code,
    unsigned http_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// bu__status_from_wire clears status and copies the server's status into
// it (code, http_status, response_code, retry_after_ms, message, field
// errors). wire stays owned by the caller. If copying runs out of memory,
// the code and numbers are kept, the message becomes "out of memory" and
// field errors that could not be copied are dropped. Never fails.
BU__HIDDEN void bu__status_from_wire(
    struct bulkupsert_status *status, const Bulkupsert__V1__Status *wire);

// bu__wipe overwrites n bytes at p with zeros in a way the compiler may not
// drop; used on token copies before they are freed. p may be NULL.
BU__HIDDEN void bu__wipe(void *p, size_t n);

// bu__retry_safe says whether a call that ended with status may be sent
// again without risk of applying it twice (see struct bulkupsert_retry):
// a 429, a 503, or UNAVAILABLE before the request left (sent == 0).
BU__HIDDEN int bu__retry_safe(
    const struct bulkupsert_status *status, int sent);

// bu__retry_delay_ms returns how long to wait before retry number attempt
// (1 for the first retry) under policy, given the server's retry_after_ms
// hint (0 for none) and a random number for the jitter.
BU__HIDDEN unsigned bu__retry_delay_ms(const struct bulkupsert_retry *policy,
    unsigned attempt, unsigned retry_after_ms, uint32_t random);

#endif // BU_CLIENTS_CLIENT_INT_H
