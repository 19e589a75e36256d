// SPDX-License-Identifier: MIT
/*
 * bulkupsertd: parses flags, initialises the libraries before any thread
 * exists, starts the subsystems in dependency order (journal, workers,
 * recovery, handlers, transport), then waits for signals on the main thread:
 * SIGHUP re-reads the keyring and the revocation list, SIGINT/SIGTERM stop the
 * server in the reverse order, with every accepted job either applied or still
 * queued on disk.
 */
#define _DEFAULT_SOURCE // getopt_long
#include "auth/keyring.h"
#include "base/arena.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "queue/journal.h"
#include "rpc/server.h"
#include "rpc/service.h"
#include "store/schema.h"
#include "store/writeback.h"
#include "work/pool.h"

#include <errno.h>
#include <getopt.h>
#include <nng/nng.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAIN_MAX_URLS          16
#define MAIN_VERSION           "0.1.0"
#define MAIN_SQLITE_HEAP_LIMIT (160LL * 1024 * 1024)

struct main_opts {
    const char *urls[MAIN_MAX_URLS];
    size_t      nurls;
    const char *data_dir;
    const char *keyring;
    char        keyring_default[4096];
    const char *revoked;
    char        revoked_default[4096];
    bool        check_keys;
    int         workers;
    int         handlers;
    int         contexts;
    long        max_queued_jobs;
    long        tenant_max_queued;
    long        tenant_max_inflight;
    long        max_inflight_bytes;
    long        max_message_bytes;
    int64_t     retention_ms;
    long        drain_ms;
};

static void
main_usage(FILE *f)
{
    fprintf(f,
        "Usage: bulkupsertd [OPTIONS]\n"
        "\n"
        "Serves bulkupsert.v1.BulkUpsert (SubmitBulkUpsert, GetJob, "
        "ListJobs,\n"
        "CancelJob, DescribeTable, AddColumn, SetImportEnabled) over nng\n"
        "req/rep. Accepted jobs are durable in DATA/queue.db before the 202\n"
        "reply and are applied to DATA/tenants/<tenant>.db by worker "
        "threads.\n"
        "\n"
        "Options:\n"
        "  --listen URL            address to serve (repeatable; tcp:// or\n"
        "                          ipc://), default tcp://127.0.0.1:7450\n"
        "  --data-dir DIR          data folder, created if missing (its\n"
        "                          parent must exist; default\n"
        "                          ./bulkupsert-data)\n"
        "  --keyring FILE          public keys allowed to sign tokens, one\n"
        "                          k4.public PASERK a line (default\n"
        "                          DATA/keyring); re-read on SIGHUP\n"
        "  --revoked FILE          token ids (jti) refused whatever key\n"
        "                          signed them, one a line (default\n"
        "                          DATA/revoked; none when that file is\n"
        "                          missing); re-read on SIGHUP\n"
        "  --check-keys            read the keyring and the revocation list\n"
        "                          as SIGHUP would, say what they hold, and\n"
        "                          exit: 0 when both are valid, 1 if not\n"
        "                          (run it before sending SIGHUP)\n"
        "  --workers N             worker threads applying jobs (default 2)\n"
        "  --handlers N            request handler threads (default 2)\n"
        "  --contexts N            requests received at once (default 64)\n"
        "  --max-queued-jobs N     accepted, unfinished jobs before 429\n"
        "                          (default 4096)\n"
        "  --tenant-max-queued N   the same for one tenant (default 1000)\n"
        "  --tenant-max-inflight N one tenant's submits handled at once;\n"
        "                          more get 429 (default 8)\n"
        "  --max-inflight-bytes N  request bytes held by handlers; past it\n"
        "                          429 (default 268435456)\n"
        "  --retention DURATION    keep finished jobs and their results,\n"
        "                          e.g. 7d, 12h, 30m, 90s (default 7d)\n"
        "  --drain-timeout MS      on SIGTERM, how long calls in flight may\n"
        "                          take to finish (default 10000)\n"
        "  --max-message-bytes N   largest request frame; larger frames drop\n"
        "                          the connection (default 41943040: the\n"
        "                          largest valid request fits)\n"
        "  --log-level LEVEL       debug, info, warn or error (default info)\n"
        "  -h, --help              this text\n"
        "  --version               the version\n"
        "\n"
        "Signals: SIGHUP re-reads the keyring and the revocation list;\n"
        "SIGINT and SIGTERM stop.\n"
        "Example:\n"
        "  bulkupsertd --listen tcp://127.0.0.1:7450 --data-dir "
        "/var/lib/bu\n");
}

static int
main_int(const char *name, const char *s, long min, long max, long *outp)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr,
            "bulkupsertd: %s must be a number from %ld to %ld, "
            "not \"%s\"\n",
            name, min, max, s);
        return 0;
    }
    *outp = v;
    return 1;
}

