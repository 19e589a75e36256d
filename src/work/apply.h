// SPDX-License-Identifier: MIT
/*
 * Applying one accepted job to its tenant's database: decode the stored
 * request, read the tenant's columns inside the job's transaction (so a
 * column added or disabled meanwhile is seen consistently), check every
 * record again against them,
 * let the last record of each contact_key win, upsert the winners in key
 * order, and commit the upserts together with the job's applied-marker,
 * counts and per-record results (DESIGN inv 2). A job found already applied
 * (a replay after a crash) changes nothing and reports the stored counts.
 *
 * Called by the worker thread that owns the tenant; blocks on disk I/O.
 */
#ifndef BU_WORK_APPLY_H
#define BU_WORK_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/jobs.h"
#include "store/schema.h"
#include "store/tenant.h"

// bu_apply_job is bu_apply_batch of one job: it applies the job (payload =
// serialized SubmitBulkUpsertRequest) and fills *countsp. Returns BU_OK,
// BU_EPARSE (the payload does not decode: the job cannot ever succeed), or a
// storage error (nothing of the job was committed).
int bu_apply_job(struct bu_tenant_db *db, const char *job_id, int64_t seq,
    const uint8_t *payload, size_t n,
    struct bu_job_counts *countsp); // OUT

// One job of a batch: inputs, and its own result.
struct bu_apply_item {
    const char          *job_id;
    int64_t              seq;
    const uint8_t       *payload; // serialized SubmitBulkUpsertRequest
    size_t               len;
    struct bu_job_counts counts; // OUT, when rv is BU_OK
    int                  rv;     // OUT: BU_OK, BU_EPARSE or storage error
};

// bu_apply_batch applies several jobs of one tenant, in the given order, in
// ONE transaction: each job keeps its own results and applied-marker (a
// savepoint each), and one commit makes them all durable. A job whose
// payload does not decode, or that the store refuses, fails alone (see
// bu_apply_job_fault); a storage error fails every item and commits
// nothing. Returns BU_OK when the commit happened.
int bu_apply_batch(
    struct bu_tenant_db *db, struct bu_apply_item *items, size_t n);

// bu_apply_job_fault returns true when rv (an item's result) belongs to
// that job alone, so the job fails and the rest of the batch goes on: a
// request that does not decode, or one the store refuses. Busy, I/O and
// memory errors are the database's, and fail the whole batch (retried or
// resumed at the next start).
bool bu_apply_job_fault(int rv);

// bu_apply_state returns the final state that counts imply: COMPLETED when
// nothing failed or went unfound, else COMPLETED_WITH_ERRORS.
enum bu_job_state bu_apply_state(const struct bu_job_counts *counts);

#endif // BU_WORK_APPLY_H
