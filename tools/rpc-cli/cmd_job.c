// SPDX-License-Identifier: MIT
/*
 * `rpc-cli job get JOB_ID` and `rpc-cli job cancel JOB_ID`. get calls GetJob
 * and prints the job's state, timestamps (RFC 3339, UTC, milliseconds) and
 * counts as a text block, or with --json as one JSON object built with
 * jansson. --records pages through the per-record results (1000 a call
 * unless --page-size says less, following next_page_token to the end) and
 * prints them after the job; --errors-only keeps the records with errors
 * or warnings. cancel calls CancelJob, which only a QUEUED job survives,
 * and prints the job as get does.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"

#include "base/clock.h"
#include "base/err.h"

#include <jansson.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
static const char job_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] job SUBCOMMAND JOB_ID [OPTIONS]\n"
    "\n"
    "Subcommands:\n"
    "  get JOB_ID            show a job's state, timestamps and counts, and\n"
    "                        with --records its per-record results\n"
    "  cancel JOB_ID         cancel a job that is still QUEUED\n"
    "\n"
    "Run 'rpc-cli job SUBCOMMAND --help' for its options.\n"
    "\n"
    "Example:\n"
    "  rpc-cli job get 0190b7c4-5a4e-7c1d-9b7e-3f2a1c9d8e7f\n";
// clang-format on

// clang-format off
static const char job_get_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] job get JOB_ID [OPTIONS]\n"
    "\n"
    "Shows a job's state (QUEUED, RUNNING, COMPLETED, COMPLETED_WITH_ERRORS,\n"
    "FAILED, CANCELLED), its timestamps in RFC 3339 (UTC) and its counts:\n"
    "total, inserted, updated, unchanged, superseded, not_found, failed.\n"
    "A job of another tenant is reported as not found. Needs a token with\n"
    "DataSpace.Read.\n"
    "\n"
    "With --records, every per-record result follows, in input order: the\n"
    "record's index in its request, contact_key, outcome (INSERTED, UPDATED,\n"
    "UNCHANGED, SUPERSEDED by a later record, NOT_FOUND, FAILED), and its\n"
    "errors (column: reason) and warnings. All pages are fetched.\n"
    "\n"
    "Options:\n"
    "  --json                print one JSON object with the keys job_id,\n"
    "                        state, accepted_at, started_at, finished_at,\n"
    "                        counts and error (timestamps and error are\n"
    "                        null when unset)\n"
    "  --records             also print the per-record results (in JSON,\n"
    "                        under \"records\": index, contact_key, outcome,\n"
    "                        superseded_by, errors [{column, reason}],\n"
    "                        warnings)\n"
    "  --errors-only         with --records: only the records with errors\n"
    "                        or warnings (and those not found)\n"
    "  --page-size N         with --records: records fetched per call, 1 to\n"
    "                        1000 (default 1000); the output is the same\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Examples:\n"
    "  rpc-cli job get 0190b7c4-5a4e-7c1d-9b7e-3f2a1c9d8e7f --json\n"
    "  rpc-cli job get 0190b7c4-5a4e-7c1d-9b7e-3f2a1c9d8e7f --records \\\n"
    "      --errors-only\n";
// clang-format on

// clang-format off
static const char job_cancel_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] job cancel JOB_ID [OPTIONS]\n"
    "\n"
    "Cancels a job that is still QUEUED: it becomes CANCELLED and none of\n"
    "its records is applied. The job is then printed as 'job get' prints\n"
    "it. A job that is RUNNING or finished cannot be cancelled; the server\n"
    "answers FAILED_PRECONDITION and the exit code is 1. Needs a token with\n"
    "DataSpace.Manage.\n"
    "\n"
    "Options:\n"
    "  --json                print the job as one JSON object (the keys of\n"
    "                        'job get --json')\n" CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli job cancel 0190b7c4-5a4e-7c1d-9b7e-3f2a1c9d8e7f\n";
// clang-format on

enum job_opt {
    JOB_OPT_JSON = CLI_OPT_FIRST_LOCAL,
    JOB_OPT_RECORDS,
    JOB_OPT_ERRORS_ONLY,
    JOB_OPT_PAGE_SIZE,
};

// Most per-record results one GetJob call may return.
#define JOB_PAGE_MAX 1000

struct job_args {
    struct cli_conn conn;
    const char     *job_id;
    int             json;
    int             records;
    int             errors_only;
    long            page_size;
};

// Writes ms (Unix milliseconds) as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (at
// least 32 bytes). Returns 0, or -1 for an unset (<= 0) or unprintable time.
static int
job_time_format(int64_t ms, char *buf, size_t len)
{
    char secs[32];

    if (ms <= 0 || bu_rfc3339_format(ms / 1000, secs, sizeof(secs)) != BU_OK) {
        return -1;
    }
    // "...:SSZ" becomes "...:SS.mmmZ".
    size_t n = strlen(secs);
    snprintf(buf, len, "%.*s.%03dZ", (int) (n - 1), secs, (int) (ms % 1000));
    return 0;
}

static const char *
job_outcome_name(int outcome)
{
    static const char         prefix[] = "OUTCOME_";
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &bulkupsert__v1__record_outcome__descriptor, outcome);
    if (v == NULL) {
        return "UNKNOWN";
    }
    if (strncmp(v->name, prefix, sizeof(prefix) - 1) == 0) {
        return v->name + sizeof(prefix) - 1;
    }
    return v->name;
}

// The counts in field order, with their JSON and text names.
struct job_count {
    const char *name;
    uint32_t    value;
};

static size_t
job_counts(const Bulkupsert__V1__Job *job, struct job_count out[7])
{
    static const Bulkupsert__V1__JobCounts none
        = BULKUPSERT__V1__JOB_COUNTS__INIT;
    const Bulkupsert__V1__JobCounts *c
        = job->counts != NULL ? job->counts : &none;
    const struct job_count all[7] = {
        { "total", c->total },
        { "inserted", c->inserted },
        { "updated", c->updated },
        { "unchanged", c->unchanged },
        { "superseded", c->superseded },
        { "not_found", c->not_found },
        { "failed", c->failed },
    };
    memcpy(out, all, sizeof(all));
    return 7;
}

static void
job_print_text(const Bulkupsert__V1__Job *job)
{
    const struct {
        const char *name;
        int64_t     ms;
    } times[3] = {
        { "accepted_at", job->accepted_at_ms },
        { "started_at", job->started_at_ms },
        { "finished_at", job->finished_at_ms },
    };
    struct job_count counts[7];
    char             buf[40];

    printf("job_id       %s\n", job->job_id != NULL ? job->job_id : "");
    const char *state = bulkupsert_job_state_name(job->state);
    const char *sgr = cli_state_sgr(state);
    printf("state        %s%s%s\n", sgr, state,
        sgr[0] != '\0' ? CLI_SGR_RESET : "");
    for (size_t i = 0; i < 3; i++) {
        int set = job_time_format(times[i].ms, buf, sizeof(buf)) == 0;
        printf("%-12s %s\n", times[i].name, set ? buf : "-");
    }
    printf("counts\n");
    size_t n = job_counts(job, counts);
    for (size_t i = 0; i < n; i++) {
        printf("  %-11s %" PRIu32 "\n", counts[i].name, counts[i].value);
    }
    if (job->error != NULL && job->error[0] != '\0') {
        printf("error        %s\n", job->error);
    }
}

static void
job_print_record_text(const Bulkupsert__V1__RecordResult *r)
{
    printf("record %" PRIu32, r->index);
    if (r->contact_key != NULL) {
        printf(" (key %s)", r->contact_key);
    }
    const char *sgr = "";
    if (r->outcome == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_FAILED) {
        sgr = cli_sgr(CLI_SGR_RED);
    } else if (r->outcome
        == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_NOT_FOUND) {
        sgr = cli_sgr(CLI_SGR_YELLOW);
    }
    printf(": %s%s%s", sgr, job_outcome_name(r->outcome),
        sgr[0] != '\0' ? CLI_SGR_RESET : "");
    if (r->outcome == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_SUPERSEDED
        && r->has_superseded_by) {
        printf(" by record %" PRIu32, r->superseded_by);
    }
    putchar('\n');
    for (size_t i = 0; i < r->n_errors; i++) {
        const Bulkupsert__V1__FieldError *fe = r->errors[i];
        if (fe->column != NULL) {
            printf("  column %s: %s\n", fe->column,
                fe->reason != NULL ? fe->reason : "");
        } else {
            printf("  %s\n", fe->reason != NULL ? fe->reason : "");
        }
    }
    for (size_t i = 0; i < r->n_warnings; i++) {
        printf("  warning: %s\n", r->warnings[i]);
    }
}

// Returns a JSON string, or JSON null for NULL.
static json_t *
job_json_string(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
job_json_time(int64_t ms)
{
    char buf[40];
    return job_time_format(ms, buf, sizeof(buf)) == 0 ? json_string(buf)
                                                      : json_null();
}

// Builds the job object. Returns NULL when out of memory. (jansson's
// json_object_set_new takes ownership of the value even when it fails, and
// the object functions accept NULL values by failing, so one check of the
// result at the end is enough.)
static json_t *
job_json(const Bulkupsert__V1__Job *job)
{
    struct job_count counts[7];
    json_t          *obj = json_object();
    json_t          *jc = json_object();
    int              bad = obj == NULL || jc == NULL;

    size_t n = job_counts(job, counts);
    for (size_t i = 0; !bad && i < n; i++) {
        bad |= json_object_set_new(
                   jc, counts[i].name, json_integer(counts[i].value))
            != 0;
    }
    if (bad) {
        json_decref(jc);
        json_decref(obj);
        return NULL;
    }
    const char *error
        = job->error != NULL && job->error[0] != '\0' ? job->error : NULL;
    bad |= json_object_set_new(obj, "job_id", job_json_string(job->job_id));
    bad |= json_object_set_new(
        obj, "state", json_string(bulkupsert_job_state_name(job->state)));
    bad |= json_object_set_new(
        obj, "accepted_at", job_json_time(job->accepted_at_ms));
    bad |= json_object_set_new(
        obj, "started_at", job_json_time(job->started_at_ms));
    bad |= json_object_set_new(
        obj, "finished_at", job_json_time(job->finished_at_ms));
    bad |= json_object_set_new(obj, "counts", jc);
    bad |= json_object_set_new(obj, "error", job_json_string(error));
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *
job_json_record(const Bulkupsert__V1__RecordResult *r)
{
    json_t *obj = json_object();
    json_t *errors = json_array();
    json_t *warnings = json_array();
    int     bad = obj == NULL || errors == NULL || warnings == NULL;

    for (size_t i = 0; !bad && i < r->n_errors; i++) {
        const Bulkupsert__V1__FieldError *fe = r->errors[i];
        json_t                           *e = json_object();
        bad |= e == NULL;
        if (!bad) {
            bad |= json_object_set_new(
                e, "column", job_json_string(fe->column));
            bad |= json_object_set_new(
                e, "reason", job_json_string(fe->reason));
        }
        bad |= json_array_append_new(errors, e) != 0;
    }
    for (size_t i = 0; !bad && i < r->n_warnings; i++) {
        bad |= json_array_append_new(warnings, json_string(r->warnings[i]));
    }
    if (bad) {
        json_decref(warnings);
        json_decref(errors);
        json_decref(obj);
        return NULL;
    }
    bad |= json_object_set_new(obj, "index", json_integer(r->index));
    bad |= json_object_set_new(
        obj, "contact_key", job_json_string(r->contact_key));
    bad |= json_object_set_new(
        obj, "outcome", json_string(job_outcome_name(r->outcome)));
    if (r->has_superseded_by) {
        bad |= json_object_set_new(
            obj, "superseded_by", json_integer(r->superseded_by));
    }
    bad |= json_object_set_new(obj, "errors", errors);
    bad |= json_object_set_new(obj, "warnings", warnings);
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

// Parses the command line of `job get` (with_records) or `job cancel`,
// named cmd and answering --help with usage. Returns CLI_EXIT_OK, an exit
// code after a usage error, or -1 when help was printed.
static int
job_parse(int argc, char *argv[], const char *cmd, const char *usage,
    int with_records, struct job_args *a)
{
    static const struct option get_opts[] = {
        { "json", no_argument, NULL, JOB_OPT_JSON },
        { "records", no_argument, NULL, JOB_OPT_RECORDS },
        { "errors-only", no_argument, NULL, JOB_OPT_ERRORS_ONLY },
        { "page-size", required_argument, NULL, JOB_OPT_PAGE_SIZE },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct option cancel_opts[] = {
        { "json", no_argument, NULL, JOB_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    const struct option *longopts = with_records ? get_opts : cancel_opts;
    int                  c;
    int                  rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return -1;
        case JOB_OPT_JSON:
            a->json = 1;
            break;
        case JOB_OPT_RECORDS:
            a->records = 1;
            break;
        case JOB_OPT_ERRORS_ONLY:
            a->errors_only = 1;
            break;
        case JOB_OPT_PAGE_SIZE:
            if (cli_parse_long(optarg, 1, JOB_PAGE_MAX, &a->page_size) != 0) {
                return cli_usage_error(cmd,
                    "--page-size '%s' is not a number from 1 to %d", optarg,
                    JOB_PAGE_MAX);
            }
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
    if (optind >= argc) {
        return cli_usage_error(cmd, "missing JOB_ID");
    }
    if (optind + 1 < argc) {
        return cli_usage_error(
            cmd, "unexpected argument '%s'", argv[optind + 1]);
    }
    if (a->errors_only && !a->records) {
        return cli_usage_error(cmd, "--errors-only needs --records");
    }
    if (a->page_size != 0 && !a->records) {
        return cli_usage_error(cmd, "--page-size needs --records");
    }
    a->job_id = argv[optind];
    if (a->job_id[0] == '\0') {
        return cli_usage_error(cmd, "JOB_ID is empty");
    }
    return CLI_EXIT_OK;
}

static int
job_get(int argc, char *argv[], const struct cli_conn *conn)
{
    struct job_args               a = { .conn = *conn };
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    Bulkupsert__V1__Job          *job = NULL;
    bulkupsert_client            *client = NULL;
    struct bulkupsert_status      st;
    json_t                       *out = NULL;
    json_t                       *records = NULL;
    char                         *page_token = NULL;

    int rv = job_parse(argc, argv, "job get", job_get_usage, 1, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, "job get", &client)) != CLI_EXIT_OK) {
        return rv;
    }
    // The request borrows job_id from argv.
    req.job_id = (char *) a.job_id;
    if (a.records) {
        req.has_page_size = 1;
        req.page_size
            = a.page_size != 0 ? (uint32_t) a.page_size : JOB_PAGE_MAX;
        req.has_errors_only = a.errors_only;
        req.errors_only = a.errors_only;
    }
    for (int page = 0;; page++) {
        req.page_token = page_token;
        if (bulkupsert_get_job(client, &req, &job, &st) != BULKUPSERT_OK) {
            cli_print_status(&st, NULL, 0);
            bulkupsert_status_clear(&st);
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        bulkupsert_status_clear(&st);
        if (page == 0 && a.json) {
            out = job_json(job);
            records = a.records ? json_array() : NULL;
            if (out == NULL || (a.records && records == NULL)) {
                cli_error("job get: out of memory");
                rv = CLI_EXIT_FAIL;
                goto out;
            }
        } else if (page == 0) {
            job_print_text(job);
            if (a.records) {
                printf("records\n");
            }
        }
        for (size_t i = 0; a.records && i < job->n_records; i++) {
            if (!a.json) {
                job_print_record_text(job->records[i]);
            } else if (json_array_append_new(
                           records, job_json_record(job->records[i]))
                != 0) {
                cli_error("job get: out of memory");
                rv = CLI_EXIT_FAIL;
                goto out;
            }
        }
        free(page_token);
        page_token = NULL;
        // Stop at the last page; an empty page also ends a buggy loop.
        if (!a.records || job->next_page_token == NULL
            || job->next_page_token[0] == '\0' || job->n_records == 0) {
            break;
        }
        if ((page_token = strdup(job->next_page_token)) == NULL) {
            cli_error("job get: out of memory");
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        bulkupsert__v1__job__free_unpacked(job, NULL);
        job = NULL;
    }
    if (out != NULL) {
        if (records != NULL) {
            json_object_set_new(out, "records", records);
            records = NULL;
        }
        if (json_dumpf(out, stdout, JSON_PRESERVE_ORDER) != 0) {
            cli_error("job get: cannot write the JSON output");
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        putchar('\n');
    }
    rv = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;

out:
    free(page_token);
    json_decref(records);
    json_decref(out);
    if (job != NULL) {
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    bulkupsert_client_close(client);
    return rv;
}

static int
job_cancel(int argc, char *argv[], const struct cli_conn *conn)
{
    struct job_args                  a = { .conn = *conn };
    Bulkupsert__V1__CancelJobRequest req
        = BULKUPSERT__V1__CANCEL_JOB_REQUEST__INIT;
    Bulkupsert__V1__Job     *job = NULL;
    bulkupsert_client       *client = NULL;
    struct bulkupsert_status st;
    json_t                  *out = NULL;

    int rv = job_parse(argc, argv, "job cancel", job_cancel_usage, 0, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, "job cancel", &client))
        != CLI_EXIT_OK) {
        return rv;
    }
    // The request borrows job_id from argv.
    req.job_id = (char *) a.job_id;
    if (bulkupsert_cancel_job(client, &req, &job, &st) != BULKUPSERT_OK) {
        cli_print_status(&st, NULL, 0);
        bulkupsert_status_clear(&st);
        rv = CLI_EXIT_FAIL;
        goto out;
    }
    bulkupsert_status_clear(&st);
    if (a.json) {
        if ((out = job_json(job)) == NULL) {
            cli_error("job cancel: out of memory");
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        if (json_dumpf(out, stdout, JSON_PRESERVE_ORDER) != 0) {
            cli_error("job cancel: cannot write the JSON output");
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        putchar('\n');
    } else {
        job_print_text(job);
    }
    rv = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;

out:
    json_decref(out);
    if (job != NULL) {
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    bulkupsert_client_close(client);
    return rv;
}

int
cmd_job(int argc, char *argv[], const struct cli_conn *conn)
{
    if (argc < 2) {
        return cli_usage_error("job", "missing subcommand (get or cancel)");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(job_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "get") == 0) {
        return job_get(argc - 1, argv + 1, conn);
    }
    if (strcmp(argv[1], "cancel") == 0) {
        return job_cancel(argc - 1, argv + 1, conn);
    }
    return cli_usage_error("job", "unknown subcommand '%s'", argv[1]);
}
