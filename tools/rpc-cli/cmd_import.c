// SPDX-License-Identifier: MIT
/*
 * `rpc-cli import FILE`: sends a CSV or NDJSON file of any size as bulk
 * upsert requests of at most --batch records, through the sender that
 * `submit` uses (memory holds two chunks, never the file), with progress
 * on standard error, and optionally waits for every job (--wait), writes
 * every record that did not land to a CSV file (--errors), and keeps a
 * state file that lets an interrupted import continue (--resume).
 *
 * Request N carries the idempotency key "<import id>-<N>". With a state
 * file the import id survives a crash, so a request sent again after a
 * lost answer gets its first job back (duplicate) and no job is queued
 * twice. The state file is written before the first request, then after
 * every answer while there are few (256), then after an answer when the
 * last save is a second old, and always when the command stops. It is
 * locked (STATE.lock) for the whole run.
 *
 * Checked before the first request, so that no job is queued by a run
 * that would fail later: the state file's lock, that --errors FILE.tmp
 * can be created, and with --wait that the token may read jobs.
 *
 * A request whose records the server rejects (400 ValidationFails: with
 * the default fail_on_error, one invalid record rejects its request) does
 * not stop the import: its errors are reported, the next request goes, and
 * the exit code is 3. Anything else the server refuses stops the import
 * (exit 1), as does bad input (exit 2), after saving the state.
 *
 * Jobs are read back with GetJob in input order: a tenant's jobs apply in
 * acceptance order, so the first job not yet finished is the only one
 * worth asking about. Per-record errors are read (errors_only, 1000 a
 * page) only for jobs whose counts say they have some, and mapped back to
 * input lines through a per-request line map: the first line, plus an
 * offset table only when the records of a request are not on consecutive
 * lines.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"
#include "import_state.h"
#include "progress.h"
#include "records.h"
#include "sender.h"

#include <jansson.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// clang-format off
static const char import_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] import FILE [OPTIONS]\n"
    "\n"
    "Imports the records in FILE (\"-\" reads standard input), of any size:\n"
    "CSV with a header row (RFC 4180 quoting), or NDJSON with one JSON\n"
    "object per line. Records go in requests of at most 1000, one job\n"
    "each, streamed: memory holds two requests, never the file. Progress\n"
    "goes to standard error: a bar on a terminal, otherwise a line every\n"
    "few seconds and one at the end of each phase:\n"
    "  import: sent 5000/~20000 records in 5 jobs, 3 done, 2400 rec/s, eta 6s\n"
    "(\"~\": estimated from the bytes read; stdin has no total). At the end\n"
    "a summary goes to standard output.\n"
    "\n"
    "A request the server rejects for invalid records (with the default\n"
    "fail_on_error, one invalid record rejects its whole request) is\n"
    "reported and the import goes on. Any other refusal stops it (exit 1).\n"
    "Bad input (a CSV row with the wrong number of fields, a line that is\n"
    "not a JSON object) stops it with exit code 2, naming the line; every\n"
    "request before the one holding the bad line was sent.\n"
    "\n"
    "Options:\n"
    SEND_HELP
    "  --retries N           resend a request refused as busy (429) or\n"
    "                        unavailable (503, or never sent) up to N times,\n"
    "                        with backoff and never before the wait the\n"
    "                        server asks for, and one that got no answer\n"
    "                        (none in time, or the connection broke after it\n"
    "                        was sent) up to N times (its idempotency key\n"
    "                        makes that safe); N is 0 to 100 (default 10)\n"
    "  --wait                wait until every job has finished (GetJob,\n"
    "                        needs DataSpace.Read) and add the outcome\n"
    "                        counts to the summary\n"
    "  --errors FILE         write every record that did not land to FILE as\n"
    "                        CSV: line,contact_key,column,reason,job_id (a\n"
    "                        record FAILED or NOT_FOUND, every record of a\n"
    "                        rejected request, a FAILED or CANCELLED job);\n"
    "                        implies --wait. Not FILE or STATE\n"
    "  --resume STATE        keep the import's progress in the file STATE\n"
    "                        (JSON); when STATE exists, continue that import:\n"
    "                        requests already answered are skipped, never sent\n"
    "                        twice. FILE must be the same, unchanged, regular\n"
    "                        file, with the same --format, --batch,\n"
    "                        --no-fail-on-error and --no-insert. Not FILE\n"
    "  --progress MODE       auto (a bar when standard error is a terminal,\n"
    "                        else lines), bar, lines or none (default auto)\n"
    "  --json                print the summary as one JSON object: import_id,\n"
    "                        input, state_file, requests, requests_skipped,\n"
    "                        records, jobs (ids), rejected_requests, retries,\n"
    "                        duplicates, and with --wait summary and\n"
    "                        errors_file, error_rows\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Exit codes: 0 every request was accepted (with --wait: every record\n"
    "landed: inserted, updated, unchanged or superseded); 1 the server\n"
    "refused a request or a call, or could not be reached, or a local write\n"
    "failed; 2 usage error or bad input; 3 done, but some records did not\n"
    "land (a rejected request; with --wait also records FAILED or NOT_FOUND,\n"
    "jobs FAILED or CANCELLED); 129 (SIGHUP), 130 (SIGINT) or 143 (SIGTERM)\n"
    "interrupted, after saving the state. Press Ctrl-C twice to stop at\n"
    "once.\n"
    "\n"
    "Examples:\n"
    "  rpc-cli import contacts.csv --wait --errors failed.csv\n"
    "  rpc-cli import big.ndjson --resume big.state --no-fail-on-error\n"
    "  # interrupted? run the same command again to continue\n"
    "  rpc-cli import big.ndjson --resume big.state --no-fail-on-error\n";
// clang-format on

enum import_opt {
    IMPORT_OPT_WAIT = SEND_OPT_FIRST_LOCAL,
    IMPORT_OPT_ERRORS,
    IMPORT_OPT_RESUME,
    IMPORT_OPT_PROGRESS,
    IMPORT_OPT_JSON,
};

// Most per-record results one GetJob call may return.
#define IMPORT_PAGE_MAX 1000
// Save the state after every answer up to this many requests.
#define IMPORT_SAVE_EVERY_UPTO 256
#define IMPORT_SAVE_MS         1000
// How often jobs are read while sending, and the longest wait between
// reads while waiting.
#define IMPORT_POLL_SEND_MS 1000
#define IMPORT_POLL_MIN_MS  100
#define IMPORT_POLL_MAX_MS  1000

struct import_args {
    struct cli_conn    conn;
    struct send_opts   send;
    const char        *path;
    int                wait;
    const char        *errors;
    const char        *resume;
    enum progress_mode progress;
    int                json;
};

// What the command knows of one request (index nr - 1).
struct import_req {
    uint32_t  nrecords;
    long      first_line;
    uint32_t *offsets;  // line - first_line of each record; NULL when
                        // the records are on consecutive lines
    int      rejected;  // 1 by the server in this run, 2 in an earlier run
    int      final;     // the job finished (state and counts below)
    int      state;     // Bulkupsert__V1__JobState
    uint32_t counts[7]; // total, inserted, updated, unchanged, superseded,
                        // not_found, failed
    char *error;        // why the job FAILED, when it did
};

enum {
    IMPORT_C_TOTAL,
    IMPORT_C_INSERTED,
    IMPORT_C_UPDATED,
    IMPORT_C_UNCHANGED,
    IMPORT_C_SUPERSEDED,
    IMPORT_C_NOT_FOUND,
    IMPORT_C_FAILED,
};

static const char *const import_count_names[7] = { "total", "inserted",
    "updated", "unchanged", "superseded", "not_found", "failed" };

struct import {
    struct import_args  a;
    struct import_state st;   // the job ids; saved to a.resume
    struct import_req  *reqs; // aligned with st.job_ids
    size_t              cap;
    size_t              skipped; // requests answered in an earlier run
    size_t              njobs;   // requests accepted (st minus rejected)
    size_t              nfinal;  // of those, finished
    size_t              scan;    // reqs[0..scan) are rejected or final
    uint64_t            records; // records of the requests so far
    unsigned            retries; // resends made by the client
    size_t              duplicates;
    int                 poll_off;       // stop reading jobs while sending
    int64_t             poll_ms;        // last read of jobs
    char                wait_note[256]; // the note last shown, "" for none
    int64_t             save_ms;        // last save
    size_t              saved;          // requests in the last save
    FILE               *rejects;        // rows of this run's rejections
    FILE               *errors_fp;  // --errors FILE.tmp, open from the start
    char               *errors_tmp; // its name (malloc'd)
    int                 lock_fd;    // the flock of --resume STATE, or -1
    size_t              error_rows;
    bulkupsert_client  *client;
    struct sender      *snd;
    struct progress     prog;
    long long           size; // input size, -1 when unknown
};

// Set by SIGINT, SIGTERM or SIGHUP: stop after the request in flight.
static volatile sig_atomic_t import_signal;

static void
import_on_signal(int sig)
{
    if (import_signal != 0) {
        // A second signal, of any of the three: stop at once, by the
        // default action (blocked until the handler returns).
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    import_signal = sig;
}

// The exit code of a stop by the signal that arrived, or 0 when none did.
static int
import_stopped(void)
{
    return import_signal != 0 ? CLI_EXIT_SIGNAL_BASE + import_signal : 0;
}

// The plural ending of a count.
static const char *
import_s(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static void
import_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL); // a signal ends it early, which is what we want
}

// Reads a test hook: a positive number in environment variable name, or 0.
static long
import_hook(const char *name)
{
    long n;
    return cli_parse_long(getenv(name), 1, 1L << 30, &n) == 0 ? n : 0;
}

// Returns the name path leads to through symbolic links that lead nowhere
// yet (writing through one creates its target), path itself when it is
// no link (free it); NULL when out of memory, unreadable, or looping.
static char *
import_follow_links(const char *path)
{
    char *cur = strdup(path);
    for (int hops = 0; cur != NULL; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) {
            return cur;
        }
        char    target[4096];
        ssize_t n = readlink(cur, target, sizeof(target) - 1);
        char   *next = NULL;
        if (n > 0 && hops < 40) {
            target[n] = '\0';
            // A relative target is relative to the link's folder.
            char  *dcopy = strdup(cur);
            char  *dir = dcopy != NULL ? dirname(dcopy) : NULL;
            size_t len = (dir != NULL ? strlen(dir) : 0) + (size_t) n + 2;
            if (dir != NULL && (next = malloc(len)) != NULL) {
                snprintf(
                    next, len, "%s/%s", target[0] == '/' ? "" : dir, target);
            }
            free(dcopy);
        }
        free(cur);
        cur = next;
    }
    return NULL;
}

// Returns where path, a file that does not exist yet, would be created:
// the realpath of its folder, "/" and its base name (free it), after any
// links that lead nowhere yet; NULL when the folder cannot be resolved or
// out of memory.
static char *
import_future_path(const char *given)
{
    char *path = import_follow_links(given);
    if (path == NULL) {
        return NULL;
    }
    char *dcopy = strdup(path);
    char *bcopy = strdup(path);
    char *dir = NULL;
    char *out = NULL;

    // dirname and basename may modify their argument; each gets a copy.
    if (dcopy != NULL && bcopy != NULL
        && (dir = realpath(dirname(dcopy), NULL)) != NULL) {
        const char *base = basename(bcopy);
        size_t      n = strlen(dir) + strlen(base) + 2;
        if ((out = malloc(n)) != NULL) {
            snprintf(out, n, "%s/%s", dir, base);
        }
    }
    free(dir);
    free(dcopy);
    free(bcopy);
    free(path);
    return out;
}

// Whether paths a and b name the same file: the same device and inode
// when both exist; neither when only one exists; when neither does, the
// same base name in the same folder (by realpath, so that "st.json",
// "./st.json", "$PWD/st.json" and a link to it agree), or, when a folder
// cannot be resolved (nothing can be created there), the same string.
static int
import_same_file(const char *a, const char *b)
{
    struct stat sa;
    struct stat sb;
    int         has_a = stat(a, &sa) == 0;
    int         has_b = stat(b, &sb) == 0;

    if (has_a && has_b) {
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    }
    if (has_a || has_b) {
        return 0;
    }
    char *fa = import_future_path(a);
    char *fb = import_future_path(b);
    int   same
        = fa != NULL && fb != NULL ? strcmp(fa, fb) == 0 : strcmp(a, b) == 0;
    free(fa);
    free(fb);
    return same;
}

// Refuses --errors and --resume files that are the input file or each
// other: the file written last would replace the other. Returns
// CLI_EXIT_OK, or CLI_EXIT_USAGE after saying which two options collide.
static int
import_check_paths(const struct import_args *a)
{
    int input = strcmp(a->path, "-") != 0;

    if (a->errors != NULL && input && import_same_file(a->errors, a->path)) {
        return cli_usage_error("import",
            "--errors '%s' is the input FILE; the errors file would replace "
            "it",
            a->errors);
    }
    if (a->errors != NULL && a->resume != NULL
        && import_same_file(a->errors, a->resume)) {
        return cli_usage_error("import",
            "--errors '%s' is the --resume state file; the errors file "
            "would replace it",
            a->errors);
    }
    if (a->resume != NULL && input && import_same_file(a->resume, a->path)) {
        return cli_usage_error("import",
            "--resume '%s' is the input FILE; the state file would replace "
            "it",
            a->resume);
    }
    return CLI_EXIT_OK;
}

// Parses the command line into a. Returns CLI_EXIT_OK, an exit code after
// a usage error, or -1 when help was printed.
static int
import_parse(int argc, char *argv[], struct import_args *a)
{
    static const struct option longopts[] = {
        SEND_LONGOPTS,
        { "wait", no_argument, NULL, IMPORT_OPT_WAIT },
        { "errors", required_argument, NULL, IMPORT_OPT_ERRORS },
        { "resume", required_argument, NULL, IMPORT_OPT_RESUME },
        { "progress", required_argument, NULL, IMPORT_OPT_PROGRESS },
        { "json", no_argument, NULL, IMPORT_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    int auto_progress = 1;
    int c;
    int rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(import_usage, stdout);
            return -1;
        case SEND_OPT_FORMAT:
        case SEND_OPT_BATCH:
        case SEND_OPT_NO_FAIL:
        case SEND_OPT_NO_INSERT:
        case SEND_OPT_RETRIES:
            if ((rv = send_option(&a->send, c, optarg, "import")) != 0) {
                return rv;
            }
            break;
        case IMPORT_OPT_WAIT:
            a->wait = 1;
            break;
        case IMPORT_OPT_ERRORS:
            if (optarg[0] == '\0') {
                return cli_usage_error("import", "--errors is empty");
            }
            a->errors = optarg;
            a->wait = 1;
            break;
        case IMPORT_OPT_RESUME:
            if (optarg[0] == '\0') {
                return cli_usage_error("import", "--resume is empty");
            }
            a->resume = optarg;
            break;
        case IMPORT_OPT_PROGRESS:
            auto_progress = 0;
            if (strcmp(optarg, "auto") == 0) {
                auto_progress = 1;
            } else if (strcmp(optarg, "bar") == 0) {
                a->progress = PROGRESS_BAR;
            } else if (strcmp(optarg, "lines") == 0) {
                a->progress = PROGRESS_LINES;
            } else if (strcmp(optarg, "none") == 0) {
                a->progress = PROGRESS_NONE;
            } else {
                return cli_usage_error("import",
                    "--progress '%s' is not auto, bar, lines or none", optarg);
            }
            break;
        case IMPORT_OPT_JSON:
            a->json = 1;
            break;
        case CLI_OPT_URL:
        case CLI_OPT_TOKEN:
        case CLI_OPT_TIMEOUT:
            if ((rv = cli_conn_option(&a->conn, c, optarg, "import")) != 0) {
                return rv;
            }
            break;
        default:
            return cli_getopt_error("import", c, argv, optind);
        }
    }
    if ((rv = cli_operands(
             "import", argc, argv, optind, 1, "FILE (use - for stdin)"))
        != CLI_EXIT_OK) {
        return rv;
    }
    a->path = argv[optind];
    if (a->resume != NULL && strcmp(a->path, "-") == 0) {
        return cli_usage_error("import",
            "--resume needs a file: standard input cannot be read again");
    }
    if ((rv = import_check_paths(a)) != CLI_EXIT_OK) {
        return rv;
    }
    if (auto_progress) {
        a->progress = cli_stderr_terminal() ? PROGRESS_BAR : PROGRESS_LINES;
    }
    return CLI_EXIT_OK;
}

// ---------------------------------------------------------------------------
// Requests and their line maps

static long
import_line_of(const struct import_req *r, uint32_t index)
{
    if (index >= r->nrecords) {
        return r->first_line;
    }
    return r->first_line
        + (long) (r->offsets != NULL ? r->offsets[index] : index);
}

static long
import_last_line(const struct import_req *r)
{
    return import_line_of(r, r->nrecords - 1);
}

// Makes reqs[i] the line map of chunk (request i + 1). Returns 0, or -1
// when out of memory.
static int
import_req_add(struct import *imp, size_t i, const struct records_chunk *chunk)
{
    if (i >= imp->cap) {
        size_t cap = imp->cap ? imp->cap * 2 : 64;
        while (cap <= i) {
            cap *= 2;
        }
        struct import_req *p = realloc(imp->reqs, cap * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        // Zeroed, so that import_reqs_free may look at every slot.
        memset(p + imp->cap, 0, (cap - imp->cap) * sizeof(*p));
        imp->reqs = p;
        imp->cap = cap;
    }
    struct import_req *r = &imp->reqs[i];
    free(r->offsets);
    memset(r, 0, sizeof(*r));
    r->nrecords = (uint32_t) chunk->nrecords;
    r->first_line = chunk->lines[0];
    int consecutive = 1;
    for (size_t k = 0; k < chunk->nrecords && consecutive; k++) {
        consecutive = chunk->lines[k] == r->first_line + (long) k;
    }
    if (!consecutive) {
        if ((r->offsets = calloc(chunk->nrecords, sizeof(*r->offsets)))
            == NULL) {
            return -1;
        }
        for (size_t k = 0; k < chunk->nrecords; k++) {
            r->offsets[k] = (uint32_t) (chunk->lines[k] - r->first_line);
        }
    }
    return 0;
}

static void
import_reqs_free(struct import *imp)
{
    for (size_t i = 0; i < imp->cap; i++) {
        free(imp->reqs[i].offsets);
        free(imp->reqs[i].error);
    }
    free(imp->reqs);
}

// ---------------------------------------------------------------------------
// State

// Saves the state when it is due (or when force says now). Returns an
// exit code.
static int
import_save(struct import *imp, int force)
{
    char    err[600];
    int64_t now = progress_now_ms();

    if (imp->a.resume == NULL) {
        return CLI_EXIT_OK;
    }
    if (!force
        && (imp->st.nrequests == imp->saved
            || (imp->st.nrequests > IMPORT_SAVE_EVERY_UPTO
                && now - imp->save_ms < IMPORT_SAVE_MS))) {
        return CLI_EXIT_OK;
    }
    if (import_state_save(&imp->st, imp->a.resume, err, sizeof(err)) != 0) {
        progress_clear(&imp->prog);
        cli_error("import: cannot save the state: %s", err);
        return CLI_EXIT_FAIL;
    }
    imp->save_ms = now;
    imp->saved = imp->st.nrequests;
    return CLI_EXIT_OK;
}

// Loads the state file of --resume, or starts a new one. Returns an exit
// code.
static int
import_state_open(struct import *imp)
{
    struct import_ident     now = { 0 };
    char                    err[600];
    const struct send_opts *o = &imp->a.send;

    if (imp->a.resume == NULL) {
        import_state_init(&imp->st, NULL, o->format, o->batch,
            !o->no_fail_on_error, !o->no_insert);
        return CLI_EXIT_OK;
    }
    int rv = import_state_lock(imp->a.resume, &imp->lock_fd, err, sizeof(err));
    if (rv != 0) {
        if (rv > 0) {
            cli_error("import: %s is in use by another import (%s is "
                      "locked); nothing was sent",
                imp->a.resume, err);
        } else {
            cli_error("import: cannot lock the state file: %s", err);
        }
        return CLI_EXIT_USAGE;
    }
    if (import_ident_of(imp->a.path, &now, err, sizeof(err)) != 0) {
        cli_error("import: %s", err);
        return CLI_EXIT_USAGE;
    }
    rv = import_state_load(&imp->st, imp->a.resume, err, sizeof(err));
    if (rv < 0) {
        free(now.path);
        cli_error("import: %s", err);
        return CLI_EXIT_USAGE;
    }
    if (rv > 0) {
        import_state_init(&imp->st, &now, o->format, o->batch,
            !o->no_fail_on_error, !o->no_insert);
        return import_save(imp, 1);
    }
    rv = import_ident_compare(&imp->st.input, &now, err, sizeof(err));
    free(now.path);
    if (rv != 0) {
        cli_error("import: cannot resume from %s: %s. A changed file cannot "
                  "be resumed: import it with a new state file (records "
                  "already applied come out UNCHANGED), or import only the "
                  "lines not sent yet",
            imp->a.resume, err);
        return CLI_EXIT_USAGE;
    }
    const struct import_state *st = &imp->st;
    if (st->format != o->format || st->batch != o->batch
        || st->fail_on_error != !o->no_fail_on_error
        || st->insert_if_not_exists != !o->no_insert) {
        cli_error("import: cannot resume from %s: the import began with "
                  "--format %s --batch %zu%s%s; resume it with the same "
                  "options",
            imp->a.resume, st->format == RECORDS_CSV ? "csv" : "ndjson",
            st->batch, st->fail_on_error ? "" : " --no-fail-on-error",
            st->insert_if_not_exists ? "" : " --no-insert");
        return CLI_EXIT_USAGE;
    }
    imp->saved = st->nrequests;
    return CLI_EXIT_OK;
}

// ---------------------------------------------------------------------------
// Reading jobs

static int
import_state_final(int state)
{
    return state >= BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED;
}

// Shows, once, why the first unfinished job waits, when the server says
// (its error while unfinished: storage trouble the server keeps trying).
static void
import_show_note(struct import *imp, const char *job_id, const char *note)
{
    if (note == NULL || note[0] == '\0') {
        imp->wait_note[0] = '\0';
        return;
    }
    if (strcmp(note, imp->wait_note) != 0) {
        snprintf(imp->wait_note, sizeof(imp->wait_note), "%s", note);
        progress_clear(&imp->prog);
        cli_error("import: job %s: %s", job_id, note);
    }
}

// Reads the jobs in input order until one has not finished. Returns the
// status code of the failed call (st filled; clear it) or BULKUPSERT_OK.
static int
import_poll(struct import *imp, struct bulkupsert_status *st)
{
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;

    memset(st, 0, sizeof(*st));
    imp->poll_ms = progress_now_ms();
    while (imp->scan < imp->st.nrequests) {
        struct import_req *r = &imp->reqs[imp->scan];
        if (r->rejected || r->final) {
            imp->scan++;
            continue;
        }
        Bulkupsert__V1__Job *job = NULL;
        req.job_id = imp->st.job_ids[imp->scan];
        int code = bulkupsert_get_job(imp->client, &req, &job, st);
        if (code != BULKUPSERT_OK) {
            return code;
        }
        bulkupsert_status_clear(st);
        if (!import_state_final(job->state)) {
            import_show_note(imp, req.job_id, job->error);
            bulkupsert__v1__job__free_unpacked(job, NULL);
            return BULKUPSERT_OK;
        }
        r->final = 1;
        r->state = job->state;
        if (job->counts != NULL) {
            const Bulkupsert__V1__JobCounts *c = job->counts;
            const uint32_t v[7] = { c->total, c->inserted, c->updated,
                c->unchanged, c->superseded, c->not_found, c->failed };
            memcpy(r->counts, v, sizeof(v));
        }
        if (job->error != NULL && job->error[0] != '\0') {
            r->error = strdup(job->error); // NULL when OOM: no message
        }
        bulkupsert__v1__job__free_unpacked(job, NULL);
        imp->nfinal++;
        imp->scan++;
    }
    return BULKUPSERT_OK;
}

static void
import_stats(const struct import *imp, int input_done, int waiting,
    struct progress_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->records = imp->records;
    s->input_done = input_done;
    s->jobs = imp->njobs;
    s->jobs_done = imp->nfinal;
    s->done_known = !imp->poll_off;
    s->offset
        = input_done && imp->size > 0 ? imp->size : sender_offset(imp->snd);
    s->waiting = waiting;
}

// Waits until every job has finished. Returns an exit code.
static int
import_wait(struct import *imp)
{
    struct bulkupsert_status st;
    struct progress_stats    ps;
    int                      interval = IMPORT_POLL_MIN_MS;

    imp->poll_off = 0;
    for (;;) {
        size_t before = imp->nfinal;
        int    code = import_poll(imp, &st);
        if (code != BULKUPSERT_OK) {
            progress_clear(&imp->prog);
            cli_print_status(&st, NULL, 0);
            if (imp->a.resume != NULL) {
                cli_error("import: reading job %s failed; the jobs go on. "
                          "Run the same command again to wait for them",
                    imp->st.job_ids[imp->scan]);
            } else {
                cli_error("import: reading job %s failed; the jobs go on "
                          "(import id %s). Follow one with 'rpc-cli job "
                          "watch JOB_ID', list them with 'rpc-cli job list'",
                    imp->st.job_ids[imp->scan], imp->st.import_id);
            }
            bulkupsert_status_clear(&st);
            return CLI_EXIT_FAIL;
        }
        int all = imp->scan == imp->st.nrequests;
        import_stats(imp, 1, 1, &ps);
        progress_update(&imp->prog, &ps, all);
        if (all) {
            return CLI_EXIT_OK;
        }
        if (import_stopped()) {
            return import_stopped();
        }
        interval = imp->nfinal > before         ? IMPORT_POLL_MIN_MS
            : interval * 2 > IMPORT_POLL_MAX_MS ? IMPORT_POLL_MAX_MS
                                                : interval * 2;
        import_sleep_ms(interval);
    }
}

// ---------------------------------------------------------------------------
// The errors file

// Writes s as one CSV field (RFC 4180: quoted when it holds a comma, a
// quote or a line break; quotes doubled).
static void
import_csv_field(FILE *fp, const char *s)
{
    if (s == NULL) {
        return;
    }
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s != '\0'; s++) {
        if (*s == '"') {
            fputc('"', fp);
        }
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static void
import_csv_row(FILE *fp, long line, const char *key, const char *column,
    const char *reason, const char *job_id)
{
    fprintf(fp, "%ld,", line);
    import_csv_field(fp, key);
    fputc(',', fp);
    import_csv_field(fp, column);
    fputc(',', fp);
    import_csv_field(fp, reason);
    fputc(',', fp);
    import_csv_field(fp, job_id);
    fputs("\r\n", fp);
}

// Keeps the rows of request nr's rejection for the errors file: a header
// (request number, length, rows) and the CSV text, in request order.
static int
import_keep_rejection(struct import *imp, long nr, const struct import_req *r,
    const struct bulkupsert_status *st)
{
    char  *text = NULL;
    size_t len = 0;
    char   reason[1024];
    FILE  *mem = open_memstream(&text, &len);

    if (mem == NULL) {
        return -1;
    }
    snprintf(reason, sizeof(reason),
        "request %ld (lines %ld to %ld, %" PRIu32 " records) was rejected and "
        "none of its records was applied: %s",
        nr, r->first_line, import_last_line(r), r->nrecords,
        st->message != NULL ? st->message : "");
    import_csv_row(mem, r->first_line, NULL, NULL, reason, NULL);
    uint64_t rows = 1;
    for (size_t i = 0; i < st->nerrors; i++) {
        const struct bulkupsert_field_error *fe = &st->errors[i];
        long                                 line = fe->record_index >= 0
                                            ? import_line_of(r, (uint32_t) fe->record_index)
                                            : r->first_line;
        import_csv_row(
            mem, line, fe->contact_key, fe->column, fe->reason, NULL);
        rows++;
    }
    if (fclose(mem) != 0) {
        free(text);
        return -1;
    }
    uint64_t hdr[3] = { (uint64_t) nr, (uint64_t) len, rows };
    int      bad = fwrite(hdr, sizeof(hdr), 1, imp->rejects) != 1
        || fwrite(text, 1, len, imp->rejects) != len;
    free(text);
    return bad ? -1 : 0;
}

// Copies the kept rows of request nr from the rejections file to out;
// the file is read in request order. Returns 0 or -1.
static int
import_copy_rejection(struct import *imp, long nr, FILE *out)
{
    uint64_t hdr[3];
    char     buf[4096];

    for (;;) {
        long pos = ftell(imp->rejects);
        if (fread(hdr, sizeof(hdr), 1, imp->rejects) != 1) {
            return 0; // none (left)
        }
        if (hdr[0] != (uint64_t) nr) {
            fseek(imp->rejects, pos, SEEK_SET);
            return 0;
        }
        imp->error_rows += hdr[2];
        for (uint64_t left = hdr[1]; left > 0;) {
            size_t n = left < sizeof(buf) ? (size_t) left : sizeof(buf);
            if (fread(buf, 1, n, imp->rejects) != n) {
                return -1;
            }
            if (fwrite(buf, 1, n, out) != n) {
                return -1;
            }
            left -= n;
        }
    }
}

// Writes the per-record errors of request i's job. Returns an exit code.
static int
import_job_errors(struct import *imp, size_t i, FILE *out)
{
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    struct bulkupsert_status      st;
    const struct import_req      *r = &imp->reqs[i];
    const char                   *id = imp->st.job_ids[i];
    char                         *token = NULL;
    char                          reason[1024];

    if (r->state == BULKUPSERT__V1__JOB_STATE__JOB_STATE_FAILED
        || r->state == BULKUPSERT__V1__JOB_STATE__JOB_STATE_CANCELLED) {
        snprintf(reason, sizeof(reason),
            "job %s: none of the records on lines %ld to %ld was applied%s%s",
            bulkupsert_job_state_name(r->state), r->first_line,
            import_last_line(r), r->error != NULL ? ": " : "",
            r->error != NULL ? r->error : "");
        import_csv_row(out, r->first_line, NULL, NULL, reason, id);
        imp->error_rows++;
    }
    if (r->counts[IMPORT_C_NOT_FOUND] + r->counts[IMPORT_C_FAILED] == 0) {
        return CLI_EXIT_OK;
    }
    req.job_id = (char *) id;
    req.has_page_size = 1;
    req.page_size = IMPORT_PAGE_MAX;
    req.has_errors_only = 1;
    req.errors_only = 1;
    for (;;) {
        Bulkupsert__V1__Job *job = NULL;
        req.page_token = token;
        if (bulkupsert_get_job(imp->client, &req, &job, &st)
            != BULKUPSERT_OK) {
            cli_print_status(&st, NULL, 0);
            cli_error("import: reading the errors of job %s failed", id);
            bulkupsert_status_clear(&st);
            free(token);
            return CLI_EXIT_FAIL;
        }
        bulkupsert_status_clear(&st);
        for (size_t k = 0; k < job->n_records; k++) {
            const Bulkupsert__V1__RecordResult *rr = job->records[k];
            long line = import_line_of(r, rr->index);
            if (rr->outcome
                    == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_NOT_FOUND
                && rr->n_errors == 0) {
                import_csv_row(out, line, rr->contact_key, NULL,
                    "not found: no contact has this contact_key "
                    "(--no-insert)",
                    id);
                imp->error_rows++;
                continue;
            }
            if (rr->outcome != BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_FAILED
                && rr->outcome
                    != BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_NOT_FOUND) {
                continue; // warnings only: the record landed
            }
            if (rr->n_errors == 0) {
                import_csv_row(out, line, rr->contact_key, NULL,
                    "failed (the server gave no reason)", id);
                imp->error_rows++;
            }
            for (size_t e = 0; e < rr->n_errors; e++) {
                import_csv_row(out, line, rr->contact_key,
                    rr->errors[e]->column, rr->errors[e]->reason, id);
                imp->error_rows++;
            }
        }
        free(token);
        token = NULL;
        int last = job->next_page_token == NULL
            || job->next_page_token[0] == '\0' || job->n_records == 0;
        if (!last && (token = strdup(job->next_page_token)) == NULL) {
            bulkupsert__v1__job__free_unpacked(job, NULL);
            cli_error("import: out of memory");
            return CLI_EXIT_FAIL;
        }
        bulkupsert__v1__job__free_unpacked(job, NULL);
        if (last || import_stopped()) {
            free(token);
            return import_stopped();
        }
    }
}

// Writes the rows of request i + 1, rejected in an earlier run, from what
// the state file kept of the rejection: the message and the first
// IMPORT_REJECTION_ERRORS field errors.
static void
import_replay_rejection(struct import *imp, size_t i, FILE *out)
{
    const struct import_req       *r = &imp->reqs[i];
    const struct import_rejection *rj
        = import_state_rejection(&imp->st, (long) i + 1);
    char reason[1024];

    snprintf(reason, sizeof(reason),
        "request %zu (lines %ld to %ld, %" PRIu32 " records) was rejected in "
        "an earlier run and none of its records was applied: %s",
        i + 1, r->first_line, import_last_line(r), r->nrecords,
        rj != NULL ? rj->message : "");
    import_csv_row(out, r->first_line, NULL, NULL, reason, NULL);
    imp->error_rows++;
    if (rj == NULL) {
        return;
    }
    for (size_t k = 0; k < rj->nerrors; k++) {
        const struct import_field_error *fe = &rj->errors[k];
        long                             line = fe->record_index >= 0
                                        ? import_line_of(r, (uint32_t) fe->record_index)
                                        : r->first_line;
        import_csv_row(
            out, line, fe->contact_key, fe->column, fe->reason, NULL);
        imp->error_rows++;
    }
    if (rj->nerrors_all > rj->nerrors) {
        snprintf(reason, sizeof(reason),
            "%zu more errors of request %zu were not kept in the state file",
            rj->nerrors_all - rj->nerrors, i + 1);
        import_csv_row(out, r->first_line, NULL, NULL, reason, NULL);
        imp->error_rows++;
    }
}

// Opens FILE.tmp of --errors FILE before anything is sent, so that an
// unwritable FILE stops the import at once rather than at its end. Returns
// an exit code.
static int
import_errors_open(struct import *imp)
{
    size_t len = strlen(imp->a.errors) + sizeof(".tmp");

    if ((imp->errors_tmp = malloc(len)) == NULL) {
        cli_error("import: out of memory");
        return CLI_EXIT_FAIL;
    }
    snprintf(imp->errors_tmp, len, "%s.tmp", imp->a.errors);
    if ((imp->errors_fp = fopen(imp->errors_tmp, "w")) == NULL) {
        cli_error("import: cannot write the errors file %s (%s: %s); nothing "
                  "was sent",
            imp->a.errors, imp->errors_tmp, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

// Closes and removes FILE.tmp, when the errors file is not (or was not
// completely) written.
static void
import_errors_discard(struct import *imp)
{
    if (imp->errors_fp != NULL) {
        fclose(imp->errors_fp);
        imp->errors_fp = NULL;
        unlink(imp->errors_tmp);
    }
}

// Writes the errors file into FILE.tmp and renames it into place. Returns
// an exit code.
static int
import_write_errors(struct import *imp)
{
    FILE *out = imp->errors_fp;
    int   rv = CLI_EXIT_OK;

    if (imp->rejects != NULL) {
        rewind(imp->rejects);
    }
    fputs("line,contact_key,column,reason,job_id\r\n", out);
    imp->error_rows = 0;
    for (size_t i = 0; rv == CLI_EXIT_OK && i < imp->st.nrequests; i++) {
        const struct import_req *r = &imp->reqs[i];
        if ((rv = import_stopped()) != 0) {
            break;
        }
        if (r->rejected == 1 && imp->rejects != NULL) {
            if (import_copy_rejection(imp, (long) i + 1, out) != 0) {
                cli_error("import: reading back the rejected records: %s",
                    strerror(errno));
                rv = CLI_EXIT_FAIL;
            }
        } else if (r->rejected) {
            import_replay_rejection(imp, i, out);
        } else {
            rv = import_job_errors(imp, i, out);
        }
    }
    if (rv != CLI_EXIT_OK) {
        import_errors_discard(imp);
        return rv;
    }
    imp->errors_fp = NULL;
    int bad = ferror(out) || fflush(out) != 0 || fsync(fileno(out)) != 0;
    bad |= fclose(out) != 0;
    if (bad) {
        cli_error("import: %s: %s", imp->errors_tmp, strerror(errno));
        rv = CLI_EXIT_FAIL;
    } else if (rename(imp->errors_tmp, imp->a.errors) != 0) {
        cli_error("import: %s: %s", imp->a.errors, strerror(errno));
        rv = CLI_EXIT_FAIL;
    }
    if (rv != CLI_EXIT_OK) {
        unlink(imp->errors_tmp);
    }
    return rv;
}

// ---------------------------------------------------------------------------
// Sending

// Says how request nr, which got no answer and may have been applied, can
// be sent again safely: with --resume, by running the same command, which
// resends it with the same idempotency key.
static void
import_resend_hint(const struct import *imp, long nr)
{
    if (imp->a.resume != NULL) {
        cli_error("import: run the same command again to continue: it "
                  "sends request %ld again with its idempotency key %s-%ld, "
                  "so it cannot be queued twice (state in %s)",
            nr, imp->st.import_id, nr, imp->a.resume);
    } else {
        cli_error("import: without --resume this import cannot be continued "
                  "safely: a new run sends request %ld under a new "
                  "idempotency key (this one was %s-%ld); with --resume "
                  "STATE, running the same command again resends it safely",
            nr, imp->st.import_id, nr);
    }
}

// Handles the answer to request nr: records it, or reports it. maybe says
// that a copy of it may have been applied (an earlier one, when st is
// about a resend that was not sent). Returns an exit code; CLI_EXIT_OK
// also for a rejection, which does not stop us.
static int
import_answer(struct import *imp, long nr, const struct records_chunk *chunk,
    int code, const Bulkupsert__V1__SubmitBulkUpsertResponse *reply,
    const struct bulkupsert_status *st, int maybe)
{
    struct import_req *r = &imp->reqs[imp->st.nrequests];

    if (code == BULKUPSERT_OK) {
        if (import_state_add(
                &imp->st, reply->job_id, (uint32_t) chunk->nrecords, NULL)
            != 0) {
            cli_error("import: out of memory");
            return CLI_EXIT_FAIL;
        }
        imp->njobs++;
        if (reply->duplicate) {
            imp->duplicates++;
            progress_clear(&imp->prog);
            fprintf(stderr,
                "rpc-cli: import: request %ld had been accepted before (its "
                "answer was lost): job %s, nothing new was queued\n",
                nr, cli_text(reply->job_id));
        }
        return CLI_EXIT_OK;
    }
    progress_clear(&imp->prog);
    if (!send_is_rejection(st)) {
        send_report(st, maybe, chunk, sender_path(imp->snd), nr, 1);
        if (maybe && !st->maybe_applied) {
            // The last resend either never left (http_status 0) or was
            // answered without being processed (a 429, a 503, a 401).
            cli_error("import: an earlier copy of request %ld was sent and "
                      "got no answer; the last resend %s",
                nr,
                st->http_status == 0 ? "failed before it was sent"
                                     : "was refused, unprocessed, as above");
        }
        if (maybe) {
            import_resend_hint(imp, nr);
        }
        return CLI_EXIT_FAIL;
    }
    // The records are refused; the next request may well be accepted.
    if (imp->a.errors == NULL) {
        cli_print_status(st, chunk->lines, chunk->nrecords);
    }
    cli_error("import: request %ld (records on lines %ld to %ld) was "
              "rejected: none of its %zu records was applied%s%s; going on",
        nr, chunk->lines[0], chunk->lines[chunk->nrecords - 1],
        chunk->nrecords, imp->a.errors != NULL ? "; see " : "",
        imp->a.errors != NULL ? imp->a.errors : "");
    r->rejected = 1;
    if (imp->a.errors != NULL && import_keep_rejection(imp, nr, r, st) != 0) {
        cli_error("import: keeping the rejected records: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (import_state_add(&imp->st, NULL, (uint32_t) chunk->nrecords, st)
        != 0) {
        cli_error("import: out of memory");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

// Starts the progress display again at the end of the skip phase of a
// resumed import, so that its rate counts only what this run sends.
static void
import_progress_restart(struct import *imp)
{
    progress_init(&imp->prog, imp->prog.mode, imp->size,
        sender_offset(imp->snd), imp->records);
}

// Reads the jobs for the progress display. A failure (e.g. a token without
// DataSpace.Read) stops these reads; the display then shows "? done".
static void
import_poll_progress(struct import *imp)
{
    struct bulkupsert_status st;

    if (imp->poll_off || imp->prog.mode == PROGRESS_NONE) {
        return;
    }
    if (import_poll(imp, &st) != BULKUPSERT_OK) {
        imp->poll_off = 1;
    }
    bulkupsert_status_clear(&st);
}

// import_send_chunk sends one chunk with its idempotency key. The client
// library resends what the server refused unprocessed; this also resends a
// request that may have been applied (status->maybe_applied: it was sent
// and no answer came in time, or the connection broke before the answer),
// up to --retries times: its key makes the server answer a copy with the
// job it made for the first, so nothing is queued twice. Counts the
// resends. Sets *maybep when any copy sent may have been applied, which
// the status of a last resend that was never sent does not say.
static int
import_send_chunk(struct import *imp, struct records_chunk *chunk,
    const char *key, Bulkupsert__V1__SubmitBulkUpsertResponse **replyp,
    struct bulkupsert_status *status, int *maybep)
{
    *maybep = 0;
    for (long lost = 0;; lost++) {
        int code = send_chunk(imp->client, &imp->a.send, chunk, key,
            &import_signal, replyp, status);
        if (status->attempts > 1) {
            imp->retries += status->attempts - 1;
        }
        *maybep |= status->maybe_applied;
        if (code == BULKUPSERT_OK || !status->maybe_applied
            || lost >= imp->a.send.retries || import_stopped()) {
            return code;
        }
        imp->retries++;
        bulkupsert_status_clear(status);
    }
}

// Sends the file, skipping the requests the state says were answered.
// Returns an exit code.
static int
import_send(struct import *imp)
{
    struct records_chunk *chunk = NULL;
    struct progress_stats ps;
    char                  key[IMPORT_ID_LEN + 32];
    int                   last = 0;
    long   stop_after = import_hook("BULKUPSERT_IMPORT_STOP_AFTER");
    long   crash_after = import_hook("BULKUPSERT_IMPORT_CRASH_AFTER");
    long   sent = 0; // requests sent in this run
    size_t known = imp->st.nrequests;

    for (long nr = 1;; nr++) {
        int rv = sender_next(imp->snd, &chunk, &last);
        if (rv != CLI_EXIT_OK) {
            progress_clear(&imp->prog);
            if (imp->st.nrequests == 0) {
                cli_error("import: stopped at bad input; no request was "
                          "sent");
            } else {
                cli_error("import: stopped at bad input; the %zu request%s "
                          "before it %s answered (the state file, if any, "
                          "says so)",
                    imp->st.nrequests, import_s(imp->st.nrequests),
                    imp->st.nrequests == 1 ? "was" : "were");
            }
            return rv;
        }
        if (chunk == NULL) {
            break;
        }
        if (import_req_add(imp, (size_t) nr - 1, chunk) != 0) {
            cli_error("import: out of memory");
            return CLI_EXIT_FAIL;
        }
        if ((size_t) nr <= known) {
            // Answered in an earlier run: only its line map is needed.
            struct import_req *r = &imp->reqs[nr - 1];
            r->rejected = imp->st.job_ids[nr - 1][0] == '\0' ? 2 : 0;
            imp->njobs += !r->rejected;
            imp->records += chunk->nrecords;
            imp->skipped++;
            if (import_stopped()) {
                return import_stopped();
            }
            continue;
        }
        if (imp->st.finished) {
            cli_error("import: %s has more records than when the import "
                      "finished; it has changed",
                sender_path(imp->snd));
            return CLI_EXIT_USAGE;
        }
        if (imp->skipped > 0 && sent == 0) {
            import_progress_restart(imp);
        }
        Bulkupsert__V1__SubmitBulkUpsertResponse *reply = NULL;
        struct bulkupsert_status                  st;
        snprintf(key, sizeof(key), "%s-%ld", imp->st.import_id, nr);
        int maybe = 0;
        int code = import_send_chunk(imp, chunk, key, &reply, &st, &maybe);
        sent++;
        if (code != BULKUPSERT_OK && import_stopped()
            && (code == BULKUPSERT_CANCELLED || maybe)) {
            // Abandoned on a signal: the status says whether the request
            // may have been applied (a resumed import resends it with the
            // same key), unless an earlier copy may have been and this
            // resend never went.
            progress_clear(&imp->prog);
            if (maybe && !st.maybe_applied) {
                cli_error("import: request %ld (records on lines %ld to %ld "
                          "of %s) got no answer and may have been applied; "
                          "its resend was stopped before it got through",
                    nr, chunk->lines[0], chunk->lines[chunk->nrecords - 1],
                    sender_path(imp->snd));
            } else {
                cli_print_status(&st, NULL, 0);
            }
            bulkupsert_status_clear(&st);
            return import_stopped();
        }
        if (code == BULKUPSERT_OK && crash_after > 0 && sent >= crash_after) {
            // Test hook: die as kill -9 would, after the server accepted
            // the request and before the state records it.
            _exit(CLI_EXIT_SIGNAL_BASE + SIGKILL);
        }
        rv = import_answer(imp, nr, chunk, code, reply, &st, maybe);
        if (reply != NULL) {
            bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(
                reply, NULL);
        }
        bulkupsert_status_clear(&st);
        if (rv != CLI_EXIT_OK) {
            return rv;
        }
        imp->records += chunk->nrecords;
        if ((rv = import_save(imp, 0)) != CLI_EXIT_OK) {
            return rv;
        }
        if (progress_now_ms() - imp->poll_ms >= IMPORT_POLL_SEND_MS) {
            import_poll_progress(imp);
        }
        import_stats(imp, 0, 0, &ps);
        progress_update(&imp->prog, &ps, 0);
        if (stop_after > 0 && sent >= stop_after) {
            import_signal = SIGINT; // test hook: as if interrupted here
        }
        if (import_stopped()) {
            return import_stopped();
        }
    }
    if (imp->skipped < known) {
        cli_error("import: %s has fewer records than the state file "
                  "records as sent; it has changed",
            sender_path(imp->snd));
        return CLI_EXIT_USAGE;
    }
    imp->st.finished = 1;
    if (imp->skipped > 0 && sent == 0) {
        import_progress_restart(imp); // all skipped: nothing sent here
    }
    import_poll_progress(imp); // the last line says how many are done
    import_stats(imp, 1, 0, &ps);
    progress_update(&imp->prog, &ps, 1);
    return import_save(imp, 1);
}

// ---------------------------------------------------------------------------
// Summary

struct import_sum {
    uint64_t counts[7];
    uint64_t rejected_records;
    size_t   rejected_requests;
    size_t   jobs_failed;
    size_t   jobs_cancelled;
};

static void
import_sum(const struct import *imp, struct import_sum *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < imp->st.nrequests; i++) {
        const struct import_req *r = &imp->reqs[i];
        if (r->rejected) {
            s->rejected_requests++;
            s->rejected_records += r->nrecords;
            continue;
        }
        for (int k = 0; k < 7; k++) {
            s->counts[k] += r->counts[k];
        }
        s->jobs_failed
            += r->state == BULKUPSERT__V1__JOB_STATE__JOB_STATE_FAILED;
        s->jobs_cancelled
            += r->state == BULKUPSERT__V1__JOB_STATE__JOB_STATE_CANCELLED;
    }
}

// Whether some record did not land, as far as is known.
static int
import_some_lost(const struct import *imp, const struct import_sum *s)
{
    if (s->rejected_requests > 0) {
        return 1;
    }
    return imp->a.wait
        && (s->counts[IMPORT_C_NOT_FOUND] + s->counts[IMPORT_C_FAILED] > 0
            || s->jobs_failed + s->jobs_cancelled > 0);
}

static void
import_print_text(const struct import *imp, const struct import_sum *s)
{
    printf("%-15s %s\n", "import_id", cli_text(imp->st.import_id));
    printf("%-15s %s\n", "input", cli_text(sender_path(imp->snd)));
    if (imp->a.resume != NULL) {
        printf("%-15s %s\n", "state_file", cli_text(imp->a.resume));
    }
    printf("%-15s %zu (%zu answered in an earlier run)\n", "requests",
        imp->st.nrequests, imp->skipped);
    printf("%-15s %" PRIu64 "\n", "records", imp->records);
    printf("%-15s %zu\n", "jobs", imp->njobs);
    printf("%-15s %zu request%s, %" PRIu64 " record%s\n", "rejected",
        s->rejected_requests, import_s(s->rejected_requests),
        s->rejected_records, import_s(s->rejected_records));
    if (imp->a.wait) {
        for (int k = IMPORT_C_INSERTED; k <= IMPORT_C_FAILED; k++) {
            printf("%-15s %" PRIu64 "\n", import_count_names[k], s->counts[k]);
        }
        printf("%-15s %zu\n", "jobs_failed", s->jobs_failed);
        printf("%-15s %zu\n", "jobs_cancelled", s->jobs_cancelled);
    }
    if (imp->a.errors != NULL) {
        printf("%-15s %s (%zu row%s)\n", "errors_file",
            cli_text(imp->a.errors), imp->error_rows,
            import_s(imp->error_rows));
    }
}

// Builds the --json object; NULL when out of memory.
static json_t *
import_json(const struct import *imp, const struct import_sum *s)
{
    json_t *obj = json_object();
    json_t *jobs = json_array();
    json_t *rej = json_array();
    int     bad = obj == NULL || jobs == NULL || rej == NULL;

    for (size_t i = 0; !bad && i < imp->st.nrequests; i++) {
        const struct import_req *r = &imp->reqs[i];
        if (!r->rejected) {
            bad |= json_array_append_new(jobs, json_string(imp->st.job_ids[i]))
                != 0;
            continue;
        }
        const struct import_rejection *rj
            = import_state_rejection(&imp->st, (long) i + 1);
        json_t *o = json_object();
        bad |= o == NULL;
        if (!bad) {
            bad |= json_object_set_new(
                o, "request", json_integer((json_int_t) i + 1));
            bad |= json_object_set_new(
                o, "first_line", json_integer(r->first_line));
            bad |= json_object_set_new(
                o, "last_line", json_integer(import_last_line(r)));
            bad |= json_object_set_new(
                o, "records", json_integer(r->nrecords));
            bad |= json_object_set_new(
                o, "message", cli_json_text(rj != NULL ? rj->message : ""));
        }
        bad |= json_array_append_new(rej, o) != 0;
    }
    if (bad) {
        json_decref(jobs);
        json_decref(rej);
        json_decref(obj);
        return NULL;
    }
    bad |= json_object_set_new(
        obj, "import_id", json_string(imp->st.import_id));
    bad |= json_object_set_new(
        obj, "input", cli_json_text(sender_path(imp->snd)));
    bad |= json_object_set_new(obj, "state_file",
        imp->a.resume != NULL ? cli_json_text(imp->a.resume) : json_null());
    bad |= json_object_set_new(
        obj, "requests", json_integer((json_int_t) imp->st.nrequests));
    bad |= json_object_set_new(
        obj, "requests_skipped", json_integer((json_int_t) imp->skipped));
    bad |= json_object_set_new(
        obj, "records", json_integer((json_int_t) imp->records));
    bad |= json_object_set_new(obj, "jobs", jobs);
    bad |= json_object_set_new(obj, "rejected_requests", rej);
    bad |= json_object_set_new(obj, "retries", json_integer(imp->retries));
    bad |= json_object_set_new(
        obj, "duplicates", json_integer((json_int_t) imp->duplicates));
    if (imp->a.wait && !bad) {
        json_t *sum = json_object();
        bad |= sum == NULL;
        if (!bad) {
            bad |= json_object_set_new(
                sum, "jobs", json_integer((json_int_t) imp->njobs));
            bad |= json_object_set_new(
                sum, "records", json_integer((json_int_t) imp->records));
            for (int k = IMPORT_C_INSERTED; k <= IMPORT_C_FAILED; k++) {
                bad |= json_object_set_new(sum, import_count_names[k],
                    json_integer((json_int_t) s->counts[k]));
            }
            bad |= json_object_set_new(sum, "rejected",
                json_integer((json_int_t) s->rejected_records));
            bad |= json_object_set_new(
                sum, "jobs_failed", json_integer((json_int_t) s->jobs_failed));
            bad |= json_object_set_new(sum, "jobs_cancelled",
                json_integer((json_int_t) s->jobs_cancelled));
        }
        bad |= json_object_set_new(obj, "summary", sum);
        bad |= json_object_set_new(obj, "errors_file",
            imp->a.errors != NULL ? cli_json_text(imp->a.errors)
                                  : json_null());
        bad |= json_object_set_new(obj, "error_rows",
            imp->a.errors != NULL ? json_integer((json_int_t) imp->error_rows)
                                  : json_null());
    }
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

// Prints the summary. Returns an exit code.
static int
import_print(const struct import *imp)
{
    struct import_sum s;

    import_sum(imp, &s);
    if (!imp->a.json) {
        import_print_text(imp, &s);
    } else {
        json_t *obj = import_json(imp, &s);
        int rv = obj == NULL ? CLI_EXIT_FAIL : cli_print_json("import", obj);
        if (obj == NULL) {
            cli_error("import: out of memory");
        }
        json_decref(obj);
        if (rv != CLI_EXIT_OK) {
            return rv;
        }
    }
    if (fflush(stdout) != 0) {
        return CLI_EXIT_FAIL;
    }
    return import_some_lost(imp, &s) ? CLI_EXIT_UNCLEAN : CLI_EXIT_OK;
}

// ---------------------------------------------------------------------------

// Checks, before anything is sent, that the token may read jobs (ListJobs,
// one job), which --wait and --errors need: finding out after sending would
// leave jobs running unwatched. Prints the failed call's status, and only
// for PERMISSION_DENIED that the option needs DataSpace.Read. Returns an
// exit code.
static int
import_check_read(struct import *imp)
{
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    Bulkupsert__V1__ListJobsResponse *reply = NULL;
    struct bulkupsert_status          st;

    req.has_page_size = 1;
    req.page_size = 1;
    int code = bulkupsert_list_jobs(imp->client, &req, &reply, &st);
    if (reply != NULL) {
        bulkupsert__v1__list_jobs_response__free_unpacked(reply, NULL);
    }
    if (code != BULKUPSERT_OK) {
        cli_print_status(&st, NULL, 0);
    }
    if (code == BULKUPSERT_PERMISSION_DENIED) {
        cli_error("import: %s needs a token that may read jobs "
                  "(DataSpace.Read); nothing was sent",
            imp->a.errors != NULL ? "--errors" : "--wait");
    }
    bulkupsert_status_clear(&st);
    return code == BULKUPSERT_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

// Clears the bar before the sender prints a message about the input.
static void
import_before_error(void *arg)
{
    progress_clear(arg);
}

static void
import_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = import_on_signal;
    sigemptyset(&sa.sa_mask);
    // Reads of the input restart; the flag is looked at after each request,
    // skipped request, job read and errors-file page, and while a request
    // is sent or waits to be retried (send_chunk). A hang-up (a closed
    // terminal or ssh session) stops the import as SIGTERM does.
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    // A closed pipe on standard output or error is a failed write (the
    // progress display stops), never a death without saving the state.
    signal(SIGPIPE, SIG_IGN);
}

int
cmd_import(int argc, char *argv[], const struct cli_conn *conn)
{
    struct import imp = { .a = { .conn = *conn }, .size = -1, .lock_fd = -1 };
    struct stat   sb;

    send_opts_init(&imp.a.send, 10);
    int rv = import_parse(argc, argv, &imp.a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = sender_open(&imp.snd, imp.a.path, &imp.a.send, 0, "import"))
        != CLI_EXIT_OK) {
        return rv;
    }
    if (strcmp(imp.a.path, "-") != 0 && stat(imp.a.path, &sb) == 0
        && S_ISREG(sb.st_mode)) {
        imp.size = (long long) sb.st_size;
    }
    if ((rv = import_state_open(&imp)) != CLI_EXIT_OK) {
        goto out;
    }
    if (imp.a.errors != NULL
        && (rv = import_errors_open(&imp)) != CLI_EXIT_OK) {
        goto out;
    }
    if (imp.a.errors != NULL && (imp.rejects = tmpfile()) == NULL) {
        cli_error("import: a temporary file: %s", strerror(errno));
        rv = CLI_EXIT_FAIL;
        goto out;
    }
    if ((rv = send_client_open(
             &imp.a.conn, &imp.a.send, "import", &imp.client))
        != CLI_EXIT_OK) {
        goto out;
    }
    if (imp.a.wait && (rv = import_check_read(&imp)) != CLI_EXIT_OK) {
        goto out;
    }
    import_signals();
    progress_init(&imp.prog, imp.a.progress, imp.size, 0, 0);
    sender_on_error(imp.snd, import_before_error, &imp.prog);
    if (imp.st.finished) {
        progress_clear(&imp.prog);
        fprintf(stderr,
            "rpc-cli: import: %s says this import finished; nothing is sent\n",
            cli_text(imp.a.resume));
    }
    rv = import_send(&imp);
    if (rv == CLI_EXIT_OK && imp.a.wait) {
        rv = import_wait(&imp);
    }
    progress_end(&imp.prog);
    if (rv == CLI_EXIT_OK && imp.a.errors != NULL) {
        rv = import_write_errors(&imp);
    }
    if (rv == CLI_EXIT_OK) {
        rv = import_print(&imp);
    }
    if (rv >= CLI_EXIT_SIGNAL_BASE) {
        if (imp.a.resume == NULL) {
            cli_error("import: interrupted after %zu request%s; without "
                      "--resume it cannot be continued",
                imp.st.nrequests, import_s(imp.st.nrequests));
        } else if (import_save(&imp, 1) == CLI_EXIT_OK) {
            cli_error("import: interrupted after %zu request%s; run the "
                      "same command to continue (state in %s)",
                imp.st.nrequests, import_s(imp.st.nrequests), imp.a.resume);
        }
    } else if (rv != CLI_EXIT_OK && rv != CLI_EXIT_UNCLEAN) {
        import_save(&imp, 1);
    }

out:
    import_errors_discard(&imp);
    free(imp.errors_tmp);
    if (imp.lock_fd >= 0) {
        close(imp.lock_fd);
    }
    if (imp.rejects != NULL) {
        fclose(imp.rejects);
    }
    bulkupsert_client_close(imp.client);
    import_reqs_free(&imp);
    import_state_fini(&imp.st);
    sender_close(imp.snd);
    return rv;
}
