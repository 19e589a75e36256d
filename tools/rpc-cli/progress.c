// SPDX-License-Identifier: MIT
/*
 * The progress display of `rpc-cli import` (see progress.h). Rates count
 * only this run (records and bytes since sending started, jobs since
 * waiting started), so that a resumed import does not look fast for the
 * part it skipped. While sending, the ETA is the time left to read and
 * send the rest of the file; while waiting, the time left for the jobs at
 * the rate they have been finishing. The bar is cut to the terminal's
 * width, so that it never wraps (a wrapped line cannot be redrawn in
 * place). When standard error cannot be written (a closed pipe), the
 * display stops for good.
 */
#include "progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_BAR_EVERY_MS  100
#define PROGRESS_LINE_EVERY_MS 5000
#define PROGRESS_BAR_WIDTH     24

int64_t
progress_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
progress_init(struct progress *p, enum progress_mode mode, long long size,
    long long offset, uint64_t records)
{
    memset(p, 0, sizeof(*p));
    p->mode = mode;
    p->size = size;
    p->start_ms = progress_now_ms();
    p->offset0 = offset;
    p->records0 = records;
}

// Flushes standard error; when that fails, prints nothing more.
static void
progress_flush(struct progress *p)
{
    if (fflush(stderr) != 0) {
        p->mode = PROGRESS_NONE;
        p->drawn = 0;
        clearerr(stderr);
    }
}

// The width of the terminal on standard error, 80 when unknown.
static size_t
progress_columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 80;
}

// Writes a duration as "6s", "2m05s" or "1h02m".
static void
progress_duration(double s, char *buf, size_t len)
{
    long long t = (long long) (s + 0.5);
    if (t < 60) {
        snprintf(buf, len, "%llds", t);
    } else if (t < 3600) {
        snprintf(buf, len, "%lldm%02llds", t / 60, t % 60);
    } else {
        snprintf(buf, len, "%lldh%02lldm", t / 3600, (t / 60) % 60);
    }
}

// The parts of a progress report, as text.
struct progress_text {
    char total[40]; // "/20000", "/~20000" or ""
    char done[24];  // "3" or "?"
    char rate[24];  // "2400"
    char eta[64];   // "6s", "unknown (...)"
    int  percent;   // -1 when unknown
};

static void
progress_text(struct progress *p, const struct progress_stats *s, int64_t now,
    struct progress_text *t)
{
    // The rate is the sending rate: it stops when sending does.
    if (s->input_done && p->sent_ms == 0) {
        p->sent_ms = now;
    }
    int64_t end = p->sent_ms != 0 ? p->sent_ms : now;
    double  elapsed = (double) (end - p->start_ms) / 1000.0;
    double  rate = elapsed > 0.001
         ? (double) (s->records - p->records0) / elapsed
         : 0.0;

    memset(t, 0, sizeof(*t));
    t->percent = -1;
    if (s->input_done) {
        snprintf(t->total, sizeof(t->total), "/%" PRIu64, s->records);
    } else if (p->size > 0 && s->offset > 0) {
        double est
            = (double) s->records * (double) p->size / (double) s->offset;
        snprintf(t->total, sizeof(t->total), "/~%.0f", est);
    }
    if (s->done_known) {
        snprintf(t->done, sizeof(t->done), "%zu", s->jobs_done);
    } else {
        snprintf(t->done, sizeof(t->done), "?");
    }
    snprintf(t->rate, sizeof(t->rate), "%.0f", rate);

