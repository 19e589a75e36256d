// SPDX-License-Identifier: MIT
/*
 * `rpc-cli job watch JOB_ID`: polls GetJob every --interval until the job
 * is final, then prints it as `job get` does (or as JSON with --json) and
 * exits 0 for COMPLETED and CLI_EXIT_UNCLEAN (3) for COMPLETED_WITH_ERRORS,
 * FAILED or CANCELLED. Any failed call ends the watch with exit 1.
 *
 * Progress goes to standard output, or with --json to standard error (the
 * JSON stays alone on stdout). On a terminal it is one line redrawn in
 * place ("\r", the line, then "erase to end of line"), cut to the
 * terminal's width so that it never wraps; anywhere else (a pipe, a file,
 * TERM=dumb) it is one plain line for each state the watch sees before the
 * final one, flushed at once so that a pipe reader sees it. With --json and
 * a standard error that is not a terminal there is no progress output.
 * SIGINT keeps its default action: Ctrl-C ends the program.
 */
// nanosleep is POSIX; _DEFAULT_SOURCE declares it (and the ioctl names).
#define _DEFAULT_SOURCE

#include "job_int.h"

#include "base/clock.h"

#include <jansson.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

// clang-format off
static const char watch_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] job watch JOB_ID [OPTIONS]\n"
    "\n"
    "Follows a job until it is final (COMPLETED, COMPLETED_WITH_ERRORS,\n"
    "FAILED or CANCELLED), then prints it as 'job get' does. On a terminal\n"
    "one line shows the state, the time since the job was accepted and the\n"
    "counts, redrawn in place; into a pipe or a file, one line is printed\n"
    "for each state seen before the final one. Needs a token with\n"
    "DataSpace.Read.\n"
    "\n"
    "Exits 0 when the job COMPLETED, 3 when it ended COMPLETED_WITH_ERRORS,\n"
    "FAILED or CANCELLED, and 1 when a call fails (an unknown job: the\n"
    "server's NOT_FOUND). Ctrl-C stops watching; the job goes on.\n"
    "\n"
    "Options:\n"
    "  --interval MS         poll every MS milliseconds, 10 to 3600000\n"
    "                        (default 1000)\n"
    "  --json                print only the final job, as one JSON object\n"
    "                        (the keys of 'job get --json'); the progress\n"
    "                        line goes to stderr when that is a terminal\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Examples:\n"
    "  rpc-cli job watch 0190b7c4-5a4e-7c1d-9b7e-3f2a1c9d8e7f\n"
    "  for id in $(rpc-cli submit contacts.csv); do\n"
    "      rpc-cli job watch \"$id\" --interval 250 || echo \"$id\" >> redo\n"
    "  done\n";
// clang-format on

enum watch_opt {
    WATCH_OPT_INTERVAL = CLI_OPT_FIRST_LOCAL,
    WATCH_OPT_JSON,
};

#define WATCH_INTERVAL_DEFAULT 1000
#define WATCH_INTERVAL_MIN     10L
#define WATCH_INTERVAL_MAX     3600000L

// The escape that erases from the cursor to the end of the line (EL).
#define WATCH_ERASE_LINE "\033[K"

struct watch_args {
    struct cli_conn conn;
    const char     *job_id;
    long            interval_ms;
    int             json;
};

// Where and how progress is shown.
struct watch_out {
    FILE *fp;        // NULL: no progress output
    int   redraw;    // a terminal: one line redrawn in place
    int   color;     // colour the state (only on stdout, through cli_sgr)
    int   drawn;     // a redrawn line is on the screen
    int   last;      // the state of the last plain line; -1 before any
    char  note[256]; // why the job waits, as the last plain line said
};