// main_duration reads "90s", "30m", "12h", "7d" into milliseconds.
static int
main_duration(const char *name, const char *s, int64_t *msp)
{
    int64_t secs;
    if (bu_duration_parse(s, 100000LL * 86400, &secs) != BU_OK || secs == 0) {
        fprintf(stderr,
            "bulkupsertd: %s is a whole number and a unit "
            "(s, m, h, d), e.g. 7d; not \"%s\"\n",
            name, s);
        return 0;
    }
    *msp = secs * 1000;
    return 1;
}

// main_parse returns 0 to run, or an exit status + 1.
static int
main_parse(int argc, char **argv, struct main_opts *o)
{
    enum {
        OPT_LISTEN = 256,
        OPT_DATA,
        OPT_KEYRING,
        OPT_REVOKED,
        OPT_WORKERS,
        OPT_HANDLERS,
        OPT_CONTEXTS,
        OPT_MAXQ,
        OPT_TMAXQ,
        OPT_TMAXIN,
        OPT_MAXBYTES,
        OPT_RETENTION,
        OPT_DRAIN,
        OPT_MAXMSG,
        OPT_LOG,
        OPT_VERSION,
        OPT_CHECK_KEYS,
    };
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "data-dir", required_argument, NULL, OPT_DATA },
        { "keyring", required_argument, NULL, OPT_KEYRING },
        { "revoked", required_argument, NULL, OPT_REVOKED },
        { "workers", required_argument, NULL, OPT_WORKERS },
        { "handlers", required_argument, NULL, OPT_HANDLERS },
        { "contexts", required_argument, NULL, OPT_CONTEXTS },
        { "max-queued-jobs", required_argument, NULL, OPT_MAXQ },
        { "tenant-max-queued", required_argument, NULL, OPT_TMAXQ },
        { "tenant-max-inflight", required_argument, NULL, OPT_TMAXIN },
        { "max-inflight-bytes", required_argument, NULL, OPT_MAXBYTES },
        { "retention", required_argument, NULL, OPT_RETENTION },
        { "drain-timeout", required_argument, NULL, OPT_DRAIN },
        { "max-message-bytes", required_argument, NULL, OPT_MAXMSG },
        { "log-level", required_argument, NULL, OPT_LOG },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "check-keys", no_argument, NULL, OPT_CHECK_KEYS },
        { NULL, 0, NULL, 0 },
    };
    long v;
    int  c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            if (o->nurls == MAIN_MAX_URLS) {
                fprintf(stderr, "bulkupsertd: at most %d --listen\n",
                    MAIN_MAX_URLS);
                return 3;
            }
            o->urls[o->nurls++] = optarg;
            break;
        case OPT_DATA:
            o->data_dir = optarg;
            break;
        case OPT_KEYRING:
            o->keyring = optarg;
            break;
        case OPT_REVOKED:
            o->revoked = optarg;
            break;
        case OPT_WORKERS:
            if (!main_int("--workers", optarg, 1, 64, &v)) {
                return 3;
            }
            o->workers = (int) v;
            break;
        case OPT_HANDLERS:
            if (!main_int("--handlers", optarg, 1, 64, &v)) {
                return 3;
            }
            o->handlers = (int) v;
            break;
        case OPT_CONTEXTS:
            if (!main_int("--contexts", optarg, 1, 4096, &v)) {
                return 3;
            }
            o->contexts = (int) v;
            break;
        case OPT_MAXQ:
            if (!main_int("--max-queued-jobs", optarg, 1, 10000000,
                    &o->max_queued_jobs)) {
                return 3;
            }
            break;
        case OPT_TMAXQ:
            if (!main_int("--tenant-max-queued", optarg, 1, 10000000,
                    &o->tenant_max_queued)) {
                return 3;
            }
            break;
        case OPT_TMAXIN:
            if (!main_int("--tenant-max-inflight", optarg, 1, 4096,
                    &o->tenant_max_inflight)) {
                return 3;
            }
            break;
        case OPT_MAXBYTES:
            if (!main_int("--max-inflight-bytes", optarg, 1 << 20,
                    64L * 1024 * 1024 * 1024, &o->max_inflight_bytes)) {
                return 3;
            }
            break;
        case OPT_RETENTION:
            if (!main_duration("--retention", optarg, &o->retention_ms)) {
                return 3;
            }
            break;
        case OPT_DRAIN:
            if (!main_int(
                    "--drain-timeout", optarg, 0, 600000, &o->drain_ms)) {
                return 3;
            }
            break;
        case OPT_MAXMSG:
            if (!main_int("--max-message-bytes", optarg, 4096,
                    1024L * 1024 * 1024, &o->max_message_bytes)) {
                return 3;
            }
            break;
        case OPT_LOG:
            if (strcmp(optarg, "debug") == 0) {
                bu_log_set_level(BU_LOG_DEBUG);
            } else if (strcmp(optarg, "info") == 0) {
                bu_log_set_level(BU_LOG_INFO);
            } else if (strcmp(optarg, "warn") == 0) {
                bu_log_set_level(BU_LOG_WARN);
            } else if (strcmp(optarg, "error") == 0) {
                bu_log_set_level(BU_LOG_ERROR);
            } else {
                fprintf(stderr,
                    "bulkupsertd: --log-level is debug, info, "
                    "warn or error, not \"%s\"\n",
                    optarg);
                return 3;
            }
            break;
        case 'h':
            main_usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("bulkupsertd %s\n", MAIN_VERSION);
            return 1;
        case OPT_CHECK_KEYS:
            o->check_keys = true;
            break;
        default:
            main_usage(stderr);
            return 3;
        }
    }
    if (optind < argc) {
        fprintf(
            stderr, "bulkupsertd: unexpected argument \"%s\"\n", argv[optind]);
        main_usage(stderr);
        return 3;
    }
    if (o->nurls == 0) {
        o->urls[o->nurls++] = "tcp://127.0.0.1:7450";
    }
    if (o->keyring == NULL) {
        snprintf(o->keyring_default, sizeof(o->keyring_default), "%s/keyring",
            o->data_dir);
        o->keyring = o->keyring_default;
    }
    if (o->revoked == NULL) {
        snprintf(o->revoked_default, sizeof(o->revoked_default), "%s/revoked",
            o->data_dir);
        o->revoked = o->revoked_default;
    } else if (access(o->revoked, F_OK) != 0) {
        // Named on purpose, so a missing file is a mistake, not "none".
        fprintf(stderr, "bulkupsertd: --revoked %s: %s\n", o->revoked,
            strerror(errno));
        return 3;
    }
    return 0;
}

