// SPDX-License-Identifier: MIT
/*
 * End-to-end test harness: runs the real bulkupsertd on a private ipc://
 * path with its own temporary data folder and key pair, issues tokens,
 * runs rpc-cli, reads tenant databases, and stops (or kills) what it
 * started. Every test process cleans up its daemon, even on a failed
 * assertion (an atexit hook).
 */
#ifndef BU_TESTS_HARNESS_H
#define BU_TESTS_HARNESS_H

#include <stddef.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>

#include "bulkupsert.h"

struct harness {
    char dir[256];     // temp folder, removed by harness_stop
    char data[300];    // DATA
    char keyring[300]; // DATA/../keyring
    char secret[300];  // the secret key (PASERK)
    char url[320];     // ipc://DIR/bu.sock
    char log[300];     // daemon stderr
    pid_t pid;
};

// harness_start makes the folder and keys and starts the daemon with
// extra arguments (NULL-terminated list, may be NULL); waits until it
// answers. Fails the test on error.
void harness_start(struct harness *h, const char *const *extra);

// harness_restart starts the daemon again on the same folder.
void harness_restart(struct harness *h, const char *const *extra);

// harness_signal sends sig and, for SIGTERM/SIGINT/SIGKILL, waits for the
// exit; returns the exit status (128+signal when killed), -1 on timeout.
int harness_signal(struct harness *h, int sig);

// harness_stop stops the daemon (SIGTERM) and removes the folder; returns
// the daemon's exit status.
int harness_stop(struct harness *h);

// harness_token issues a token for tenant with perms (bu_perm bits), valid
// for ttl_s seconds (negative: already expired). Release with free().
char *harness_token(struct harness *h, const char *tenant, uint32_t perms,
    int64_t ttl_s);

// harness_client opens a client on the daemon with token.
bulkupsert_client *harness_client(struct harness *h, const char *token);

// harness_wait_job polls GetJob until the job is final (or 30 s pass) and
// returns it (free with bulkupsert__v1__job__free_unpacked).
Bulkupsert__V1__Job *harness_wait_job(bulkupsert_client *c, const char *id);

// harness_cli runs rpc-cli with args (NULL-terminated) and env
// BULKUPSERT_URL=h->url plus BULKUPSERT_TOKEN=token (when not NULL);
// captures stdout into out (NUL-terminated, truncated to outlen) and stderr
// into err. Returns the exit status.
int harness_cli(struct harness *h, const char *token, const char *const *args,
    char *out, size_t outlen, char *err, size_t errlen);

// harness_count runs a SQL query returning one integer against the
// tenant's database; -1 when the database or row is missing.
long long harness_count(struct harness *h, const char *tenant,
    const char *sql);

// harness_text runs a SQL query returning one text value into buf.
// Returns 0, or -1 when missing.
int harness_text(struct harness *h, const char *tenant, const char *sql,
    char *buf, size_t len);

// A request builder: columns, then rows of string values ("" = not
// provided is written as NULL pointer in the row array).
struct req_builder {
    Bulkupsert__V1__SubmitBulkUpsertRequest req;
    size_t cap;
};

// req_new starts a request with ncols columns.
void req_init(struct req_builder *b, const char *const *cols, size_t ncols);

// req_row appends a record; vals[i] NULL leaves the Value unset.
void req_row(struct req_builder *b, const char *const *vals);

// req_fini frees the builder's memory.
void req_fini(struct req_builder *b);

// ---------------------------------------------------------------------
// Additions for the crash, overload and bad-input tests.

// harness_wrapper returns BU_DAEMON_WRAPPER (e.g. "valgrind --quiet"),
// or NULL when the daemon runs directly. When set, harness_spawn runs the
// daemon through it (split on spaces) and the harness's waits (start-up,
// stop, harness_wait_job, client timeout) grow by harness_slow().
const char *harness_wrapper(void);

// harness_slow returns the factor waits grow by: 1, or 10 under a
// wrapper.
int harness_slow(void);

