// SPDX-License-Identifier: MIT
/*
 * Running the server under test (see server.h). The daemon is a child
 * process; it counts as up once a tokenless GetJob is answered with
 * UNAUTHENTICATED, which only the service itself (past the transport and the
 * envelope decoder) can say.
 */
#define _XOPEN_SOURCE 700 // nftw
#include "server.h"

#include "auth/token.h"
#include "base/alloc.h"
#include "bulkupsert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVER_MAX_ARGS 64

static void server_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
server_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void
server_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int
server_keys_make(struct server_keys *keys, const char *keyring_path, char *err,
    size_t errlen)
{
    struct bu_paseto_key pk;
    char                *p = NULL;
    if (bu_paseto_keypair(&keys->secret, &pk) != 0
        || bu_paserk_format(&pk, &p) != 0) {
        server_err(err, errlen, "cannot make a key pair");
        return -1;
    }
    FILE *f = fopen(keyring_path, "w");
    int   rv = -1;
    if (f == NULL) {
        server_err(err, errlen, "%s: %s", keyring_path, strerror(errno));
    } else {
        fprintf(f, "# bulkupsert-bench keyring\n%s\n", p);
        if (fclose(f) != 0) {
            server_err(err, errlen, "%s: %s", keyring_path, strerror(errno));
        } else {
            rv = 0;
        }
    }
    bu_free(p);
    return rv;
}

int
server_keys_load(
    struct server_keys *keys, const char *path, char *err, size_t errlen)
{
    char  line[512] = { 0 };
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        server_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    int rv = got ? bu_paserk_parse(line, &keys->secret) : -1;
    sodium_memzero(line, sizeof(line));
    if (rv != 0 || keys->secret.kind != BU_KEY_V4_SECRET) {
        server_err(
            err, errlen, "%s: the first line is not a k4.secret PASERK", path);
        server_keys_wipe(keys);
        return -1;
    }
    return 0;
}

void
server_keys_wipe(struct server_keys *keys)
{
    bu_paseto_key_wipe(&keys->secret);
}

char *
server_token(const struct server_keys *keys, const char *tenant, char *err,
    size_t errlen)
{
    struct bu_claims cl;
    memset(&cl, 0, sizeof(cl));
    snprintf(cl.sub, sizeof(cl.sub), "bulkupsert-bench");
    snprintf(cl.tenant, sizeof(cl.tenant), "%s", tenant);
    cl.perms = BU_PERM_MANAGE | BU_PERM_READ;
    cl.iat = (int64_t) time(NULL);
    cl.exp = cl.iat + 24 * 3600;
    char *tok = NULL;
    if (bu_token_issue(&keys->secret, &cl, &tok) != 0) {
        server_err(
            err, errlen, "cannot issue a token for tenant \"%s\"", tenant);
        return NULL;
    }
    char *copy = malloc(strlen(tok) + 1);
    if (copy != NULL) {
        strcpy(copy, tok);
    } else {
        server_err(err, errlen, "out of memory");
    }
    bu_free(tok);
    return copy;
}

int
server_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof(sa);
    int       port = -1;
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0
        && getsockname(fd, (struct sockaddr *) &sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

// server_log_tail copies the last part of the daemon's log to stderr.
static void
server_log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        (void) fseek(f, end > 4096 ? end - 4096 : 0, SEEK_SET);
    }
    char line[1024];
    fprintf(stderr, "---- last lines of %s\n", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
    }
    fprintf(stderr, "----\n");
    fclose(f);
}

