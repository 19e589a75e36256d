// SPDX-License-Identifier: MIT
/*
 * Private interface shared by the files of the C client library: the status
 * helpers of status.c, used by the transport in client.c. Nothing here is
 * part of bulkupsert.h, and the symbols are hidden from the shared library.
 * Thread rule: every function works on the caller's own status struct and
 * touches no shared state.
 */
#ifndef BU_CLIENTS_CLIENT_INT_H
#define BU_CLIENTS_CLIENT_INT_H

#include "bulkupsert.h"

#define BU__HIDDEN __attribute__((visibility("hidden")))

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

#endif // BU_CLIENTS_CLIENT_INT_H