// harness_abort kills the daemon when it still runs (printing its log
// when it had died by itself) and removes the folder; for a cmocka
// teardown after a failed test. Never fails; a no-op on a stopped harness.
void harness_abort(struct harness *h);

// harness_lock_db takes the write lock of the daemon's database rel
// (under its data folder: "queue.db", "tenants/acme.db"), as another
// program could; harness_unlock_db commits and closes it.
sqlite3 *harness_lock_db(const struct harness *h, const char *rel);
void harness_unlock_db(sqlite3 *db);

// harness_stop_lenient is harness_stop, except that a daemon whose only
// fault at exit is a LeakSanitizer report of blocks allocated entirely
// inside libnng's own threads stops clean (with a note on stderr): nng
// 1.5.2 can lose a received message when a socket closes while its pipes
// still deliver (fixed upstream by nanomsg/nng PR #1643). Any leak with a
// frame outside libnng, and any other error, still fails.
int harness_stop_lenient(struct harness *h);

// harness_rss_kb reads VmRSS and VmHWM (peak RSS) of the running daemon
// from /proc/PID/status, in kB (either pointer may be NULL). Returns 0,
// or -1 when the daemon is not running or the file cannot be read.
int harness_rss_kb(const struct harness *h, long *rss_kb, long *hwm_kb);

// harness_tcp_port returns the port of the daemon's first tcp:// listener
// as its log reports it ("listening on ... (port N)"), for a daemon
// started with --listen tcp://127.0.0.1:0; -1 when there is none.
int harness_tcp_port(const struct harness *h);

// harness_queue_count runs a SQL query returning one integer against
// DATA/queue.db; -1 when the database or row is missing.
long long harness_queue_count(struct harness *h, const char *sql);

// harness_mono_ms returns CLOCK_MONOTONIC in milliseconds.
int64_t harness_mono_ms(void);

// harness_raw_call sends len bytes as one request on a fresh nng req0
// socket dialled to url, and waits up to timeout_ms for the reply, which
// it returns in *replyp (malloc'd; free it) and *replylenp. Returns 0, or
// the nng error (NNG_ETIMEDOUT when no connection or no reply came within
// timeout_ms). No resend on a timer: one request, one try.
int harness_raw_call(const char *url, const void *req, size_t len,
    int timeout_ms, void **replyp, size_t *replylenp);

// ---------------------------------------------------------------------
// rpc-cli runs with assertions, shared by the CLI tests.

// What the last harness_cli_expect run printed.
extern char harness_cli_out[1 << 20];
extern char harness_cli_err[1 << 18];

// The end of a CLI() argument list.
#define END ((const char *) NULL)

// harness_cli_expect runs rpc-cli with the arguments after token
// (END-terminated) and BULKUPSERT_TOKEN=token (unset when NULL) into
// harness_cli_out and harness_cli_err, and fails the test, showing both
// outputs and the caller's line, unless it exits with want.
void harness_cli_expect(
    int line, int want, struct harness *h, const char *token, ...);

#define CLI(want, h, tok, ...)                                                \
    harness_cli_expect(__LINE__, (want), (h), (tok), __VA_ARGS__, END)

// Fails unless needle occurs in hay (or, assert_lacks, unless it does
// not), showing both.
#define assert_has(hay, needle)                                               \
    do {                                                                      \
        if (strstr((hay), (needle)) == NULL) {                                \
            fail_msg("line %d: expected \"%s\" in:\n%s", __LINE__, (needle),  \
                (hay));                                                       \
        }                                                                     \
    } while (0)

#define assert_lacks(hay, needle)                                             \
    do {                                                                      \
        if (strstr((hay), (needle)) != NULL) {                                \
            fail_msg("line %d: did not expect \"%s\" in:\n%s", __LINE__,      \
                (needle), (hay));                                             \
        }                                                                     \
    } while (0)

// harness_sleep_ms sleeps ms milliseconds.
void harness_sleep_ms(int ms);

#endif // BU_TESTS_HARNESS_H
