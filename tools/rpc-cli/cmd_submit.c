// SPDX-License-Identifier: MIT
/*
 * `rpc-cli submit FILE`: streams CSV or NDJSON records into
 * SubmitBulkUpsert requests of at most --batch records and prints one job id
 * a line, or with --json one JSON object a line. The sender (sender.c,
 * shared with `import`) stays one request ahead, so bad input in request
 * N+1 stops the command before request N goes out, and it is known before
 * the first request whether there will be several (which decides the
 * idempotency keys: K for one request, K-1, K-2, ... for several). A busy
 * server (429) is retried by the client library's retry policy; nothing
 * else is, because a resent submit could queue a second job.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"
#include "records.h"
#include "sender.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
static const char submit_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] submit FILE [OPTIONS]\n"
    "\n"
    "Submits the records in FILE (\"-\" reads standard input) as bulk upsert\n"
    "jobs and prints each job id on its own line. FILE is CSV with a header\n"
    "row naming the columns, or NDJSON with one JSON object per line. The\n"
    "records go in requests of at most 1000; each request becomes one job.\n"
    "For large files, 'rpc-cli import' adds progress, waiting, an error\n"
    "report and resuming.\n"
    "\n"
    "Options:\n"
    SEND_HELP
    "  --idempotency-key K   a retry with the same K returns the first job\n"
    "                        instead of queueing another; with several\n"
    "                        requests, request N uses K-N (K: at most 100\n"
    "                        bytes)\n"
    "  --retries N           resend a request refused as busy (429) or\n"
    "                        unavailable (503, or never sent) up to N times,\n"
    "                        with backoff and never before the wait the\n"
    "                        server asks for; N is 0 to 100 (default 3)\n"
    "  --json                print one JSON object a line per accepted\n"
    "                        request: request, job_id, records, first_line,\n"
    "                        last_line, duplicate\n"
    CLI_CONN_HELP
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
    "  printf 'contact_key,email\\nc1,a@example.com\\n' | rpc-cli submit -\n"
    "  rpc-cli submit contacts.csv --json | jq -r .job_id\n";
// clang-format on

// The longest --idempotency-key: the server takes 128 characters, and
// request N of several sends K-N, so 100 leaves room for any N.
#define SUBMIT_IDEM_MAX 100

enum submit_opt {
    SUBMIT_OPT_IDEM = SEND_OPT_FIRST_LOCAL,
    SUBMIT_OPT_JSON,
};

struct submit_args {
    struct cli_conn  conn;
    struct send_opts send;
    const char      *path;
    const char      *idempotency_key;
    int              json;
};

// Parses the command line into a. Returns CLI_EXIT_OK, an exit code after
// a usage error, or -1 when help was printed.
static int
submit_parse(int argc, char *argv[], struct submit_args *a)
{
    static const struct option longopts[] = {
        SEND_LONGOPTS,
        { "idempotency-key", required_argument, NULL, SUBMIT_OPT_IDEM },
        { "json", no_argument, NULL, SUBMIT_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    int c;
    int rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(submit_usage, stdout);
            return -1;
        case SEND_OPT_FORMAT:
        case SEND_OPT_BATCH:
        case SEND_OPT_NO_FAIL:
        case SEND_OPT_NO_INSERT:
        case SEND_OPT_RETRIES:
            if ((rv = send_option(&a->send, c, optarg, "submit")) != 0) {
                return rv;
            }
            break;
        case SUBMIT_OPT_IDEM:
            if (optarg[0] == '\0') {
                return cli_usage_error("submit", "--idempotency-key is empty");
            }
            if (strlen(optarg) > SUBMIT_IDEM_MAX) {
                return cli_usage_error("submit",
                    "--idempotency-key is %zu bytes long; at most %d (the "
                    "server takes 128 characters, and request N of several "
                    "adds \"-N\")",
                    strlen(optarg), SUBMIT_IDEM_MAX);
            }
            a->idempotency_key = optarg;
            break;
        case SUBMIT_OPT_JSON:
            a->json = 1;
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
    if ((rv = cli_operands(
             "submit", argc, argv, optind, 1, "FILE (use - for stdin)"))
        != CLI_EXIT_OK) {
        return rv;
    }
    a->path = argv[optind];
    return CLI_EXIT_OK;
}

// Prints an accepted request: its job id, or with --json one object.
// Returns an exit code.
static int
submit_print(const struct submit_args *a, long nr,
    const struct records_chunk                     *chunk,
    const Bulkupsert__V1__SubmitBulkUpsertResponse *reply)
{
    const char *id = reply->job_id != NULL ? reply->job_id : "";

    if (!a->json) {
        printf("%s\n", cli_text(id));
    } else {
        json_t *obj = json_object();
        int     bad = obj == NULL;
        bad |= json_object_set_new(obj, "request", json_integer(nr));
        bad |= json_object_set_new(obj, "job_id", json_string(id));
        bad |= json_object_set_new(
            obj, "records", json_integer((json_int_t) chunk->nrecords));
        bad |= json_object_set_new(
            obj, "first_line", json_integer(chunk->lines[0]));
        bad |= json_object_set_new(
            obj, "last_line", json_integer(chunk->lines[chunk->nrecords - 1]));
        bad |= json_object_set_new(
            obj, "duplicate", json_boolean(reply->duplicate));
        int rv = bad ? CLI_EXIT_FAIL : cli_print_json("submit", obj);
        json_decref(obj);
        if (bad) {
            cli_error("submit: out of memory");
        }
        if (rv != CLI_EXIT_OK) {
            return rv;
        }
    }
    // One line as soon as the job is accepted: a reader of a pipe sees it.
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

// Sends one chunk (request number nr) and prints its job. Returns an exit
// code.
static int
submit_chunk(bulkupsert_client *client, const struct submit_args *a,
    struct records_chunk *chunk, const char *path, long nr, int several)
{
    Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;
    struct bulkupsert_status                  st;
    char                                      key[512];
    const char                               *idem = NULL;

    if (a->idempotency_key != NULL) {
        if (several) {
            snprintf(key, sizeof(key), "%s-%ld", a->idempotency_key, nr);
        } else {
            snprintf(key, sizeof(key), "%s", a->idempotency_key);
        }
        idem = key;
    }
    if (send_chunk(client, &a->send, chunk, idem, NULL, &reply, &st)
        != BULKUPSERT_OK) {
        send_report(&st, st.maybe_applied, chunk, path, nr, several);
        bulkupsert_status_clear(&st);
        return CLI_EXIT_FAIL;
    }
    if (st.attempts > 1) {
        fprintf(stderr,
            "rpc-cli: request %ld: accepted at attempt %u (the server was "
            "busy)\n",
            nr, st.attempts);
    }
    int rv = submit_print(a, nr, chunk, reply);
    if (reply->duplicate) {
        fprintf(stderr,
            "rpc-cli: request %ld: idempotency key %s matched an earlier "
            "job; its id is printed and nothing new was queued\n",
            nr, cli_text(idem));
    }
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(reply, NULL);
    bulkupsert_status_clear(&st);
    return rv;
}

int
cmd_submit(int argc, char *argv[], const struct cli_conn *conn)
{
    struct submit_args    a = { .conn = *conn };
    struct sender        *snd = NULL;
    struct records_chunk *chunk = NULL;
    bulkupsert_client    *client = NULL;
    int                   last = 0;

    send_opts_init(&a.send, 3);
    int rv = submit_parse(argc, argv, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = sender_open(&snd, a.path, &a.send, 1, "submit"))
        != CLI_EXIT_OK) {
        return rv;
    }
    if ((rv = send_client_open(&a.conn, &a.send, "submit", &client))
        != CLI_EXIT_OK) {
        goto out;
    }
    int several = 0;
    for (long nr = 1;; nr++) {
        // Read ahead: bad input further on stops us before this request.
        if ((rv = sender_next(snd, &chunk, &last)) != CLI_EXIT_OK) {
            goto out;
        }
        if (chunk == NULL) {
            break;
        }
        several = several || !last;
        rv = submit_chunk(client, &a, chunk, sender_path(snd), nr, several);
        if (rv != CLI_EXIT_OK) {
            goto out;
        }
    }
    rv = CLI_EXIT_OK;

out:
    bulkupsert_client_close(client);
    sender_close(snd);
    return rv;
}
