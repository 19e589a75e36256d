// SPDX-License-Identifier: MIT
/*
 * bulkupsert-bench: measures bulkupsertd end to end against the bare SQLite
 * loops of PERF-BASELINES.md on the same disk, schema and rows, and prints
 * one machine-readable RESULT line per pass (insert, update, mixed). With
 * --scaling it prints end-to-end records/s with the tenant table pre-filled
 * to 1M (and optionally 10M) rows and with 1, 4 and 16 tenants.
 *
 * Layout of the work folder: keyring (the run's public key), server/ (the
 * daemon's --data-dir), daemon.log, baseline/ (the bare loops' files, gone
 * once measured) and one scale-... folder per scaling cell.
 */
#define _DEFAULT_SOURCE // getopt_long, mkdtemp
#include "baseline.h"
#include "load.h"
#include "rows.h"
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef BU_DAEMON_PATH
#define BU_DAEMON_PATH "bulkupsertd"
#endif

#define MAIN_MAX_DAEMON_ARGS 32
#define MAIN_PASS_INSERT     1u
#define MAIN_PASS_UPDATE     2u
#define MAIN_PASS_MIXED      4u
#define MAIN_MAX_TENANTS     1024

struct main_opts {
    size_t      records;
    int         clients;
    size_t      tenants;
    size_t      batch;
    double      rate; // records/s offered; 0: closed loop
    const char *url;
    const char *token;
    const char *secret;
    const char *data_dir;
    const char *daemon;
    const char *workers;
    const char *daemon_args[MAIN_MAX_DAEMON_ARGS];
    size_t      ndaemon_args;
    unsigned    passes;
    bool        keep;
    bool        no_baseline;
    bool        cold_tenants;
    bool        scaling;
    size_t      scaling_max_rows;
    uint64_t    seed;
    bool        has_seed;
};

// The run's state, owned by main.
struct bench {
    const struct main_opts *o;
    char                    dir[3072]; // the work folder
    bool               dir_created;    // made by this run (else it was empty)
    char               keyring[3200];
    struct server_keys keys;
    bool               have_keys;
    uint64_t           salt;
    struct server      srv;        // pid 0 when no daemon runs
    char               data[3400]; // the running daemon's --data-dir
    bool               incomplete; // some job did not end COMPLETED
    char               err[1024];
};

// One pass's figures, as printed.
struct main_figures {
    struct load_result load;
    double             naive_rps; // <= 0: not measured
    double             tuned_rps;
    double             rss_mb; // < 0: unknown
    double             db_mb;
};

static void
main_usage(FILE *f)
{
    fprintf(f,
        "Usage: bulkupsert-bench [OPTIONS]\n"
        "\n"
        "Measures bulkupsertd end to end. C client threads submit\n"
        "1000-record SubmitBulkUpsert requests of random contact keys\n"
        "until --records are accepted (a 429 is retried after its\n"
        "retry_after_ms), then GetJob is polled until every job has\n"
        "finished. In the same run and work folder, the bare SQLite loops\n"
        "of PERF-BASELINES.md write the same rows: naive (1000-row\n"
        "transactions, defaults) and tuned (10,000-row transactions,\n"
        "256 MiB cache, wal_autocheckpoint 10000). One line per pass:\n"
        "  RESULT pass=insert records=... wall_s=... e2e_rps=...\n"
        "  naive_rps=... tuned_rps=... ratio_naive=... ratio_tuned=...\n"
        "  ack_p50_ms=... ack_p90_ms=... ack_p99_ms=... ack_max_ms=...\n"
        "  peak_rss_mb=... db_mb=... (more keys: see bench/README.md)\n"
        "\n"
        "Options:\n"
        "  --records N          records a pass (default 1000000)\n"
        "  --clients N          concurrent client threads (default 4)\n"
        "  --tenants N          tenants of the mixed pass (default 4)\n"
        "  --batch N            records a request, 1-1000 (default 1000)\n"
        "  --rate N             offer N records/s in all, each client on a\n"
        "                       fixed schedule (open loop); an ack is timed\n"
        "                       from when its submit was due. Default 0:\n"
        "                       closed loop, each client submits again as\n"
        "                       soon as it is answered\n"
        "  --passes LIST        comma list of insert, update, mixed\n"
        "                       (default insert,update,mixed). update\n"
        "                       needs the insert pass's keys: without\n"
        "                       insert, that pass runs unreported\n"
        "  --url URL            use a running server instead of starting\n"
        "                       one; needs --token or --secret;\n"
        "                       peak_rss_mb and db_mb are then na\n"
        "  --token TOKEN        token for --url. One token is one tenant:\n"
        "                       the mixed pass then writes all its key\n"
        "                       sets to that tenant\n"
        "  --secret FILE        k4.secret PASERK (first line of FILE)\n"
        "                       whose public key the --url server trusts;\n"
        "                       tokens are issued for every tenant used\n"
        "  --data-dir DIR       work folder, missing or empty: the\n"
        "                       daemon's data (DIR/server), its log\n"
        "                       (DIR/daemon.log), the keyring and the bare\n"
        "                       loops' files (default: a new folder\n"
        "                       $TMPDIR/bulkupsert-bench.XXXXXX, /tmp when\n"
        "                       TMPDIR is unset)\n"
        "  --keep               keep what the run wrote in the work folder\n"
        "                       (else it is removed at the end)\n"
        "  --daemon PATH        the bulkupsertd to start (default the one\n"
        "                       built with this benchmark)\n"
        "  --workers N          passed to the daemon as --workers N\n"
        "  --daemon-arg ARG     one more daemon argument (repeatable),\n"
        "                       e.g. --daemon-arg=--max-queued-jobs=100\n"
        "  --no-baseline        skip the bare SQLite loops (ratios are na)\n"
        "  --cold-tenants       do not create each pass's tenants before\n"
        "                       its clock starts (by default each gets one\n"
        "                       record outside the measured keys first):\n"
        "                       the pass's first submits then race the\n"
        "                       creation of the tenant databases\n"
        "  --seed N             fixes keys, values and orders (default: a\n"
        "                       new seed each run, so that a --url server\n"
        "                       always sees new keys)\n"
        "  --scaling            instead of the passes: end-to-end records/s\n"
        "                       of an insert and an update pass into a\n"
        "                       tenant table pre-filled with 0, 1M, 10M ...\n"
        "                       rows (up to --scaling-max-rows), and of an\n"
        "                       insert pass spread over 1, 4 and 16 tenants\n"
        "  --scaling-max-rows N largest pre-fill (default 1000000;\n"
        "                       10000000 adds the 10M line, which takes\n"
        "                       long)\n"
        "  -h, --help           this text\n"
        "\n"
        "Default daemon: %s\n"
        "\n"
        "Exit status: 0 when every pass ran and every job ended COMPLETED;\n"
        "1 when a pass failed or a job did not complete; 2 on bad usage.\n"
        "\n"
        "Examples:\n"
        "  bulkupsert-bench --records 100000\n"
        "  bulkupsert-bench --clients 8 --passes insert\n"
        "  bulkupsert-bench --scaling --scaling-max-rows 10000000\n",
        BU_DAEMON_PATH);
}

