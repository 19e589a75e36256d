// SPDX-License-Identifier: MIT
/*
 * The server under test and its surroundings: a key pair and keyring made
 * in-process with bu_auth, tokens for any tenant, a free loopback port, the
 * bulkupsertd child process (start, wait until it answers, stop), its peak
 * resident memory from /proc, and the sizes and removal of folders.
 *
 * Called from the benchmark's main thread only.
 */
#ifndef BU_BENCH_SERVER_H
#define BU_BENCH_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "auth/paseto.h"

// The signing key of a benchmark run. Plain value; wipe with server_keys_wipe.
struct server_keys {
    struct bu_paseto_key secret;
};

// server_keys_make makes a fresh key pair and writes the public key as a
// one-line keyring to keyring_path. Returns 0, or -1 with a message in err.
int server_keys_make(struct server_keys *keys, const char *keyring_path,
    char *err, size_t errlen);

// server_keys_load reads a k4.secret PASERK from the first line of path.
// Returns 0, or -1 with a message in err.
int server_keys_load(
    struct server_keys *keys, const char *path, char *err, size_t errlen);

// server_keys_wipe zeroes the secret key.
void server_keys_wipe(struct server_keys *keys);

// server_token issues a token for tenant with DataSpace.Manage and
// DataSpace.Read, valid for a day. Returns a malloc'd string (release with
// free), or NULL with a message in err.
char *server_token(const struct server_keys *keys, const char *tenant,
    char *err, size_t errlen);

// server_free_port binds a TCP socket to 127.0.0.1 port 0, reads the port
// the kernel chose and closes the socket. Returns the port, or -1.
int server_free_port(void);

// A started daemon.
struct server {
    pid_t pid;
    char  url[64];
    char  log[4096];
};

// server_start runs daemon with --listen tcp://127.0.0.1:<free port>
// --data-dir data_dir --keyring keyring plus extra (NULL-terminated, may be
// NULL), its stderr appended to log_path, and waits (up to 15 s) until it
// answers a call. Returns 0, or -1 with a message in err (the daemon is
// stopped again and its log's tail printed on stderr).
// clang-format off
int server_start(struct server *srv,
    const char *daemon,        // path of bulkupsertd
    const char *data_dir,      // its --data-dir
    const char *keyring,       // its --keyring
    const char *log_path,      // its stderr, appended
    const char *const *extra,  // NULL-terminated, may be NULL
    char *err, size_t errlen); // OUT: message on failure
// clang-format on

// server_stop sends SIGTERM and waits up to 60 s (then SIGKILL). Returns
// the exit status (128 + signal when killed), or -1 when none was running.
int server_stop(struct server *srv);

// server_kill sends SIGKILL and reaps; for error paths and exit hooks.
void server_kill(struct server *srv);

// server_peak_rss_reset restarts the kernel's peak-RSS count (VmHWM) of
// pid. Returns 0, or -1 when /proc refuses.
int server_peak_rss_reset(pid_t pid);

// server_peak_rss_mb returns VmHWM of pid in MiB, or -1.
double server_peak_rss_mb(pid_t pid);

// server_dir_mb returns the total size in MiB of the regular files under
// path, or -1 when it cannot be walked.
double server_dir_mb(const char *path);

// server_dir_remove removes path and everything under it (no symlinks are
// followed). Returns 0, or -1 with errno set.
int server_dir_remove(const char *path);

#endif // BU_BENCH_SERVER_H
