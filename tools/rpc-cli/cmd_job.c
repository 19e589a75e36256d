// SPDX-License-Identifier: MIT
/*
 * `rpc-cli job get JOB_ID` and `rpc-cli job cancel JOB_ID`, and the `job`
 * dispatcher (list and watch live in job_list.c and job_watch.c, the
 * renderers they all share in job_render.c). get calls GetJob
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

#include "job_int.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
static const char job_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] job SUBCOMMAND [JOB_ID] [OPTIONS]\n"
    "\n"
    "Subcommands:\n"
    "  get JOB_ID            show a job's state, timestamps and counts, and\n"
    "                        with --records its per-record results\n"
    "  cancel JOB_ID         cancel a job that is still QUEUED\n"
    "  list                  list the tenant's jobs, newest first\n"
    "  watch JOB_ID          follow a job until it is final; exit 3 when it\n"
    "                        did not complete cleanly\n"
    "\n"
    "Run 'rpc-cli job SUBCOMMAND --help' for its options.\n"
    "\n"
    "Examples:\n"
    "  rpc-cli job get 0190b7c4-5a4e-7c1d-9b7e-3f2a1c9d8e7f\n"
    "  rpc-cli job list --state failed,completed_with_errors --since 1d\n";
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
    if ((rv = cli_operands(cmd, argc, argv, optind, 1, "JOB_ID"))
        != CLI_EXIT_OK) {
        return rv;
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
        if ((rv = cli_print_json("job get", out)) != CLI_EXIT_OK) {
            goto out;
        }
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
        if ((rv = cli_print_json("job cancel", out)) != CLI_EXIT_OK) {
            goto out;
        }
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
        return cli_usage_error(
            "job", "missing subcommand (get, cancel, list or watch)");
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
    if (strcmp(argv[1], "list") == 0) {
        return job_list(argc - 1, argv + 1, conn);
    }
    if (strcmp(argv[1], "watch") == 0) {
        return job_watch(argc - 1, argv + 1, conn);
    }
    return cli_usage_error("job", "unknown subcommand '%s'", argv[1]);
}