// main_check_keys reads the keyring and the revocation list as a reload
// would and prints what they hold. Returns the exit status.
static int
main_check_keys(const struct main_opts *o)
{
    struct bu_keyring *kr = NULL;
    int                rv = bu_keyring_open(&kr, o->keyring);
    if (rv == BU_OK) {
        rv = bu_keyring_revocations(kr, o->revoked);
    }
    if (rv != BU_OK) {
        fprintf(stderr,
            "bulkupsertd: keys not valid: %s (the lines above say where)\n",
            bu_strerror(rv));
        bu_keyring_close(kr);
        return 1;
    }
    printf("keyring %s: %zu keys\nrevocation list %s: %zu token ids%s\n",
        o->keyring, bu_keyring_count(kr), o->revoked,
        bu_keyring_revoked_count(kr),
        access(o->revoked, F_OK) != 0 ? " (no such file)" : "");
    bu_keyring_close(kr);
    return 0;
}

// main_wait blocks in sigwait until SIGINT or SIGTERM, serving SIGHUP.
static void
main_wait(const sigset_t *set, struct bu_keyring *keyring)
{
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            int rv = bu_keyring_reload(keyring);
            if (rv == BU_OK) {
                BU_INFO("keyring reloaded: %zu keys, %zu revoked token ids",
                    bu_keyring_count(keyring),
                    bu_keyring_revoked_count(keyring));
            } else {
                BU_ERROR("keyring reload failed, the old keys and revoked "
                         "token ids stay: %s",
                    bu_strerror(rv));
            }
            continue;
        }
        BU_INFO("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
}

