// SPDX-License-Identifier: MIT
/*
 * The load: C client threads submitting requests of generated rows to a
 * server until every record of every tenant is accepted, then the wait
 * until every accepted job has finished, with the figures of the run (wall
 * time, ack latency percentiles, job counts).
 *
 * A thread works for its own tenants first (tenant i % T with at least as
 * many clients as tenants, else tenants i, i + C, ...) and then helps with
 * whatever is left; each tenant's batches are handed out in order by an
 * atomic counter. A 429 is retried after its retry_after_ms; any other
 * failure stops the run. With a rate, each client paces its submits (see
 * load_spec.rate).
 *
 * load_run is called from one thread and blocks until the run is over.
 */
#ifndef BU_BENCH_LOAD_H
#define BU_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "rows.h"

// One tenant's share of the load.
struct load_tenant {
    const char     *token;   // borrowed; the token bound to this tenant
    const uint32_t *ids;     // borrowed; order of the ids to submit
    size_t          n;       // number of ids (records)
    uint32_t        id_base; // added to every id
};

struct load_spec {
    const char               *url;
    int                       nclients;
    size_t                    batch; // records a request, 1 .. 1000
    uint64_t                  salt;
    enum rows_space           space;
    unsigned                  version;
    size_t                    ntenants;
    const struct load_tenant *tenants;
    // 0: closed loop, each client submits as soon as its last submit was
    // answered. Otherwise the records/s offered by all clients together:
    // each client sends on a fixed schedule (open loop), and a submit's ack
    // time runs from the moment it was due, so a server that falls behind
    // is charged for the wait it causes.
    double rate;
};

struct load_result {
    size_t records;  // accepted
    size_t requests; // accepted submits
    size_t retries;  // 429 answers retried
    double accept_s; // first submit to last 202
    double wall_s;   // first submit to last job seen finished
    double ack_p50_ms, ack_p90_ms, ack_p99_ms, ack_max_ms;
    // Sums of the jobs' counts, and jobs that did not end COMPLETED.
    uint64_t inserted, updated, unchanged, superseded, not_found, failed;
    size_t   jobs_not_completed;
    size_t   payload_bytes; // bytes of values submitted
};

// load_run runs spec to the end. Returns 0 with *outp filled, or -1 with a
// message in err (the server's answer or the transport error).
// clang-format off
int load_run(const struct load_spec *spec,
    struct load_result *outp,  // OUT
    char *err, size_t errlen); // OUT: message on failure
// clang-format on             // OUT: message on failure

// load_touch_tenants submits, for each tenant of spec in turn, one record
// (space, first_id + t) at spec->version and waits until its job has
// finished, so that every tenant's database exists before a measured pass
// (the ids must lie outside the pass's). Returns 0, or -1 with a message in
// err.
int load_touch_tenants(
    const struct load_spec *spec, uint32_t first_id, char *err, size_t errlen);

#endif // BU_BENCH_LOAD_H