static int
main_size(const char *name, const char *s, unsigned long long min,
    unsigned long long max, unsigned long long *outp)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || s[0] == '-' || v < min
        || v > max) {
        fprintf(stderr,
            "bulkupsert-bench: %s must be a number from %llu to "
            "%llu, not \"%s\"\n",
            name, min, max, s);
        return 0;
    }
    *outp = v;
    return 1;
}

static int
main_parse_passes(const char *s, unsigned *passesp)
{
    unsigned    passes = 0;
    const char *p = s;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n == 6 && strncmp(p, "insert", n) == 0) {
            passes |= MAIN_PASS_INSERT;
        } else if (n == 6 && strncmp(p, "update", n) == 0) {
            passes |= MAIN_PASS_UPDATE;
        } else if (n == 5 && strncmp(p, "mixed", n) == 0) {
            passes |= MAIN_PASS_MIXED;
        } else {
            fprintf(stderr,
                "bulkupsert-bench: --passes takes insert, "
                "update and mixed, not \"%.*s\"\n",
                (int) n, p);
            return 0;
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    if (passes == 0) {
        fprintf(stderr, "bulkupsert-bench: --passes is empty\n");
        return 0;
    }
    *passesp = passes;
    return 1;
}

// main_parse returns 0 to run, or an exit status + 1.
static int
main_parse(int argc, char **argv, struct main_opts *o)
{
    enum {
        OPT_RECORDS = 256,
        OPT_CLIENTS,
        OPT_TENANTS,
        OPT_BATCH,
        OPT_RATE,
        OPT_PASSES,
        OPT_URL,
        OPT_TOKEN,
        OPT_SECRET,
        OPT_DATA,
        OPT_KEEP,
        OPT_DAEMON,
        OPT_WORKERS,
        OPT_DAEMON_ARG,
        OPT_NO_BASELINE,
        OPT_COLD,
        OPT_SEED,
        OPT_SCALING,
        OPT_SCALING_MAX,
    };
    static const struct option longopts[] = {
        { "records", required_argument, NULL, OPT_RECORDS },
        { "clients", required_argument, NULL, OPT_CLIENTS },
        { "tenants", required_argument, NULL, OPT_TENANTS },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "rate", required_argument, NULL, OPT_RATE },
        { "passes", required_argument, NULL, OPT_PASSES },
        { "url", required_argument, NULL, OPT_URL },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "secret", required_argument, NULL, OPT_SECRET },
        { "data-dir", required_argument, NULL, OPT_DATA },
        { "keep", no_argument, NULL, OPT_KEEP },
        { "daemon", required_argument, NULL, OPT_DAEMON },
        { "workers", required_argument, NULL, OPT_WORKERS },
        { "daemon-arg", required_argument, NULL, OPT_DAEMON_ARG },
        { "no-baseline", no_argument, NULL, OPT_NO_BASELINE },
        { "cold-tenants", no_argument, NULL, OPT_COLD },
        { "seed", required_argument, NULL, OPT_SEED },
        { "scaling", no_argument, NULL, OPT_SCALING },
        { "scaling-max-rows", required_argument, NULL, OPT_SCALING_MAX },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long v;
    int                c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_RECORDS:
            if (!main_size("--records", optarg, 1, 1000000000, &v)) {
                return 3;
            }
            o->records = (size_t) v;
            break;
        case OPT_CLIENTS:
            if (!main_size("--clients", optarg, 1, 256, &v)) {
                return 3;
            }
            o->clients = (int) v;
            break;
        case OPT_TENANTS:
            if (!main_size("--tenants", optarg, 1, MAIN_MAX_TENANTS, &v)) {
                return 3;
            }
            o->tenants = (size_t) v;
            break;
        case OPT_BATCH:
            if (!main_size("--batch", optarg, 1, 1000, &v)) {
                return 3;
            }
            o->batch = (size_t) v;
            break;
        case OPT_RATE:
            if (!main_size("--rate", optarg, 0, 100000000, &v)) {
                return 3;
            }
            o->rate = (double) v;
            break;
        case OPT_PASSES:
            if (!main_parse_passes(optarg, &o->passes)) {
                return 3;
            }
            break;
        case OPT_URL:
            o->url = optarg;
            break;
        case OPT_TOKEN:
            o->token = optarg;
            break;
        case OPT_SECRET:
            o->secret = optarg;
            break;
        case OPT_DATA:
            o->data_dir = optarg;
            break;
        case OPT_KEEP:
            o->keep = true;
            break;
        case OPT_DAEMON:
            o->daemon = optarg;
            break;
        case OPT_WORKERS:
            if (!main_size("--workers", optarg, 1, 64, &v)) {
                return 3;
            }
            o->workers = optarg;
            break;
        case OPT_DAEMON_ARG:
            if (o->ndaemon_args == MAIN_MAX_DAEMON_ARGS) {
                fprintf(stderr,
                    "bulkupsert-bench: at most %d "
                    "--daemon-arg\n",
                    MAIN_MAX_DAEMON_ARGS);
                return 3;
            }
            o->daemon_args[o->ndaemon_args++] = optarg;
            break;
        case OPT_NO_BASELINE:
            o->no_baseline = true;
            break;
        case OPT_COLD:
            o->cold_tenants = true;
            break;
        case OPT_SEED:
            if (!main_size("--seed", optarg, 0, UINT64_MAX, &v)) {
                return 3;
            }
            o->seed = (uint64_t) v;
            o->has_seed = true;
            break;
        case OPT_SCALING:
            o->scaling = true;
            break;
        case OPT_SCALING_MAX:
            if (!main_size(
                    "--scaling-max-rows", optarg, 0, 4000000000ULL, &v)) {
                return 3;
            }
            o->scaling_max_rows = (size_t) v;
            break;
        case 'h':
            main_usage(stdout);
            return 1;
        default:
            fprintf(stderr, "Try bulkupsert-bench --help\n");
            return 3;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
            "bulkupsert-bench: unexpected argument \"%s\"\n"
            "Try bulkupsert-bench --help\n",
            argv[optind]);
        return 3;
    }
    if (o->url != NULL && o->token == NULL && o->secret == NULL) {
        fprintf(stderr,
            "bulkupsert-bench: --url needs --token or "
            "--secret\n");
        return 3;
    }
    if (o->url == NULL && (o->token != NULL || o->secret != NULL)) {
        fprintf(stderr,
            "bulkupsert-bench: --token and --secret go with "
            "--url (a started daemon gets its own keys)\n");
        return 3;
    }
    if (o->scaling && o->url != NULL) {
        fprintf(stderr,
            "bulkupsert-bench: --scaling pre-fills the tenant "
            "database before the daemon starts, so it cannot "
            "use --url\n");
        return 3;
    }
    return 0;
}