int
main(int argc, char **argv)
{
    struct main_opts o = {
        .data_dir = "bulkupsert-data",
        .workers = 2,
        .handlers = 2,
        .contexts = 64,
        .max_queued_jobs = 4096,
        .tenant_max_queued = 1000,
        .tenant_max_inflight = 8,
        .max_inflight_bytes = 256L * 1024 * 1024,
        .retention_ms = 7LL * 24 * 3600 * 1000,
        .drain_ms = 10000,
        .max_message_bytes = BU_MAX_FRAME_BYTES,
    };
    int prv = main_parse(argc, argv, &o);
    if (prv != 0) {
        return prv - 1;
    }

    // Signals are blocked before any thread exists, so only sigwait sees
    // them; SIGPIPE is ignored (a client that goes away is not fatal).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sodium_init() < 0 || sqlite3_initialize() != SQLITE_OK) {
        BU_ERROR("library initialisation failed");
        return 1;
    }
    if (o.check_keys) {
        return main_check_keys(&o);
    }
    // All page caches together stay under this; SQLite recycles pages past
    // it instead of growing (DESIGN inv 6).
    sqlite3_soft_heap_limit64(MAIN_SQLITE_HEAP_LIMIT);
    // Before any file is opened (store/writeback.h); without it SQLite
    // writes as before, only with longer sync stalls.
    bool writeback = bu_writeback_install() == BU_OK;
    if (!writeback) {
        BU_WARN("SQLite's pwrite64 cannot be replaced: writeback is not "
                "started early");
    }
    if (mkdir(o.data_dir, 0750) != 0 && errno != EEXIST) {
        BU_ERROR("data folder %s: %s", o.data_dir, strerror(errno));
        return 1;
    }

    struct bu_keyring    *keyring = NULL;
    struct bu_journal    *journal = NULL;
    struct bu_pool       *pool = NULL;
    struct bu_service    *svc = NULL;
    struct bu_rpc_server *srv = NULL;
    size_t                recovered = 0;
    bool                  journal_started = false;
    int                   status = 1;
    int                   rv = bu_keyring_open(&keyring, o.keyring);
    if (rv != BU_OK) {
        BU_ERROR("keyring %s: %s", o.keyring, bu_strerror(rv));
        goto out;
    }
    if ((rv = bu_keyring_revocations(keyring, o.revoked)) != BU_OK) {
        BU_ERROR("revocation list %s: %s", o.revoked, bu_strerror(rv));
        goto out;
    }
    if ((rv = bu_journal_open(&journal, o.data_dir)) != BU_OK) {
        BU_ERROR("queue %s/queue.db: %s", o.data_dir, bu_strerror(rv));
        goto out;
    }
    bu_journal_set_retention(journal, o.retention_ms);
    struct bu_pool_config pc = {
        .data_dir = o.data_dir,
        .nworkers = o.workers,
        .max_open_tenants = 64,
        .retention_ms = o.retention_ms,
        .claim = bu_journal_claim,
        .on_event = bu_journal_job_event,
        .event_arg = journal,
    };
    if ((rv = bu_pool_start(&pool, &pc)) != BU_OK) {
        BU_ERROR("workers: %s", bu_strerror(rv));
        goto out;
    }
    if ((rv = bu_journal_recover(journal, pool, &recovered)) != BU_OK
        || (rv = bu_journal_start(journal, pool)) != BU_OK) {
        BU_ERROR("queue recovery: %s", bu_strerror(rv));
        goto out;
    }
    journal_started = true;
    struct bu_service_config sc = {
        .data_dir = o.data_dir,
        .keyring = keyring,
        .journal = journal,
        .nhandlers = o.handlers,
        .max_queued_jobs = (size_t) o.max_queued_jobs,
        .tenant_max_queued = (size_t) o.tenant_max_queued,
        .tenant_max_inflight = (size_t) o.tenant_max_inflight,
        .max_inflight_bytes = (size_t) o.max_inflight_bytes,
    };
    if ((rv = bu_service_start(&svc, &sc)) != BU_OK) {
        BU_ERROR("handlers: %s", bu_strerror(rv));
        goto out;
    }
    struct bu_rpc_server_config rc = {
        .urls = o.urls,
        .nurls = o.nurls,
        .ncontexts = o.contexts,
        .max_msg_bytes = (size_t) o.max_message_bytes,
        .handler = bu_service_handle,
        .arg = svc,
    };
    if ((rv = bu_rpc_server_start(&srv, &rc)) != BU_OK) {
        BU_ERROR("transport: %s", bu_strerror(rv));
        goto out;
    }
    BU_INFO("bulkupsertd %s ready: data %s, %zu keys, %zu revoked token ids, "
            "%d workers, %zu jobs resumed",
        MAIN_VERSION, o.data_dir, bu_keyring_count(keyring),
        bu_keyring_revoked_count(keyring), o.workers, recovered);
    main_wait(&set, keyring);
    status = 0;

out:
    // Reverse order: new calls get 503 while the calls in flight finish
    // (their replies still go out), then intake closes, the handlers stop,
    // workers finish the job each applies, the journal writes what it
    // holds, and the transport's aios go last.
    bu_service_drain(svc);
    if (bu_service_quiesce(svc, (int) o.drain_ms) != BU_OK) {
        BU_WARN("calls still in flight after %ld ms; stopping anyway "
                "(accepted jobs are on disk)",
            o.drain_ms);
    }
    bu_rpc_server_close(srv);
    bu_service_stop(svc);
    if (!journal_started) {
        // Workers may wait on claims that only the journal answers: close
        // it (claims then get BU_ECLOSED), but free it only once they
        // have stopped.
        bu_journal_close(journal);
    }
    bu_pool_stop(pool);
    bu_journal_stop(journal);
    bu_pool_free(pool);
    bu_rpc_server_free(srv);
    bu_keyring_close(keyring);
    bu_arena_cache_release();
    if (writeback) {
        bu_writeback_uninstall();
        BU_DEBUG("writeback started early %llu times",
            (unsigned long long) bu_writeback_kicks());
    }
    sqlite3_shutdown();
    if (status == 0) {
        BU_INFO("stopped");
    }
    return status;
}