    if (s->waiting) {
        double welapsed = (double) (now - p->wait_ms) / 1000.0;
        size_t newly = s->jobs_done > p->done0 ? s->jobs_done - p->done0 : 0;
        if (s->jobs > 0) {
            t->percent = (int) (100 * s->jobs_done / s->jobs);
        }
        if (s->done_known && s->jobs_done >= s->jobs) {
            snprintf(t->eta, sizeof(t->eta), "0s");
        } else if (s->done_known && newly > 0 && welapsed > 0.001) {
            progress_duration(
                (double) (s->jobs - s->jobs_done) * welapsed / (double) newly,
                t->eta, sizeof(t->eta));
        } else {
            snprintf(t->eta, sizeof(t->eta), "unknown");
        }
        return;
    }
    if (s->input_done) {
        t->percent = 100;
        snprintf(t->eta, sizeof(t->eta), "0s");
        return;
    }
    if (p->size <= 0) {
        snprintf(t->eta, sizeof(t->eta), "unknown (no total for stdin)");
        return;
    }
    t->percent = (int) (100.0 * (double) s->offset / (double) p->size);
    if (t->percent > 99) {
        t->percent = 99;
    }
    double bytes = (double) (s->offset - p->offset0);
    if (bytes <= 0 || elapsed <= 0.001) {
        snprintf(t->eta, sizeof(t->eta), "unknown");
        return;
    }
    double left = (double) (p->size - s->offset);
    progress_duration(
        left > 0 ? left * elapsed / bytes : 0.0, t->eta, sizeof(t->eta));
}

void
progress_update(struct progress *p, const struct progress_stats *s, int force)
{
    int64_t now = progress_now_ms();

    if (p->mode == PROGRESS_NONE) {
        return;
    }
    if (s->waiting && p->wait_ms == 0) {
        p->wait_ms = now;
        p->done0 = s->jobs_done;
    }
    int every = p->mode == PROGRESS_BAR ? PROGRESS_BAR_EVERY_MS
                                        : PROGRESS_LINE_EVERY_MS;
    if (!force && p->last_ms != 0 && now - p->last_ms < every) {
        return;
    }
    if (!force && p->last_ms == 0 && p->mode == PROGRESS_LINES
        && now - p->start_ms < every) {
        return; // the first line after a few seconds, as every later one
    }
    p->last_ms = now;

    struct progress_text t;
    progress_text(p, s, now, &t);
    if (p->mode == PROGRESS_LINES) {
        fprintf(stderr,
            "import: sent %" PRIu64 "%s records in %zu jobs, %s done, %s "
            "rec/s, eta %s\n",
            s->records, t.total, s->jobs, t.done, t.rate, t.eta);
        progress_flush(p);
        return;
    }
    // "[#####...]  45% " when the share done is known, else nothing.
    char head[PROGRESS_BAR_WIDTH + 16] = "";
    if (t.percent >= 0) {
        int fill = t.percent * PROGRESS_BAR_WIDTH / 100;
        head[0] = '[';
        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++) {
            head[1 + i] = i < fill ? '#' : '.';
        }
        snprintf(head + PROGRESS_BAR_WIDTH + 1,
            sizeof(head) - PROGRESS_BAR_WIDTH - 1, "] %3d%% ",
            t.percent % 1000);
    }
    // The text is ASCII: a byte is a column. The last column stays free,
    // as some terminals wrap when it is written.
    char   line[256];
    size_t width = progress_columns() - 1;
    snprintf(line, sizeof(line),
        "%s%s %" PRIu64 "%s rec, %zu jobs, %s done, %s rec/s, eta %s", head,
        s->waiting ? "waiting:" : "sending:", s->records, t.total, s->jobs,
        t.done, t.rate, t.eta);
    if (width < strlen(line)) {
        line[width] = '\0';
    }
    fprintf(stderr, "\r%s\033[K", line);
    p->drawn = 1;
    progress_flush(p);
}

void
progress_clear(struct progress *p)
{
    if (p->mode == PROGRESS_BAR && p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = 0;
        progress_flush(p);
        p->last_ms = 0;
    }
}

void
progress_end(struct progress *p)
{
    if (p->mode == PROGRESS_BAR && p->drawn) {
        fputc('\n', stderr);
        p->drawn = 0;
        progress_flush(p);
    }
}