static double
main_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

// main_path joins the work folder and a name into buf; 0 when too long.
static int
main_path(const struct bench *b, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", b->dir, name);
    return n > 0 && (size_t) n < len;
}

// main_dir_prepare makes or checks the work folder.
static int
main_dir_prepare(struct bench *b)
{
    const char *given = b->o->data_dir;
    if (given == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(b->dir, sizeof(b->dir), "%s/bulkupsert-bench.XXXXXX",
            tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        if (mkdtemp(b->dir) == NULL) {
            fprintf(stderr, "bulkupsert-bench: mkdtemp %s: %s\n", b->dir,
                strerror(errno));
            return -1;
        }
        b->dir_created = true;
        return 0;
    }
    if (strlen(given) >= 2048) {
        fprintf(stderr, "bulkupsert-bench: --data-dir is too long\n");
        return -1;
    }
    snprintf(b->dir, sizeof(b->dir), "%s", given);
    if (mkdir(b->dir, 0750) == 0) {
        b->dir_created = true;
        return 0;
    }
    if (errno != EEXIST) {
        fprintf(stderr, "bulkupsert-bench: mkdir %s: %s\n", b->dir,
            strerror(errno));
        return -1;
    }
    DIR *d = opendir(b->dir);
    if (d == NULL) {
        fprintf(stderr, "bulkupsert-bench: %s: %s\n", b->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int            empty = 1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    if (!empty) {
        fprintf(stderr,
            "bulkupsert-bench: --data-dir %s is not empty (the "
            "insert pass needs a fresh database)\n",
            b->dir);
        return -1;
    }
    return 0;
}

// main_dir_cleanup removes what the run made, unless --keep.
static void
main_dir_cleanup(struct bench *b)
{
    if (b->dir[0] == '\0') {
        return;
    }
    if (b->o->keep) {
        fprintf(stderr, "bulkupsert-bench: kept %s\n", b->dir);
        return;
    }
    if (b->dir_created) {
        if (server_dir_remove(b->dir) != 0) {
            fprintf(stderr, "bulkupsert-bench: cannot remove %s: %s\n", b->dir,
                strerror(errno));
        }
        return;
    }
    // A folder that was given empty: empty it again.
    DIR *d = opendir(b->dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    char           path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (main_path(b, e->d_name, path, sizeof(path))
            && server_dir_remove(path) != 0) {
            fprintf(stderr, "bulkupsert-bench: cannot remove %s: %s\n", path,
                strerror(errno));
        }
    }
    closedir(d);
}

// main_token returns a malloc'd token for tenant, or NULL after printing.
static char *
main_token(struct bench *b, const char *tenant)
{
    if (!b->have_keys) {
        char *t = strdup(b->o->token);
        if (t == NULL) {
            fprintf(stderr, "bulkupsert-bench: out of memory\n");
        }
        return t;
    }
    char *t = server_token(&b->keys, tenant, b->err, sizeof(b->err));
    if (t == NULL) {
        fprintf(stderr, "bulkupsert-bench: %s\n", b->err);
    }
    return t;
}

// main_server_start starts the daemon on data (a path under the work
// folder), logging to log.
static int
main_server_start(struct bench *b, const char *data, const char *log)
{
    const struct main_opts *o = b->o;
    const char             *extra[MAIN_MAX_DAEMON_ARGS + 3];
    size_t                  n = 0;
    if (o->workers != NULL) {
        extra[n++] = "--workers";
        extra[n++] = o->workers;
    }
    for (size_t i = 0; i < o->ndaemon_args; i++) {
        extra[n++] = o->daemon_args[i];
    }
    extra[n] = NULL;
    const char *daemon = o->daemon != NULL ? o->daemon : BU_DAEMON_PATH;
    snprintf(b->data, sizeof(b->data), "%s", data);
    if (server_start(&b->srv, daemon, data, b->keyring, log, extra, b->err,
            sizeof(b->err))
        != 0) {
        fprintf(stderr, "bulkupsert-bench: %s\n", b->err);
        return -1;
    }
    fprintf(stderr, "bulkupsert-bench: bulkupsertd pid %d on %s, data %s\n",
        (int) b->srv.pid, b->srv.url, data);
    return 0;
}

static int
main_server_stop(struct bench *b)
{
    if (b->srv.pid <= 0) {
        return 0;
    }
    int status = server_stop(&b->srv);
    if (status != 0) {
        fprintf(stderr,
            "bulkupsert-bench: bulkupsertd exited with status "
            "%d (see %s)\n",
            status, b->srv.log);
        return -1;
    }
    return 0;
}

static const char *
main_url(const struct bench *b)
{
    return b->o->url != NULL ? b->o->url : b->srv.url;
}

// A pass's tenants: names, tokens and id orders (owned).
struct main_tenants {
    size_t              n;
    struct load_tenant *lt;
    char              **tokens;
    uint32_t          **ids;
};

static void
main_tenants_free(struct main_tenants *mt)
{
    for (size_t t = 0; t < mt->n; t++) {
        if (mt->tokens != NULL && mt->tokens[t] != NULL) {
            sodium_memzero(mt->tokens[t], strlen(mt->tokens[t]));
            free(mt->tokens[t]);
        }
        if (mt->ids != NULL) {
            free(mt->ids[t]);
        }
    }
    free(mt->lt);
    free(mt->tokens);
    free(mt->ids);
    memset(mt, 0, sizeof(*mt));
}

// main_tenants_make spreads records over ntenants tenants named
// <prefix><t>, each with its own random order of its share of the ids
// (id_base = the records of the tenants before it), seeded by seed + t.
static int
main_tenants_make(struct bench *b, struct main_tenants *mt, size_t ntenants,
    const char *prefix, size_t records, uint64_t seed)
{
    memset(mt, 0, sizeof(*mt));
    mt->n = ntenants;
    mt->lt = calloc(ntenants, sizeof(*mt->lt));
    mt->tokens = calloc(ntenants, sizeof(*mt->tokens));
    mt->ids = calloc(ntenants, sizeof(*mt->ids));
    if (mt->lt == NULL || mt->tokens == NULL || mt->ids == NULL) {
        fprintf(stderr, "bulkupsert-bench: out of memory\n");
        main_tenants_free(mt);
        return -1;
    }
    size_t base = 0;
    for (size_t t = 0; t < ntenants; t++) {
        char name[64];
        snprintf(name, sizeof(name), "%s%zu", prefix, t);
        size_t share = records / ntenants + (t < records % ntenants);
        mt->tokens[t] = main_token(b, name);
        mt->ids[t] = rows_perm(share, seed + t);
        if (mt->tokens[t] == NULL || mt->ids[t] == NULL) {
            if (mt->ids[t] == NULL) {
                fprintf(stderr, "bulkupsert-bench: out of memory\n");
            }
            main_tenants_free(mt);
            return -1;
        }
        mt->lt[t].token = mt->tokens[t];
        mt->lt[t].ids = mt->ids[t];
        mt->lt[t].n = share;
        mt->lt[t].id_base = (uint32_t) base;
        base += share;
    }
    return 0;
}

// main_load runs one pass against the server and fills fig. With touch,
// each tenant first gets one record outside the pass's keys (before the
// clock starts), so that its database exists when the pass begins.
static int
main_load(struct bench *b, const struct main_tenants *mt,
    enum rows_space space, unsigned version, bool touch,
    struct main_figures *fig)
{
    const struct main_opts *o = b->o;
    struct load_spec        spec = {
               .url = main_url(b),
               .nclients = o->clients,
               .batch = o->batch,
               .salt = b->salt,
               .space = space,
               .version = version,
               .ntenants = mt->n,
               .tenants = mt->lt,
               .rate = o->rate,
    };
    if (touch && !o->cold_tenants
        && load_touch_tenants(
               &spec, (uint32_t) o->records, b->err, sizeof(b->err))
            != 0) {
        fprintf(stderr, "bulkupsert-bench: %s\n", b->err);
        return -1;
    }
    if (b->srv.pid > 0 && server_peak_rss_reset(b->srv.pid) != 0) {
        fprintf(stderr,
            "bulkupsert-bench: cannot reset the daemon's peak "
            "RSS; peak_rss_mb covers its whole life\n");
    }
    if (load_run(&spec, &fig->load, b->err, sizeof(b->err)) != 0) {
        fprintf(stderr, "bulkupsert-bench: %s\n", b->err);
        return -1;
    }
    if (fig->load.jobs_not_completed > 0) {
        fprintf(stderr, "bulkupsert-bench: %zu jobs did not end COMPLETED\n",
            fig->load.jobs_not_completed);
        b->incomplete = true;
    }
    fig->rss_mb = b->srv.pid > 0 ? server_peak_rss_mb(b->srv.pid) : -1;
    fig->db_mb = b->srv.pid > 0 ? server_dir_mb(b->data) : -1;
    return 0;
}

// main_num prints a figure with prec decimals, or "na" when it is < 0.
static void
main_num(FILE *f, const char *key, double v, int prec)
{
    if (v < 0) {
        fprintf(f, " %s=na", key);
    } else {
        fprintf(f, " %s=%.*f", key, prec, v);
    }
}

static void
main_result(const struct bench *b, const char *pass, size_t ntenants,
    const struct main_figures *fig)
{
    const struct load_result *r = &fig->load;
    double rps = r->wall_s > 0 ? (double) r->records / r->wall_s : 0;
    double naive = fig->naive_rps > 0 ? fig->naive_rps : -1;
    double tuned = fig->tuned_rps > 0 ? fig->tuned_rps : -1;
    printf("RESULT pass=%s records=%zu", pass, r->records);
    main_num(stdout, "wall_s", r->wall_s, 2);
    main_num(stdout, "e2e_rps", rps, 0);
    main_num(stdout, "naive_rps", naive, 0);
    main_num(stdout, "tuned_rps", tuned, 0);
    main_num(stdout, "ratio_naive", naive > 0 ? rps / naive : -1, 2);
    main_num(stdout, "ratio_tuned", tuned > 0 ? rps / tuned : -1, 2);
    main_num(stdout, "ack_p50_ms", r->ack_p50_ms, 2);
    main_num(stdout, "ack_p90_ms", r->ack_p90_ms, 2);
    main_num(stdout, "ack_p99_ms", r->ack_p99_ms, 2);
    main_num(stdout, "ack_max_ms", r->ack_max_ms, 2);
    main_num(stdout, "peak_rss_mb", fig->rss_mb, 1);
    main_num(stdout, "db_mb", fig->db_mb, 1);
    printf(" clients=%d tenants=%zu batch=%zu", b->o->clients, ntenants,
        b->o->batch);
    main_num(stdout, "offered_rps", b->o->rate > 0 ? b->o->rate : -1, 0);
    main_num(stdout, "accept_s", r->accept_s, 2);
    main_num(stdout, "accept_rps",
        r->accept_s > 0 ? (double) r->records / r->accept_s : 0, 0);
    printf(" requests=%zu retries_429=%zu inserted=%llu updated=%llu "
           "unchanged=%llu failed=%llu jobs_not_completed=%zu",
        r->requests, r->retries, (unsigned long long) r->inserted,
        (unsigned long long) r->updated, (unsigned long long) r->unchanged,
        (unsigned long long) r->failed, r->jobs_not_completed);
    main_num(stdout, "row_bytes",
        r->records > 0 ? (double) r->payload_bytes / (double) r->records : 0,
        1);
    printf("\n");
    fflush(stdout);
}

// Baseline rates, by kind: insert and update rows/s.
struct main_baselines {
    double insert_rps[2];
    double update_rps[2];
};

// main_baselines_run measures both bare loops on the insert and update
// orders, each in a fresh file under the work folder, removed afterwards.
static int
main_baselines_run(struct bench *b, const uint32_t *ins, const uint32_t *upd,
    struct main_baselines *out)
{
    const struct main_opts *o = b->o;
    char                    dir[3300], path[3400];
    if (!main_path(b, "baseline", dir, sizeof(dir))) {
        fprintf(stderr, "bulkupsert-bench: work folder path too long\n");
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        enum baseline_kind kind = k == 0 ? BASELINE_NAIVE : BASELINE_TUNED;
        const char        *name = baseline_kind_name(kind);
        snprintf(path, sizeof(path), "%s/tenants/%s.db", dir, name);
        struct baseline_db  *db = NULL;
        struct baseline_pass pi, pu;
        fprintf(stderr, "bulkupsert-bench: %s bare loop, %zu records...\n",
            name, o->records);
        int rv = baseline_create(dir, name, b->err, sizeof(b->err));
        if (rv == 0) {
            rv = baseline_open(&db, path, kind, b->err, sizeof(b->err));
        }
        if (rv == 0) {
            rv = baseline_run(db, b->salt, ROWS_SPACE_MAIN, ins, 0, o->records,
                0, &pi, b->err, sizeof(b->err));
        }
        if (rv == 0) {
            rv = baseline_run(db, b->salt, ROWS_SPACE_MAIN, upd, 0, o->records,
                1, &pu, b->err, sizeof(b->err));
        }
        baseline_close(db);
        double mb = rv == 0 ? server_dir_mb(dir) : -1;
        if (server_dir_remove(dir) != 0) {
            fprintf(stderr, "bulkupsert-bench: cannot remove %s: %s\n", dir,
                strerror(errno));
        }
        if (rv != 0) {
            fprintf(
                stderr, "bulkupsert-bench: %s baseline: %s\n", name, b->err);
            return -1;
        }
        out->insert_rps[k] = pi.rps;
        out->update_rps[k] = pu.rps;
        printf("BASELINE kind=%s records=%zu insert_rps=%.0f insert_s=%.2f "
               "update_rps=%.0f update_s=%.2f db_mb=%.1f\n",
            name, o->records, pi.rps, pi.secs, pu.rps, pu.secs, mb);
        fflush(stdout);
    }
    return 0;
}

// main_passes runs the passes of --passes (the default mode).
static int
main_passes(struct bench *b)
{
    const struct main_opts *o = b->o;
    struct main_baselines   base;
    memset(&base, 0, sizeof(base));
    struct main_tenants single, mixed;
    memset(&single, 0, sizeof(single));
    memset(&mixed, 0, sizeof(mixed));
    uint32_t *upd = rows_perm(o->records, b->salt ^ 0x5550);
    int       rv = -1;
    if (upd == NULL) {
        fprintf(stderr, "bulkupsert-bench: out of memory\n");
        goto out;
    }
    if (main_tenants_make(b, &single, 1, "bench", o->records, b->salt ^ 0x1550)
        != 0) {
        goto out;
    }
    if (!o->no_baseline
        && main_baselines_run(b, single.ids[0], upd, &base) != 0) {
        goto out;
    }

    char data[3300], log[3300];
    if (o->url == NULL) {
        if (!main_path(b, "server", data, sizeof(data))
            || !main_path(b, "daemon.log", log, sizeof(log))
            || main_server_start(b, data, log) != 0) {
            goto out;
        }
    }

    struct main_figures fig;
    if (o->passes & (MAIN_PASS_INSERT | MAIN_PASS_UPDATE)) {
        memset(&fig, 0, sizeof(fig));
        fig.naive_rps = base.insert_rps[0];
        fig.tuned_rps = base.insert_rps[1];
        if (!(o->passes & MAIN_PASS_INSERT)) {
            fprintf(stderr,
                "bulkupsert-bench: inserting the keys the "
                "update pass needs (not reported)\n");
        }
        if (main_load(b, &single, ROWS_SPACE_MAIN, 0, true, &fig) != 0) {
            goto out;
        }
        if (o->passes & MAIN_PASS_INSERT) {
            main_result(b, "insert", 1, &fig);
        }
    }
    if (o->passes & MAIN_PASS_UPDATE) {
        memset(&fig, 0, sizeof(fig));
        fig.naive_rps = base.update_rps[0];
        fig.tuned_rps = base.update_rps[1];
        // Same tenant and keys, the update order and version 1.
        free(single.ids[0]);
        single.ids[0] = upd;
        single.lt[0].ids = upd;
        upd = NULL;
        if (main_load(b, &single, ROWS_SPACE_MAIN, 1, false, &fig) != 0) {
            goto out;
        }
        main_result(b, "update", 1, &fig);
    }
    if (o->passes & MAIN_PASS_MIXED) {
        size_t nt = o->tenants;
        if (o->url != NULL && o->secret == NULL && nt > 1) {
            fprintf(stderr,
                "bulkupsert-bench: one --token is one tenant: "
                "the mixed pass writes all %zu key sets to "
                "it\n",
                nt);
        }
        if (main_tenants_make(
                b, &mixed, nt, "bench-m", o->records, b->salt ^ 0x3550)
            != 0) {
            goto out;
        }
        memset(&fig, 0, sizeof(fig));
        fig.naive_rps = base.insert_rps[0];
        fig.tuned_rps = base.insert_rps[1];
        if (main_load(b, &mixed, ROWS_SPACE_MIXED, 0, true, &fig) != 0) {
            goto out;
        }
        // With one --token every key set goes to that token's tenant.
        main_result(b, "mixed", b->have_keys ? nt : 1, &fig);
    }
    rv = main_server_stop(b);

out:
    free(upd);
    main_tenants_free(&single);
    main_tenants_free(&mixed);
    return rv;
}

// One line of the scaling table.
struct main_scale_row {
    const char *series; // "size" or "tenants"
    size_t      existing;
    size_t      tenants;
    const char *pass;
    double      fill_rps; // tuned loop rate of the pre-fill; < 0 when none
    struct main_figures fig;
};

// main_scale_cell runs one cell in its own folder: pre-fill existing rows
// into tenant bench0 (when existing > 0), start the daemon, run an insert
// pass over ntenants tenants and, when with_update, an update pass.
static int
main_scale_cell(struct bench *b, size_t existing, size_t ntenants,
    bool with_update, struct main_scale_row *rows, size_t *nrowsp)
{
    const struct main_opts *o = b->o;
    char                    cell[3300], data[3400], log[3400], tdb[3500];
    snprintf(cell, sizeof(cell), "%s/scale-rows-%zu-tenants-%zu", b->dir,
        existing, ntenants);
    snprintf(data, sizeof(data), "%s/server", cell);
    snprintf(log, sizeof(log), "%s/daemon.log", cell);
    snprintf(tdb, sizeof(tdb), "%s/tenants/bench0.db", data);
    if (mkdir(cell, 0750) != 0 || mkdir(data, 0750) != 0) {
        fprintf(
            stderr, "bulkupsert-bench: mkdir %s: %s\n", cell, strerror(errno));
        return -1;
    }
    struct main_tenants mt;
    memset(&mt, 0, sizeof(mt));
    uint32_t *upd = NULL;
    int       rv = -1;
    double    fill_rps = -1;
    if (existing > 0) {
        // The daemon's schema, then the tuned bare loop, before it starts.
        struct baseline_db  *db = NULL;
        struct baseline_pass fill;
        fprintf(stderr, "bulkupsert-bench: pre-filling %zu rows into %s\n",
            existing, tdb);
        double t0 = main_now();
        int    frv = baseline_create(data, "bench0", b->err, sizeof(b->err));
        if (frv == 0) {
            frv = baseline_open(
                &db, tdb, BASELINE_TUNED, b->err, sizeof(b->err));
        }
        if (frv == 0) {
            frv = baseline_run(db, b->salt, ROWS_SPACE_PREFILL, NULL, 0,
                existing, 0, &fill, b->err, sizeof(b->err));
        }
        baseline_close(db);
        if (frv != 0) {
            fprintf(stderr, "bulkupsert-bench: pre-fill: %s\n", b->err);
            goto out;
        }
        fill_rps = fill.rps;
        fprintf(stderr,
            "bulkupsert-bench: pre-filled in %.1f s (%.0f "
            "rows/s in SQLite)\n",
            main_now() - t0, fill.rps);
    }
    if (main_tenants_make(
            b, &mt, ntenants, "bench", o->records, b->salt ^ 0x1550)
            != 0
        || main_server_start(b, data, log) != 0) {
        goto out;
    }
    struct main_scale_row *r = &rows[(*nrowsp)++];
    memset(r, 0, sizeof(*r));
    r->series = with_update ? "size" : "tenants";
    r->existing = existing;
    r->tenants = ntenants;
    r->pass = "insert";
    r->fill_rps = fill_rps;
    if (main_load(b, &mt, ROWS_SPACE_MAIN, 0, true, &r->fig) != 0) {
        goto out;
    }
    if (with_update) {
        upd = rows_perm(o->records, b->salt ^ 0x5550);
        if (upd == NULL) {
            fprintf(stderr, "bulkupsert-bench: out of memory\n");
            goto out;
        }
        free(mt.ids[0]);
        mt.ids[0] = upd;
        mt.lt[0].ids = upd;
        upd = NULL;
        r = &rows[(*nrowsp)++];
        memset(r, 0, sizeof(*r));
        r->series = "size";
        r->existing = existing;
        r->tenants = ntenants;
        r->pass = "update";
        r->fill_rps = fill_rps;
        if (main_load(b, &mt, ROWS_SPACE_MAIN, 1, false, &r->fig) != 0) {
            goto out;
        }
    }
    rv = main_server_stop(b);

out:
    if (b->srv.pid > 0) {
        server_kill(&b->srv);
    }
    free(upd);
    main_tenants_free(&mt);
    if (!o->keep && server_dir_remove(cell) != 0) {
        fprintf(stderr, "bulkupsert-bench: cannot remove %s: %s\n", cell,
            strerror(errno));
    }
    return rv;
}

static void
main_scale_print(const struct main_scale_row *r)
{
    const struct load_result *l = &r->fig.load;
    double rps = l->wall_s > 0 ? (double) l->records / l->wall_s : 0;
    printf("SCALE series=%s existing_rows=%zu tenants=%zu pass=%s "
           "records=%zu wall_s=%.2f e2e_rps=%.0f ack_p99_ms=%.2f",
        r->series, r->existing, r->tenants, r->pass, l->records, l->wall_s,
        rps, l->ack_p99_ms);
    main_num(stdout, "peak_rss_mb", r->fig.rss_mb, 1);
    main_num(stdout, "db_mb", r->fig.db_mb, 1);
    main_num(stdout, "prefill_rps", r->fill_rps, 0);
    printf("\n");
    fflush(stdout);
}

// main_scaling runs the --scaling table.
static int
main_scaling(struct bench *b)
{
    const struct main_opts *o = b->o;
    struct main_scale_row   rows[40];
    size_t                  nrows = 0;
    int                     rv = 0;
    // Table sizes: 0 rows as the reference, then 1M, 10M, ... up to the
    // maximum, and the maximum itself when it is not one of those.
    size_t sizes[16];
    size_t nsizes = 0;
    sizes[nsizes++] = 0;
    for (size_t n = 1000000; n <= o->scaling_max_rows && nsizes < 15;
         n *= 10) {
        sizes[nsizes++] = n;
    }
    if (o->scaling_max_rows > sizes[nsizes - 1]) {
        sizes[nsizes++] = o->scaling_max_rows;
    }
    for (size_t i = 0; rv == 0 && i < nsizes; i++) {
        size_t before = nrows;
        rv = main_scale_cell(b, sizes[i], 1, true, rows, &nrows);
        for (size_t j = before; rv == 0 && j < nrows; j++) {
            main_scale_print(&rows[j]);
        }
    }
    static const size_t tenant_counts[] = { 1, 4, 16 };
    for (size_t i = 0; rv == 0 && i < 3; i++) {
        size_t before = nrows;
        rv = main_scale_cell(b, 0, tenant_counts[i], false, rows, &nrows);
        for (size_t j = before; rv == 0 && j < nrows; j++) {
            main_scale_print(&rows[j]);
        }
    }
    if (rv != 0) {
        return rv;
    }
    printf("\nScaling: %zu records a pass, %d clients, %zu-record requests"
           "\n\n",
        o->records, o->clients, o->batch);
    printf("| series | existing rows | tenants | pass | e2e records/s | "
           "wall s | ack p99 ms | peak RSS MB |\n");
    printf("|---|---:|---:|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < nrows; i++) {
        const struct main_scale_row *r = &rows[i];
        const struct load_result    *l = &r->fig.load;
        printf("| %s | %zu | %zu | %s | %.0f | %.2f | %.2f | %.1f |\n",
            r->series, r->existing, r->tenants, r->pass,
            l->wall_s > 0 ? (double) l->records / l->wall_s : 0, l->wall_s,
            l->ack_p99_ms, r->fig.rss_mb);
    }
    fflush(stdout);
    return 0;
}

// main_machine prints what the figures depend on: CPUs, memory, the cost
// of one fdatasync in the work folder, and how steady the CPUs are (the
// times of a 1 ms task: latency percentiles cannot be below them).
static void
main_machine(struct bench *b)
{
    long   ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double mem_mb = -1;
    FILE  *f = fopen("/proc/meminfo", "r");
    if (f != NULL) {
        char line[256];
        long kb;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, "MemTotal: %ld kB", &kb) == 1) {
                mem_mb = (double) kb / 1024.0;
                break;
            }
        }
        fclose(f);
    }
    double p50[2] = { -1, -1 }, p99[2] = { -1, -1 };
    for (int append = 0; append < 2; append++) {
        if (baseline_fsync_probe(b->dir, 200, append, &p50[append],
                &p99[append], b->err, sizeof(b->err))
            != 0) {
            fprintf(stderr, "bulkupsert-bench: fsync probe: %s\n", b->err);
        }
    }
    double cpu_min = -1, cpu_p50 = -1, cpu_p99 = -1;
    if (baseline_cpu_probe(
            500, &cpu_min, &cpu_p50, &cpu_p99, b->err, sizeof(b->err))
        != 0) {
        fprintf(stderr, "bulkupsert-bench: CPU probe: %s\n", b->err);
    }
    printf("MACHINE nproc=%ld", ncpu);
    main_num(stdout, "mem_mb", mem_mb, 0);
    main_num(stdout, "fdatasync_p50_ms", p50[0], 3);
    main_num(stdout, "fdatasync_p99_ms", p99[0], 3);
    main_num(stdout, "append_fdatasync_p50_ms", p50[1], 3);
    main_num(stdout, "append_fdatasync_p99_ms", p99[1], 3);
    main_num(stdout, "cpu_task_min_ms", cpu_min, 3);
    main_num(stdout, "cpu_task_p50_ms", cpu_p50, 3);
    main_num(stdout, "cpu_task_p99_ms", cpu_p99, 3);
    printf(" seed=%llu\n", (unsigned long long) b->salt);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    struct main_opts o;
    memset(&o, 0, sizeof(o));
    o.records = 1000000;
    o.clients = 4;
    o.tenants = 4;
    o.batch = 1000;
    o.passes = MAIN_PASS_INSERT | MAIN_PASS_UPDATE | MAIN_PASS_MIXED;
    o.scaling_max_rows = 1000000;
    int prv = main_parse(argc, argv, &o);
    if (prv != 0) {
        return prv - 1;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bulkupsert-bench: sodium_init failed\n");
        return 1;
    }
    // A dead server must not kill the benchmark with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);

    struct bench b;
    memset(&b, 0, sizeof(b));
    b.o = &o;
    b.salt = o.has_seed
        ? o.seed
        : rows_mix((uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32));
    fprintf(
        stderr, "bulkupsert-bench: seed %llu\n", (unsigned long long) b.salt);
    int rv = -1;
    if (main_dir_prepare(&b) != 0) {
        return 1;
    }
    fprintf(stderr, "bulkupsert-bench: work folder %s\n", b.dir);
    if (o.url == NULL) {
        if (!main_path(&b, "keyring", b.keyring, sizeof(b.keyring))
            || server_keys_make(&b.keys, b.keyring, b.err, sizeof(b.err))
                != 0) {
            fprintf(stderr, "bulkupsert-bench: %s\n", b.err);
            goto out;
        }
        b.have_keys = true;
    } else if (o.secret != NULL) {
        if (server_keys_load(&b.keys, o.secret, b.err, sizeof(b.err)) != 0) {
            fprintf(stderr, "bulkupsert-bench: %s\n", b.err);
            goto out;
        }
        b.have_keys = true;
    }
    main_machine(&b);
    rv = o.scaling ? main_scaling(&b) : main_passes(&b);

out:
    if (b.srv.pid > 0) {
        server_kill(&b.srv);
    }
    server_keys_wipe(&b.keys);
    main_dir_cleanup(&b);
    return rv == 0 && !b.incomplete ? 0 : 1;
}
