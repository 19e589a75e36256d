// SPDX-License-Identifier: MIT
/*
 * A tenant's database, DATA/tenants/<tenant>.db: the master_contact table,
 * its column metadata (table `columns`) and the jobs applied to it (table
 * `applied_jobs`, with each job's counts and per-record results).
 *
 * Applying a job is one transaction: the upserts, the applied-marker and the
 * results commit together, so a job replayed after a crash is recognised by
 * its marker and changes nothing twice (DESIGN inv 2).
 *
 * A writer handle belongs to the one worker thread that owns the tenant (one
 * writer per database). Reader handles (GetJob) may be opened by any thread
 * and are used by one thread at a time. Prepared statements are cached per
 * column set.
 */
#ifndef BU_STORE_TENANT_H
#define BU_STORE_TENANT_H

#include <stddef.h>
#include <stdint.h>

#include "store/checkpointer.h"
#include "store/jobs.h"
#include "store/schema.h"
#include "store/sql.h"

struct bu_tenant_db;

// A writer's WAL is checkpointed once it holds this many frames (pages):
// by SQLite on the commit that passed it, or by a checkpointer
// (bu_tenant_db_checkpoint_with).
#define BU_TENANT_WAL_FRAMES 10000

// Result of one upsert; same numbers as bulkupsert.v1.RecordOutcome.
enum bu_upsert_outcome {
    BU_UPSERT_INSERTED = 1,
    BU_UPSERT_UPDATED = 2,
    BU_UPSERT_UNCHANGED = 3,
    BU_UPSERT_NOT_FOUND = 5,
};

// bu_tenant_db_open opens data_dir/tenants/<tenant>.db. A writer creates the
// folder, the file and the schema (standard columns) when missing; a reader
// returns BU_ENOENT when the tenant has no database yet. tenant must already
// be validated (bu_tenant_valid). Returns BU_ENOENT, BU_EIO, BU_ESTORE,
// BU_ENOMEM. Release with bu_tenant_db_close.
int bu_tenant_db_open(struct bu_tenant_db **dbp, const char *data_dir,
    const char *tenant, enum bu_sql_mode mode);

// bu_tenant_db_checkpoint_with hands the checkpoints of a writer's WAL to
// cp's thread: a commit then returns while the pages are copied back, and
// the next bu_tenant_db_begin waits for the copy to end. cp must stay until
// db is closed.
void bu_tenant_db_checkpoint_with(
    struct bu_tenant_db *db, struct bu_checkpointer *cp);

// bu_tenant_db_close finalizes cached statements and closes; NULL ignored.
void bu_tenant_db_close(struct bu_tenant_db *db);

// bu_tenant_db_schema reads the column metadata into *schemap (table order).
// Returns BU_ENOENT while the database is still being created (a reader
// racing the tenant's first writer), BU_ESTORE.
int bu_tenant_db_schema(struct bu_tenant_db *db, struct bu_schema *schemap);

// bu_tenant_db_add_column adds a custom text column of max_len characters
// (ALTER TABLE plus its metadata, in one transaction). Custom columns are
// nullable with no default: existing rows read NULL. The name must pass
// bu_column_name_check. Returns BU_EEXIST (a column of that name exists),
// BU_EFULL (the row width or column count would pass its bound), BU_EBUSY
// (the database stayed locked past the busy timeout), BU_ESTORE. *colp
// (may be NULL) gets the new column.
int bu_tenant_db_add_column(struct bu_tenant_db *db, const char *name,
    unsigned max_len, int import_enabled, struct bu_column *colp);

// bu_tenant_db_set_import turns import on or off for column name. Returns
// BU_ENOENT (no such column), BU_EINVAL (contact_key cannot be turned off),
// BU_EBUSY, BU_ESTORE. *colp (may be NULL) gets the column after the change.
int bu_tenant_db_set_import(struct bu_tenant_db *db, const char *name,
    int enabled, struct bu_column *colp);

// bu_tenant_db_begin / commit / rollback: one transaction (writer only);
// commit is durable on return (synchronous=FULL). begin first waits for a
// checkpoint of this database that is under way (checkpoint_with).
int  bu_tenant_db_begin(struct bu_tenant_db *db);
int  bu_tenant_db_commit(struct bu_tenant_db *db);
void bu_tenant_db_rollback(struct bu_tenant_db *db);

// bu_tenant_db_savepoint / release / rollback_to: a nested part of the
// transaction (one job among several in one transaction) that can be undone
// alone. Writer only, inside a transaction.
int  bu_tenant_db_savepoint(struct bu_tenant_db *db);
int  bu_tenant_db_release(struct bu_tenant_db *db);
void bu_tenant_db_rollback_to(struct bu_tenant_db *db);

// bu_tenant_db_upsert writes one record. cols[j] is the schema index of the
// j-th cell; cols must contain the contact_key column, whose cell is TEXT.
// A stored row equal on every provided cell is left alone (UNCHANGED); a
// missing row is inserted with the defaults of unset cells when
// insert_missing, else NOT_FOUND. Writer only, inside a transaction.
// Returns BU_OK with *outcomep, or BU_ESTORE/BU_EIO/BU_ENOMEM.
int bu_tenant_db_upsert(struct bu_tenant_db *db,
    const struct bu_schema *schema, const int *cols,
    size_t                  ncols, // schema index of each cell
    const struct bu_cell   *cells, // ncols cells
    int                     insert_missing,
    enum bu_upsert_outcome *outcomep); // OUT

// bu_tenant_db_applied reports whether job_id was applied; on BU_OK *countsp
// holds its counts. Returns BU_ENOENT when it was not.
int bu_tenant_db_applied(struct bu_tenant_db *db, const char *job_id,
    struct bu_job_counts *countsp);

// bu_tenant_db_mark_applied records job_id as applied with its counts and
// serialized per-record results (a JobRecords message). Writer only, in the
// job's transaction.
int bu_tenant_db_mark_applied(struct bu_tenant_db *db, const char *job_id,
    int64_t seq, const struct bu_job_counts *counts, const void *results,
    size_t n); // serialized JobRecords

// bu_tenant_db_purge deletes the records of jobs applied before before_ms
// whose seq is below below_seq (their counts and results; the contacts
// stay). A record is what makes a replayed job change nothing twice, so
// the caller keeps those of jobs queue.db has not yet recorded as
// finished. Writer only.
int bu_tenant_db_purge(
    struct bu_tenant_db *db, int64_t before_ms, int64_t below_seq);

// bu_tenant_db_results copies the serialized JobRecords of job_id into
// *blobp (release with bu_free). Returns BU_ENOENT when it was not applied.
int bu_tenant_db_results(
    struct bu_tenant_db *db, const char *job_id, uint8_t **blobp, size_t *np);

#endif // BU_STORE_TENANT_H