// Returns CLI_EXIT_OK, an exit code after a usage error, or -1 when help
// was printed.
static int
watch_parse(int argc, char *argv[], struct watch_args *a)
{
    static const struct option longopts[] = {
        { "interval", required_argument, NULL, WATCH_OPT_INTERVAL },
        { "json", no_argument, NULL, WATCH_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const char cmd[] = "job watch";
    int               c;
    int               rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(watch_usage, stdout);
            return -1;
        case WATCH_OPT_INTERVAL:
            if (cli_parse_long(optarg, WATCH_INTERVAL_MIN, WATCH_INTERVAL_MAX,
                    &a->interval_ms)
                != 0) {
                return cli_usage_error(cmd,
                    "--interval '%s' is not a number of milliseconds "
                    "(%ld to %ld)",
                    optarg, WATCH_INTERVAL_MIN, WATCH_INTERVAL_MAX);
            }
            break;
        case WATCH_OPT_JSON:
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
    if ((rv = cli_operands(cmd, argc, argv, optind, 1, "JOB_ID"))
        != CLI_EXIT_OK) {
        return rv;
    }
    a->job_id = argv[optind];
    if (a->job_id[0] == '\0') {
        return cli_usage_error(cmd, "JOB_ID is empty");
    }
    return CLI_EXIT_OK;
}

// watch_is_terminal tells whether fd is a terminal that understands the
// erase-line escape (not TERM=dumb).
static int
watch_is_terminal(int fd)
{
    const char *term = getenv("TERM");
    return isatty(fd) && (term == NULL || strcmp(term, "dumb") != 0);
}

// watch_columns returns the width of the terminal on fd, 80 when unknown.
static size_t
watch_columns(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 80;
}

static void
watch_out_init(struct watch_out *o, int json)
{
    memset(o, 0, sizeof(*o));
    o->last = -1;
    if (!json) {
        o->fp = stdout;
        o->redraw = watch_is_terminal(STDOUT_FILENO);
        o->color = 1;
    } else if (watch_is_terminal(STDERR_FILENO)) {
        o->fp = stderr;
        o->redraw = 1;
    }
}

// watch_progress shows job, not yet final, as o says.
static void
watch_progress(struct watch_out *o, const Bulkupsert__V1__Job *job)
{
    static const Bulkupsert__V1__JobCounts none
        = BULKUPSERT__V1__JOB_COUNTS__INIT;
    const Bulkupsert__V1__JobCounts *c
        = job->counts != NULL ? job->counts : &none;
    char        elapsed[32] = "-";
    char        line[512];
    const char *note = cli_text(job->error);

    if (o->fp == NULL
        || (!o->redraw && (int) job->state == o->last
            && strcmp(note, o->note) == 0)) {
        return;
    }
    if (job->accepted_at_ms > 0) {
        job_duration_format(
            bu_now_ms() - job->accepted_at_ms, elapsed, sizeof(elapsed));
    }
    const char *state = bulkupsert_job_state_name(job->state);
    int         n = snprintf(line, sizeof(line),
                "%s  elapsed %s  total %" PRIu32 "  inserted %" PRIu32
                "  updated %" PRIu32 "  unchanged %" PRIu32 "  failed %" PRIu32,
                state, elapsed, c->total, c->inserted, c->updated, c->unchanged,
                c->failed);
    if (n >= 0 && (size_t) n < sizeof(line) && note[0] != '\0') {
        // Why the job waits (storage trouble the server keeps trying).
        snprintf(line + n, sizeof(line) - (size_t) n, "  (%s)", note);
    }
    size_t len = n < 0 ? 0 : strlen(line);
    size_t slen = strlen(state);
    if (!o->redraw) {
        fprintf(o->fp, "%s\n", line);
        o->last = (int) job->state;
        snprintf(o->note, sizeof(o->note), "%s", note);
        fflush(o->fp);
        return;
    }
    // Keep the line inside the terminal: a line that wraps cannot be
    // redrawn with "\r".
    int    fd = o->fp == stdout ? STDOUT_FILENO : STDERR_FILENO;
    size_t width = watch_columns(fd) - 1;
    if (len > width) {
        len = width;
    }
    if (slen > len) {
        slen = len;
    }
    const char *sgr = o->color ? cli_state_sgr(state) : "";
    fprintf(o->fp, "\r%s%.*s%s%.*s" WATCH_ERASE_LINE, sgr, (int) slen, line,
        sgr[0] != '\0' ? CLI_SGR_RESET : "", (int) (len - slen), line + slen);
    fflush(o->fp);
    o->drawn = 1;
}

// watch_progress_end erases a redrawn line, so that what follows starts
// at the beginning of an empty line.
static void
watch_progress_end(struct watch_out *o)
{
    if (o->fp != NULL && o->drawn) {
        fputs("\r" WATCH_ERASE_LINE, o->fp);
        fflush(o->fp);
        o->drawn = 0;
    }
}

static void
watch_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { }
}

int
job_watch(int argc, char *argv[], const struct cli_conn *conn)
{
    static const char cmd[] = "job watch";
    struct watch_args a
        = { .conn = *conn, .interval_ms = WATCH_INTERVAL_DEFAULT };
    Bulkupsert__V1__GetJobRequest req = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    Bulkupsert__V1__Job          *job = NULL;
    bulkupsert_client            *client = NULL;
    struct bulkupsert_status      st;
    struct watch_out              o;
    json_t                       *out = NULL;

    int rv = watch_parse(argc, argv, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, cmd, &client)) != CLI_EXIT_OK) {
        return rv;
    }
    watch_out_init(&o, a.json);
    // The request borrows job_id from argv. No per-record results.
    req.job_id = (char *) a.job_id;
    for (;;) {
        if (bulkupsert_get_job(client, &req, &job, &st) != BULKUPSERT_OK) {
            watch_progress_end(&o);
            cli_print_status(&st, NULL, 0);
            bulkupsert_status_clear(&st);
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        bulkupsert_status_clear(&st);
        if (job_state_final(job->state)) {
            break;
        }
        watch_progress(&o, job);
        bulkupsert__v1__job__free_unpacked(job, NULL);
        job = NULL;
        watch_sleep_ms(a.interval_ms);
    }
    watch_progress_end(&o);

    if (a.json) {
        if ((out = job_json(job)) == NULL) {
            cli_error("%s: out of memory", cmd);
            rv = CLI_EXIT_FAIL;
            goto out;
        }
        if (cli_print_json(cmd, out) != CLI_EXIT_OK) {
            rv = CLI_EXIT_FAIL;
            goto out;
        }
    } else {
        job_print_text(job);
    }
    if (fflush(stdout) != 0) {
        rv = CLI_EXIT_FAIL;
    } else if (job->state == BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED) {
        rv = CLI_EXIT_OK;
    } else {
        rv = CLI_EXIT_UNCLEAN;
    }

out:
    json_decref(out);
    if (job != NULL) {
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    bulkupsert_client_close(client);
    return rv;
}
