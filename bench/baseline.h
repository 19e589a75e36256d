// SPDX-License-Identifier: MIT
/*
 * The bare SQLite loops the service is measured against (PERF-BASELINES.md,
 * issue 5): one thread, one connection, a prepared
 * INSERT ... ON CONFLICT(contact_key) DO UPDATE, the rows of rows.h, on the
 * daemon's own master_contact schema (the file is created by the store code
 * the daemon uses), on the disk the benchmark runs on.
 *
 *   naive: WAL, synchronous=NORMAL, default cache, 1000 rows a transaction
 *   tuned: WAL, synchronous=NORMAL, cache_size 256 MiB,
 *          wal_autocheckpoint=10000, 10,000 rows a transaction
 *
 * Only SQLite's work is timed (BEGIN to COMMIT of each transaction); making
 * the rows is not. Not thread-safe: one loop at a time per file.
 */
#ifndef BU_BENCH_BASELINE_H
#define BU_BENCH_BASELINE_H

#include <stddef.h>
#include <stdint.h>

#include "rows.h"

enum baseline_kind {
    BASELINE_NAIVE,
    BASELINE_TUNED,
};

// What one loop wrote and how long SQLite took.
struct baseline_pass {
    size_t rows;
    double secs; // sum of the transactions' times
    double rps;  // rows / secs
};

// baseline_create makes data_dir (when missing) and
// data_dir/tenants/<tenant>.db with the daemon's schema (standard columns,
// metadata tables), as the daemon would on first use. Returns 0, or -1 with
// a message in err.
int baseline_create(
    const char *data_dir, const char *tenant, char *err, size_t errlen);

// baseline_db is one open loop: a connection set up for kind and its
// prepared upsert. Release with baseline_close.
struct baseline_db;

// baseline_open opens path (made by baseline_create) for kind. Returns 0,
// or -1 with a message in err and *dbp untouched.
int baseline_open(struct baseline_db **dbp, const char *path,
    enum baseline_kind kind, char *err, size_t errlen);

// baseline_close closes db; NULL is ignored.
void baseline_close(struct baseline_db *db);

// baseline_run upserts n rows: row i is (space, ids[i] + id_base) at
// version, or (space, i + id_base) when ids is NULL, in transactions of
// the kind's size. Blocks until done. Returns 0 with *outp filled, or -1
// with SQLite's message in err.
// clang-format off
int baseline_run(struct baseline_db *db,
    uint64_t salt,              // the run's seed
    enum rows_space space,      // key space of the rows
    const uint32_t *ids,        // order of ids, or NULL for 0 .. n-1
    uint32_t id_base,           // added to every id
    size_t n,                   // rows to write
    unsigned version,           // row version (rows.h)
    struct baseline_pass *outp, // OUT
    char *err, size_t errlen);  // OUT: message on failure
// clang-format on                // OUT: message on failure

// baseline_fsync_probe times n rounds of a 4 KiB pwrite plus fdatasync to a
// scratch file in dir (removed afterwards), the cost of one durable commit
// on this disk, and returns the median and 99th percentile in ms. With
// append each write extends the file (so the file system journals its new
// size too); without, the writes go round 16 blocks already written, as a
// reused WAL does. Returns 0, or -1 with a message in err.
// clang-format off
int baseline_fsync_probe(const char *dir,
    int n,                     // rounds
    int append,                // extend the file instead of rewriting
    double *p50p,              // OUT
    double *p99p,              // OUT
    char *err, size_t errlen); // OUT: message on failure
// clang-format on          // OUT: message on failure

// baseline_cpu_probe measures how steady this machine's CPUs are, which
// bounds any latency percentile: it times n runs of a fixed task that
// takes about 1 ms on an idle CPU (copying and summing a 160 KiB buffer,
// as a handler does with a request), each after a 2 ms sleep, as requests
// arrive, and returns the fastest run, the median and the 99th
// percentile in ms. On a virtual machine whose host takes its CPUs away
// from time to time, the 99th percentile is many times the fastest.
// Returns 0, or -1 with a message in err.
// clang-format off
int baseline_cpu_probe(int n,
    double *minp,              // OUT
    double *p50p,              // OUT
    double *p99p,              // OUT
    char *err, size_t errlen); // OUT: message on failure
// clang-format on

// baseline_kind_name returns "naive" or "tuned".
const char *baseline_kind_name(enum baseline_kind kind);

#endif // BU_BENCH_BASELINE_H
