// SPDX-License-Identifier: MIT
/*
 * `rpc-cli submit FILE`: streams CSV or NDJSON records into
 * SubmitBulkUpsert requests of at most --batch records and prints one job id
 * a line. The reader stays one request ahead of the sender, so bad input in
 * request N+1 stops the command before request N goes out, and it is known
 * before the first request whether there will be several (which decides the
 * idempotency keys: K for one request, K-1, K-2, ... for several). A busy
 * server (429) is retried after the wait it asks for; nothing else is
 * retried, because a resent submit could queue a second job.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"
#include "records.h"

#include "base/alloc.h"
#include "base/err.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// clang-format off
static const char submit_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] submit FILE [OPTIONS]\n"
    "\n"
    "Submits the records in FILE (\"-\" reads standard input) as bulk upsert\n"
    "jobs and prints each job id on its own line. FILE is CSV with a header\n"
    "row naming the columns, or NDJSON with one JSON object per line. The\n"
    "records go in requests of at most 1000; each request becomes one job.\n"
    "\n"
    "Options:\n"
    "  --format csv|ndjson   input format (default: from the extension,\n"
    "                        .csv, .ndjson or .jsonl; otherwise csv)\n"
    "  --batch N             records per request, 1 to 1000 (default 1000)\n"
    "  --no-fail-on-error    queue the valid records and report invalid ones\n"
    "                        in the job result (default: one invalid record\n"
    "                        rejects its whole request)\n"
    "  --no-insert           only update existing contacts; unknown keys are\n"
    "                        reported as not found\n"
    "  --idempotency-key K   a retry with the same K returns the first job\n"
    "                        instead of queueing another; with several\n"
    "                        requests, request N uses K-N\n"
    "  --retries N           resend a request refused as busy (429) up to N\n"
    "                        times, after the wait the server asks for\n"
    "                        (default 3)\n" CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Values: in CSV every field is a string, an empty field is \"not\n"
    "provided\" (an existing contact keeps its value, a new one gets the\n"
    "default) and a quoted empty field (\"\") is the empty string. In\n"
    "NDJSON, strings, true/false and null are sent as such, numbers as\n"
    "their decimal text, and a missing key is not provided.\n"
    "\n"
    "Bad input (a CSV row with the wrong number of fields, a line that is\n"
    "not a JSON object) stops the command with exit code 2 and names the\n"
    "line. Input is read one request ahead, so neither the request holding\n"
    "the bad line nor the one before it is sent; earlier requests were, and\n"
    "their job ids have been printed.\n"
    "\n"
    "Examples:\n"
    "  export BULKUPSERT_TOKEN=\"$(cat acme.token)\"\n"
    "  rpc-cli submit contacts.csv --no-fail-on-error\n"
    "  printf 'contact_key,email\\nc1,a@example.com\\n' | rpc-cli submit -\n";
// clang-format on

enum submit_opt {
    SUBMIT_OPT_FORMAT = CLI_OPT_FIRST_LOCAL,
    SUBMIT_OPT_BATCH,
    SUBMIT_OPT_NO_FAIL,
    SUBMIT_OPT_NO_INSERT,
    SUBMIT_OPT_IDEM,
    SUBMIT_OPT_RETRIES,
};

struct submit_args {
    struct cli_conn     conn;
    const char         *path;
    enum records_format format;
    int                 format_set;
    size_t              batch;
    int                 no_fail_on_error;
    int                 no_insert;
    const char         *idempotency_key;
    long                retries;
};

// Parses the command line into a. Returns CLI_EXIT_OK, an exit code after
// a usage error, or -1 when help was printed.
static int
submit_parse(int argc, char *argv[], struct submit_args *a)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, SUBMIT_OPT_FORMAT },
        { "batch", required_argument, NULL, SUBMIT_OPT_BATCH },
        { "no-fail-on-error", no_argument, NULL, SUBMIT_OPT_NO_FAIL },
        { "no-insert", no_argument, NULL, SUBMIT_OPT_NO_INSERT },
        { "idempotency-key", required_argument, NULL, SUBMIT_OPT_IDEM },
        { "retries", required_argument, NULL, SUBMIT_OPT_RETRIES },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    long n;
    int  c;
    int  rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(submit_usage, stdout);
            return -1;
        case SUBMIT_OPT_FORMAT:
            if (strcmp(optarg, "csv") == 0) {
                a->format = RECORDS_CSV;
            } else if (strcmp(optarg, "ndjson") == 0
                || strcmp(optarg, "jsonl") == 0) {
                a->format = RECORDS_NDJSON;
            } else {
                return cli_usage_error(
                    "submit", "--format '%s' is not csv or ndjson", optarg);
            }
            a->format_set = 1;
            break;
        case SUBMIT_OPT_BATCH:
            if (cli_parse_long(optarg, 1, RECORDS_MAX_PER_REQUEST, &n) != 0) {
                return cli_usage_error("submit",
                    "--batch '%s' is not a number from 1 to %d", optarg,
                    RECORDS_MAX_PER_REQUEST);
            }
            a->batch = (size_t) n;
            break;
        case SUBMIT_OPT_NO_FAIL:
            a->no_fail_on_error = 1;
            break;
        case SUBMIT_OPT_NO_INSERT:
            a->no_insert = 1;
            break;
        case SUBMIT_OPT_IDEM:
            if (optarg[0] == '\0') {
                return cli_usage_error("submit", "--idempotency-key is empty");
            }
            a->idempotency_key = optarg;
            break;
        case SUBMIT_OPT_RETRIES:
            if (cli_parse_long(optarg, 0, 100, &a->retries) != 0) {
                return cli_usage_error("submit",
                    "--retries '%s' is not a number from 0 to 100", optarg);
            }
            break;
        case CLI_OPT_URL:
        case CLI_OPT_TOKEN:
        case CLI_OPT_TIMEOUT:
            if ((rv = cli_conn_option(&a->conn, c, optarg, "submit")) != 0) {
                return rv;
            }
            break;
        default:
            return cli_getopt_error("submit", c, argv, optind);
        }
    }
    if (optind >= argc) {
        return cli_usage_error("submit", "missing FILE (use - for stdin)");
    }
    if (optind + 1 < argc) {
        return cli_usage_error(
            "submit", "unexpected argument '%s'", argv[optind + 1]);
    }
    a->path = argv[optind];
    if (!a->format_set) {
        a->format = records_format_of_path(a->path);
    }
    return CLI_EXIT_OK;
}

static void
submit_sleep_ms(unsigned ms)
{
    struct timespec ts
        = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { }
}

// Sends one chunk (request number nr), retrying a busy server. Prints the
// job id on success. Returns an exit code.
static int
submit_chunk(bulkupsert_client *client, const struct submit_args *a,
    struct records_chunk *chunk, int nr, int several)
{
    Bulkupsert__V1__SubmitBulkUpsertRequest  *req = chunk->request;
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;
    struct bulkupsert_status                  st;

    if (a->no_fail_on_error) {
        req->has_fail_on_error = 1;
        req->fail_on_error = 0;
    }
    if (a->no_insert) {
        req->has_insert_if_not_exists = 1;
        req->insert_if_not_exists = 0;
    }
    if (a->idempotency_key != NULL) {
        // malloc'd: the request is freed with its __free_unpacked.
        size_t len = strlen(a->idempotency_key) + 16;
        if ((req->idempotency_key = malloc(len)) == NULL) {
            cli_error("submit: out of memory");
            return CLI_EXIT_FAIL;
        }
        if (several) {
            snprintf(
                req->idempotency_key, len, "%s-%d", a->idempotency_key, nr);
        } else {
            snprintf(req->idempotency_key, len, "%s", a->idempotency_key);
        }
    }

    int rv;
    for (long attempt = 0;; attempt++) {
        rv = bulkupsert_submit(client, req, &reply, &st);
        if (rv != BULKUPSERT_RESOURCE_EXHAUSTED || attempt >= a->retries) {
            break;
        }
        unsigned wait = st.retry_after_ms != 0 ? st.retry_after_ms : 1000;
        fprintf(stderr,
            "rpc-cli: request %d: server busy (%s); retrying in %u ms\n", nr,
            st.message, wait);
        bulkupsert_status_clear(&st);
        submit_sleep_ms(wait);
    }
    if (rv != BULKUPSERT_OK) {
        cli_print_status(&st, chunk->lines, chunk->nrecords);
        if (several || nr > 1) {
            cli_error("request %d (records on lines %ld to %ld of %s) was "
                      "not accepted; %d request%s before it %s",
                nr, chunk->lines[0], chunk->lines[chunk->nrecords - 1],
                a->path, nr - 1, nr - 1 == 1 ? "" : "s",
                nr - 1 == 1 ? "was" : "were");
        }
        bulkupsert_status_clear(&st);
        return CLI_EXIT_FAIL;
    }
    printf("%s\n", reply->job_id != NULL ? reply->job_id : "");
    fflush(stdout);
    if (reply->duplicate) {
        fprintf(stderr,
            "rpc-cli: request %d: idempotency key %s matched an earlier "
            "job; its id is printed and nothing new was queued\n",
            nr, req->idempotency_key);
    }
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    bulkupsert_status_clear(&st);
    return CLI_EXIT_OK;
}

// Reads the next chunk. Returns an exit code; *chunkp is NULL at the end.
static int
submit_read(struct records *rec, size_t batch, struct records_chunk **chunkp)
{
    int rv = records_next(rec, batch, chunkp);
    if (rv == BU_OK) {
        return CLI_EXIT_OK;
    }
    cli_error("%s", records_error(rec));
    return rv == BU_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
}

int
cmd_submit(int argc, char *argv[], const struct cli_conn *conn)
{
    struct submit_args a
        = { .conn = *conn, .batch = RECORDS_MAX_PER_REQUEST, .retries = 3 };
    struct records       *rec = NULL;
    struct records_chunk *cur = NULL;
    struct records_chunk *next = NULL;
    bulkupsert_client    *client = NULL;
    char                  err[512];

    int rv = submit_parse(argc, argv, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if (records_open(&rec, a.path, a.format, err, sizeof(err)) != BU_OK) {
        cli_error("%s", err);
        return CLI_EXIT_USAGE;
    }
    if ((rv = submit_read(rec, a.batch, &cur)) != CLI_EXIT_OK) {
        goto out;
    }
    if (cur == NULL) {
        cli_error("%s: no records to submit",
            strcmp(a.path, "-") == 0 ? "stdin" : a.path);
        rv = CLI_EXIT_USAGE;
        goto out;
    }
    if ((rv = cli_client_open(&a.conn, "submit", &client)) != CLI_EXIT_OK) {
        goto out;
    }
    int several = 0;
    for (int nr = 1; cur != NULL; nr++) {
        // Read ahead: bad input further on stops us before this request.
        if ((rv = submit_read(rec, a.batch, &next)) != CLI_EXIT_OK) {
            goto out;
        }
        several = several || next != NULL;
        if ((rv = submit_chunk(client, &a, cur, nr, several)) != CLI_EXIT_OK) {
            goto out;
        }
        records_chunk_free(cur);
        cur = next;
        next = NULL;
    }
    rv = CLI_EXIT_OK;

out:
    records_chunk_free(next);
    records_chunk_free(cur);
    bulkupsert_client_close(client);
    records_close(rec);
    return rv;
}