// server_ready polls until the daemon answers, exits, or 15 s pass.
// Returns 0 when it answers.
static int
server_ready(struct server *srv, char *err, size_t errlen)
{
    bulkupsert_client *c = NULL;
    if (bulkupsert_client_open(&c, srv->url, NULL) != 0) {
        server_err(err, errlen, "cannot make a client for %s", srv->url);
        return -1;
    }
    bulkupsert_client_set_timeout(c, 500);
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    req.job_id = "ready?";
    int rv = -1;
    for (int i = 0; i < 300; i++) {
        struct bulkupsert_status st;
        memset(&st, 0, sizeof(st));
        Bulkupsert__V1__Job *job = NULL;
        int                  code = bulkupsert_get_job(c, &req, &job, &st);
        bulkupsert_status_clear(&st);
        bulkupsert__v1__job__free_unpacked(job, NULL);
        if (code == BULKUPSERT_UNAUTHENTICATED) {
            rv = 0;
            break;
        }
        int status;
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
            srv->pid = 0;
            server_err(err, errlen,
                "bulkupsertd exited during start-up "
                "(see %s)",
                srv->log);
            break;
        }
        server_sleep_ms(50);
    }
    if (rv != 0 && srv->pid > 0) {
        server_err(err, errlen,
            "bulkupsertd did not answer on %s within "
            "15 s (see %s)",
            srv->url, srv->log);
    }
    bulkupsert_client_close(c);
    return rv;
}

int
server_start(struct server *srv, const char *daemon, const char *data_dir,
    const char *keyring, const char *log_path, const char *const *extra,
    char *err, size_t errlen)
{
    memset(srv, 0, sizeof(*srv));
    int port = server_free_port();
    if (port < 0) {
        server_err(err, errlen, "cannot find a free port on 127.0.0.1: %s",
            strerror(errno));
        return -1;
    }
    snprintf(srv->url, sizeof(srv->url), "tcp://127.0.0.1:%d", port);
    snprintf(srv->log, sizeof(srv->log), "%s", log_path);

    const char *argv[SERVER_MAX_ARGS];
    int         n = 0;
    argv[n++] = daemon;
    argv[n++] = "--listen";
    argv[n++] = srv->url;
    argv[n++] = "--data-dir";
    argv[n++] = data_dir;
    argv[n++] = "--keyring";
    argv[n++] = keyring;
    for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (n == SERVER_MAX_ARGS - 1) {
            server_err(err, errlen, "too many daemon arguments");
            return -1;
        }
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    if (access(daemon, X_OK) != 0) {
        server_err(err, errlen, "%s: %s (give the daemon with --daemon)",
            daemon, strerror(errno));
        return -1;
    }
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        server_err(err, errlen, "%s: %s", log_path, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        server_err(err, errlen, "fork: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        dup2(fd, 2);
        close(fd);
        execv(argv[0], (char *const *) argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    srv->pid = pid;
    if (server_ready(srv, err, errlen) != 0) {
        server_kill(srv);
        server_log_tail(log_path);
        return -1;
    }
    return 0;
}

int
server_stop(struct server *srv)
{
    if (srv->pid <= 0) {
        return -1;
    }
    kill(srv->pid, SIGTERM);
    for (int i = 0; i < 1200; i++) {
        int   status;
        pid_t r = waitpid(srv->pid, &status, WNOHANG);
        if (r == srv->pid) {
            srv->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        }
        if (r < 0 && errno != EINTR) {
            srv->pid = 0;
            return -1;
        }
        server_sleep_ms(50);
    }
    fprintf(stderr,
        "bulkupsert-bench: bulkupsertd did not stop within "
        "60 s; killing it\n");
    server_kill(srv);
    return 128 + SIGKILL;
}

void
server_kill(struct server *srv)
{
    if (srv->pid > 0) {
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, NULL, 0);
        srv->pid = 0;
    }
}

int
server_peak_rss_reset(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int) pid);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    // "5" resets the peak resident set size (Linux 4.0 and later).
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

double
server_peak_rss_mb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    char   line[256];
    double mb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        long kb;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            mb = (double) kb / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

// nftw has no user pointer: the walk's total lives here (main thread only).
static double server_walk_bytes;

static int
server_walk_size(
    const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) path;
    (void) ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        server_walk_bytes += (double) st->st_size;
    }
    return 0;
}

double
server_dir_mb(const char *path)
{
    server_walk_bytes = 0;
    if (nftw(path, server_walk_size, 32, FTW_PHYS) != 0) {
        return -1;
    }
    return server_walk_bytes / (1024.0 * 1024.0);
}

static int
server_walk_remove(
    const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int
server_dir_remove(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : -1;
    }
    return nftw(path, server_walk_remove, 32, FTW_DEPTH | FTW_PHYS);
}
