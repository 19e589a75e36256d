// SPDX-License-Identifier: MIT
/*
 * `rpc-cli job list`: the tenant's jobs, newest first, through ListJobs.
 * The filters (--state, --since, --until) go to the server, which applies
 * them to every page. Pages are followed until --limit jobs are printed or
 * the last page came. Each call asks for no more jobs than are still
 * wanted, so that the server's next_page_token points just past the last
 * job printed and the operator can continue with --page-token (printed on
 * stderr, or as "next_page_token" in the JSON). Text rows are printed page
 * by page; JSON is one document built at the end.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "job_int.h"

#include "base/clock.h"
#include "base/err.h"

#include <jansson.h>

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
static const char list_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] job list [OPTIONS]\n"
    "\n"
    "Lists the tenant's jobs, newest first, one a line: JOB_ID, STATE,\n"
    "ACCEPTED (RFC 3339, UTC), DURATION (from start to finish, or so far\n"
    "for a running job; - when it never started), and the counts TOTAL,\n"
    "INSERTED, UPDATED, UNCHANGED and FAILED ('job get' shows them all).\n"
    "When more jobs match than --limit, the token to continue with is\n"
    "printed on stderr. Needs a token with DataSpace.Read.\n"
    "\n"
    "TIME is RFC 3339 (2026-11-27T06:00:00Z, 2026-11-27T07:00:00+01:00)\n"
    "or an age: N followed by s, m, h or d (30m means 30 minutes ago).\n"
    "\n"
    "Options:\n"
    "  --state S[,S...]      only jobs in these states (repeatable): queued,\n"
    "                        running, completed, completed_with_errors,\n"
    "                        failed, cancelled; any case\n"
    "  --since TIME          only jobs accepted at or after TIME\n"
    "  --until TIME          only jobs accepted before TIME\n"
    "  --limit N             print at most N jobs, 1 to 1000000 (default 50)\n"
    "  --all                 print every matching job\n"
    "  --page-size N         jobs fetched per call, 1 to 1000 (default: as\n"
    "                        many as still wanted, at most 1000); the output\n"
    "                        is the same\n"
    "  --page-token T        continue where an earlier list stopped (give\n"
    "                        the same filters)\n"
    "  --json                print one JSON object: \"jobs\", an array of\n"
    "                        objects with the keys of 'job get --json', and\n"
    "                        \"next_page_token\" (null when no more jobs)\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Examples:\n"
    "  rpc-cli job list --state failed,completed_with_errors --since 1d\n"
    "  rpc-cli job list --since 2026-11-27T06:00:00Z --all --json\n";
// clang-format on

enum list_opt {
    LIST_OPT_STATE = CLI_OPT_FIRST_LOCAL,
    LIST_OPT_SINCE,
    LIST_OPT_UNTIL,
    LIST_OPT_LIMIT,
    LIST_OPT_ALL,
    LIST_OPT_PAGE_SIZE,
    LIST_OPT_PAGE_TOKEN,
    LIST_OPT_JSON,
};

// Most jobs one ListJobs call may return.
#define LIST_PAGE_MAX 1000
// Jobs printed without --limit or --all.
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX     1000000L
// The JobState values fit in a 32-bit mask.
#define LIST_STATE_BITS 32

struct list_args {
    struct cli_conn conn;
    uint32_t        states; // bit (1 << JobState) per wanted state
    int             has_since;
    int64_t         since_ms;
    int             has_until;
    int64_t         until_ms;
    long            limit; // 0 with --all
    int             limit_set;
    int             all;
    long            page_size; // 0: as many as still wanted
    const char     *page_token;
    int             json;
};

// list_parse_time reads TIME (see list_usage) into Unix milliseconds,
// relative to now_ms. Returns 0, or -1 (nothing written) when s is neither
// form.
static int
list_parse_time(const char *s, int64_t now_ms, int64_t *msp)
{
    static const int64_t century_s = 100LL * 365 * 86400;
    int64_t              secs;

    if (bu_rfc3339_parse(s, &secs) == BU_OK) {
        // bu_rfc3339_parse drops the fraction; keep its milliseconds, so
        // that a time printed by 'job get' selects exactly.
        int64_t ms = 0;
        if (s[19] == '.') {
            const char *p = s + 20;
            for (int k = 0; k < 3; k++) {
                ms = ms * 10 + (*p >= '0' && *p <= '9' ? *p++ - '0' : 0);
            }
        }
        *msp = secs * 1000 + ms;
        return 0;
    }
    if (bu_duration_parse(s, century_s, &secs) != BU_OK) {
        return -1;
    }
    *msp = now_ms - secs * 1000;
    return 0;
}

// list_parse_states adds the comma-separated state names in arg to *maskp.
// Returns CLI_EXIT_OK, or CLI_EXIT_USAGE after naming the bad one.
static int
list_parse_states(const char *arg, uint32_t *maskp)
{
    const char *p = arg;

    for (;;) {
        size_t len = strcspn(p, ",");
        int    st = job_state_parse(p, len);
        if (st < 0 || st >= LIST_STATE_BITS) {
            return cli_usage_error("job list",
                "--state '%.*s' is not a job state (queued, running, "
                "completed, completed_with_errors, failed, cancelled)",
                (int) len, p);
        }
        *maskp |= 1u << st;
        if (p[len] == '\0') {
            return CLI_EXIT_OK;
        }
        p += len + 1;
    }
}

// Returns CLI_EXIT_OK, an exit code after a usage error, or -1 when help
// was printed.
static int
list_parse(int argc, char *argv[], struct list_args *a)
{
    static const struct option longopts[] = {
        { "state", required_argument, NULL, LIST_OPT_STATE },
        { "since", required_argument, NULL, LIST_OPT_SINCE },
        { "until", required_argument, NULL, LIST_OPT_UNTIL },
        { "limit", required_argument, NULL, LIST_OPT_LIMIT },
        { "all", no_argument, NULL, LIST_OPT_ALL },
        { "page-size", required_argument, NULL, LIST_OPT_PAGE_SIZE },
        { "page-token", required_argument, NULL, LIST_OPT_PAGE_TOKEN },
        { "json", no_argument, NULL, LIST_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const char cmd[] = "job list";
    int64_t           now_ms = bu_now_ms();
    int               c;
    int               rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(list_usage, stdout);
            return -1;
        case LIST_OPT_STATE:
            if ((rv = list_parse_states(optarg, &a->states)) != CLI_EXIT_OK) {
                return rv;
            }
            break;
        case LIST_OPT_SINCE:
        case LIST_OPT_UNTIL: {
            int64_t ms;
            if (list_parse_time(optarg, now_ms, &ms) != 0) {
                return cli_usage_error(cmd,
                    "%s '%s' is not an RFC 3339 time "
                    "(2026-11-27T06:00:00Z) or an age like 30m, 1h or 2d",
                    c == LIST_OPT_SINCE ? "--since" : "--until", optarg);
            }
            if (c == LIST_OPT_SINCE) {
                a->has_since = 1;
                a->since_ms = ms;
            } else {
                a->has_until = 1;
                a->until_ms = ms;
            }
            break;
        }
        case LIST_OPT_LIMIT:
            if (cli_parse_long(optarg, 1, LIST_LIMIT_MAX, &a->limit) != 0) {
                return cli_usage_error(cmd,
                    "--limit '%s' is not a number from 1 to %ld", optarg,
                    LIST_LIMIT_MAX);
            }
            a->limit_set = 1;
            break;
        case LIST_OPT_ALL:
            a->all = 1;
            break;
        case LIST_OPT_PAGE_SIZE:
            if (cli_parse_long(optarg, 1, LIST_PAGE_MAX, &a->page_size) != 0) {
                return cli_usage_error(cmd,
                    "--page-size '%s' is not a number from 1 to %d", optarg,
                    LIST_PAGE_MAX);
            }
            break;
        case LIST_OPT_PAGE_TOKEN:
            if (optarg[0] == '\0') {
                return cli_usage_error(cmd, "--page-token is empty");
            }
            a->page_token = optarg;
            break;
        case LIST_OPT_JSON:
            a->json = 1;
            break;
        case CLI_OPT_URL:
        case CLI_OPT_TOKEN:
        case CLI_OPT_TIMEOUT:
            if ((rv = cli_conn_option(&a->conn, c, optarg, cmd)) != 0) {
                return rv;
            }
            break;
        default:
            return cli_getopt_error(cmd, c, argv, optind);
        }
    }
    if ((rv = cli_operands(cmd, argc, argv, optind, 0, NULL)) != CLI_EXIT_OK) {
        return rv;
    }
    if (a->all && a->limit_set) {
        return cli_usage_error(cmd, "--all and --limit exclude each other");
    }
    if (a->has_since && a->has_until && a->since_ms > a->until_ms) {
        return cli_usage_error(cmd, "--since is later than --until");
    }
    if (!a->all && !a->limit_set) {
        a->limit = LIST_LIMIT_DEFAULT;
    }
    // The server takes no time before 1970 (a century-old age gets
    // there): from 0 every job is "since", before 1 none is "until".
    if (a->has_since && a->since_ms < 0) {
        a->since_ms = 0;
    }
    if (a->has_until && a->until_ms < 1) {
        a->until_ms = 1;
    }
    return CLI_EXIT_OK;
}

// Column widths of the table; the last column needs none. Fixed, because
// rows are printed a page at a time.
#define LIST_W_ID       36
#define LIST_W_STATE    21
#define LIST_W_ACCEPTED 20
#define LIST_W_DURATION 8

static void
list_print_header(void)
{
    printf("%s%-*s  %-*s  %-*s  %*s  %5s  %8s  %7s  %9s  %s%s\n",
        cli_sgr(CLI_SGR_BOLD), LIST_W_ID, "JOB_ID", LIST_W_STATE, "STATE",
        LIST_W_ACCEPTED, "ACCEPTED", LIST_W_DURATION, "DURATION", "TOTAL",
        "INSERTED", "UPDATED", "UNCHANGED", "FAILED", cli_sgr(CLI_SGR_RESET));
}

static void
list_print_row(const Bulkupsert__V1__Job *job, int64_t now_ms)
{
    static const Bulkupsert__V1__JobCounts none
        = BULKUPSERT__V1__JOB_COUNTS__INIT;
    const Bulkupsert__V1__JobCounts *c
        = job->counts != NULL ? job->counts : &none;
    char accepted[32] = "-";
    char duration[32] = "-";

    if (job->accepted_at_ms > 0
        && bu_rfc3339_format(
               job->accepted_at_ms / 1000, accepted, sizeof(accepted))
            != BU_OK) {
        snprintf(accepted, sizeof(accepted), "-");
    }
    if (job->started_at_ms > 0) {
        int64_t end = job->finished_at_ms > 0 ? job->finished_at_ms : now_ms;
        job_duration_format(
            end - job->started_at_ms, duration, sizeof(duration));
    }
    // The colour codes take no room on the screen: pad after them.
    const char *state = bulkupsert_job_state_name(job->state);
    const char *sgr = cli_state_sgr(state);
    int         pad = LIST_W_STATE - (int) strlen(state);
    printf("%-*s  %s%s%s%*s  %-*s  %*s  %5" PRIu32 "  %8" PRIu32 "  %7" PRIu32
           "  %9" PRIu32 "  %" PRIu32 "\n",
        LIST_W_ID, cli_text(job->job_id), sgr, state,
        sgr[0] != '\0' ? CLI_SGR_RESET : "", pad > 0 ? pad : 0, "",
        LIST_W_ACCEPTED, accepted, LIST_W_DURATION, duration, c->total,
        c->inserted, c->updated, c->unchanged, c->failed);
}

int
job_list(int argc, char *argv[], const struct cli_conn *conn)
{
    static const char               cmd[] = "job list";
    struct list_args                a = { .conn = *conn };
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    Bulkupsert__V1__JobState          states[LIST_STATE_BITS];
    Bulkupsert__V1__ListJobsResponse *resp = NULL;
    bulkupsert_client                *client = NULL;
    struct bulkupsert_status          st;
    json_t                           *out = NULL;
    json_t                           *jobs = NULL;
    char                             *next = NULL; // owned copy
    long                              left;

    int rv = list_parse(argc, argv, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, cmd, &client)) != CLI_EXIT_OK) {
        return rv;
    }
    for (int s = 0; s < LIST_STATE_BITS; s++) {
        if (a.states & (1u << s)) {
            states[req.n_states++] = (Bulkupsert__V1__JobState) s;
        }
    }
    req.states = req.n_states > 0 ? states : NULL;
    req.has_accepted_after_ms = a.has_since;
    req.accepted_after_ms = a.since_ms;
    req.has_accepted_before_ms = a.has_until;
    req.accepted_before_ms = a.until_ms;
    if (a.json
        && ((out = json_object()) == NULL || (jobs = json_array()) == NULL)) {
        cli_error("%s: out of memory", cmd);
        rv = CLI_EXIT_FAIL;
        goto out;
    }

    // The first request borrows --page-token from argv; later ones use the
    // copy of the previous reply's token in next.
    req.page_token = (char *) a.page_token;
    left = a.all ? LONG_MAX : a.limit;
    for (int page = 0;; page++) {
        long want = a.page_size != 0 ? a.page_size : LIST_PAGE_MAX;
        req.has_page_size = 1;
        req.page_size = (uint32_t) (want < left ? want : left);
        if (bulkupsert_list_jobs(client, &req, &resp, &st) != BULKUPSERT_OK) {
            fflush(stdout);
            cli_print_status(&st, NULL, 0);
            bulkupsert_status_clear(&st);
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        bulkupsert_status_clear(&st);
        if (page == 0 && !a.json) {
            list_print_header();
        }
        int64_t now_ms = bu_now_ms();
        for (size_t i = 0; i < resp->n_jobs; i++) {
            if (!a.json) {
                list_print_row(resp->jobs[i], now_ms);
            } else if (json_array_append_new(jobs, job_json(resp->jobs[i]))
                != 0) {
                cli_error("%s: out of memory", cmd);
                rv = CLI_EXIT_FAIL;
                goto out;
            }
        }
        left -= (long) resp->n_jobs;
        free(next);
        next = NULL;
        // Stop at the last page; an empty page also ends a buggy loop.
        if (resp->next_page_token == NULL || resp->next_page_token[0] == '\0'
            || resp->n_jobs == 0) {
            break;
        }
        if ((next = strdup(resp->next_page_token)) == NULL) {
            cli_error("%s: out of memory", cmd);
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
        resp = NULL;
        if (left <= 0) {
            break;
        }
        req.page_token = next;
    }

    if (a.json) {
        // json_object_set_new takes the value even when it fails.
        int bad = json_object_set_new(out, "jobs", jobs) != 0;
        jobs = NULL;
        bad |= json_object_set_new(out, "next_page_token",
                   next != NULL ? json_string(next) : json_null())
            != 0;
        if (bad) {
            cli_error("%s: out of memory", cmd);
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        if (cli_print_json(cmd, out) != CLI_EXIT_OK) {
            rv = CLI_EXIT_FAIL;
            goto out;
        }
    }
    rv = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rv == CLI_EXIT_OK && next != NULL && !a.json) {
        fprintf(stderr,
            "rpc-cli %s: more jobs follow; to see them, run it again with "
            "--page-token %s (and the same filters)\n",
            cmd, cli_text(next));
    }

out:
    free(next);
    json_decref(jobs);
    json_decref(out);
    if (resp != NULL) {
        bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
    }
    bulkupsert_client_close(client);
    return rv;
}
