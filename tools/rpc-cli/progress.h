// SPDX-License-Identifier: MIT
/*
 * Progress of `rpc-cli import` on standard error: records sent, jobs
 * accepted and done, rate and ETA. On a terminal it is a bar redrawn in
 * place (carriage return and erase-line); anywhere else it is plain lines,
 * one every few seconds and one at the end of each phase, that scripts can
 * parse:
 *
 *   import: sent 5000/~20000 records in 5 jobs, 3 done, 2400 rec/s, eta 6s
 *
 * "~" marks a total estimated from the bytes read so far and the file's
 * size; once the input is read the total is exact. Standard input has no
 * size, so its lines end "eta unknown (no total for stdin)". "? done"
 * means the jobs could not be read (no DataSpace.Read permission).
 *
 * Single-threaded, as all of rpc-cli.
 */
#ifndef BU_RPC_CLI_PROGRESS_H
#define BU_RPC_CLI_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

enum progress_mode {
    PROGRESS_NONE,  // print nothing
    PROGRESS_LINES, // plain lines
    PROGRESS_BAR,   // a bar redrawn in place
};

// Where the import stands.
struct progress_stats {
    uint64_t  records;    // records sent so far (earlier runs included)
    int       input_done; // the whole input has been read and sent
    size_t    jobs;       // jobs accepted so far
    size_t    jobs_done;  // of those, finished
    int       done_known; // jobs_done is known
    long long offset;     // bytes of input read
    int       waiting;    // sending is over; waiting for the jobs
};

struct progress {
    enum progress_mode mode;
    long long          size;     // input size in bytes, or -1 (stdin)
    int64_t            start_ms; // when sending started
    int64_t            sent_ms;  // when sending ended, 0 before
    long long          offset0;  // offset when sending started
    uint64_t           records0; // records when sending started
    int64_t            wait_ms;  // when waiting started, 0 before
    size_t             done0;    // jobs done when waiting started
    int64_t            last_ms;  // last output
    int                drawn;    // a bar is on the screen
};

// progress_init starts the display in mode for an input of size bytes (-1
// when unknown) whose first offset bytes and records were skipped (a
// resumed import).
void progress_init(struct progress *p, enum progress_mode mode, long long size,
    long long offset, uint64_t records);

// progress_update shows s: the bar at most ten times a second, a line at
// most every five seconds, unless force (the end of a phase) says now.
void progress_update(
    struct progress *p, const struct progress_stats *s, int force);

// progress_clear removes the bar (if drawn) so that a message can be
// printed; the next update draws it again.
void progress_clear(struct progress *p);

// progress_end ends the bar's line; nothing for lines.
void progress_end(struct progress *p);

// progress_now_ms returns a monotonic clock in milliseconds.
int64_t progress_now_ms(void);

#endif // BU_RPC_CLI_PROGRESS_H
