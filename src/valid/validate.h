// SPDX-License-Identifier: MIT
/*
 * Validation of a SubmitBulkUpsertRequest against a tenant's columns.
 *
 * Two levels, as the vendor API answers them:
 *   - request shape (ResponseCode FieldError 1): columns present, known,
 *     import-enabled, unrepeated, contact_key among them; 1 to 1000 records;
 *     every record as wide as the columns. A shape error stops the check.
 *   - record values (ValidationFails 11): each cell against its column's
 *     type, length in characters, allowed values and nullability.
 * The verdict lists every error with the record index, contact_key, column
 * and reason, so that a user can fix the input in one pass.
 *
 * Cell conversion (bu_validate_cell) is also what the workers use to turn a
 * Value into the cell that is stored, so submit and apply agree.
 * Pure functions; thread-safe.
 */
#ifndef BU_VALID_VALIDATE_H
#define BU_VALID_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "store/schema.h"

#define BU_MAX_RECORDS 1000
// Errors kept per record; more are summed up in one last error.
#define BU_MAX_ERRORS_PER_RECORD 8

struct bu_field_error {
    int64_t     record_index; // -1 for request-level errors
    const char *contact_key;  // into the request; NULL when unknown/invalid
    const char *column;       // into the request or schema; may be NULL
    char        reason[160];
};

struct bu_verdict {
    int    shape_failed; // the request's shape is wrong: FieldError 1
    size_t nerrors;
    struct bu_field_error *errors; // owned
    size_t                 nbad;   // records with at least one error
    uint8_t               *bad;    // per record: 1 when invalid (owned)
    uint8_t *notes;  // per record: BU_CELL_NOTE_* of its cells (owned)
    int     *colmap; // per request column: schema index (owned)
};

// bu_validate checks req against schema and fills *v (initialised by the
// call; release with bu_verdict_fini, also after an error). Strings of req
// are normalised in place (email lowercased). Returns BU_OK (the verdict
// tells whether the request is valid) or BU_ENOMEM.
int bu_validate(const struct bu_schema      *schema,
    Bulkupsert__V1__SubmitBulkUpsertRequest *req, struct bu_verdict *v);

// bu_verdict_fini releases what bu_validate put in v.
void bu_verdict_fini(struct bu_verdict *v);

// Flags of bu_validate_cell's *notesp.
#define BU_CELL_NOTE_LOWERCASED    1u // an email was stored lowercased
#define BU_CELL_NOTE_PLUS_STRIPPED 2u // a gsm's leading '+' was dropped

// bu_validate_cell converts value (NULL = not provided) for column col into
// *cellp, normalising text in place. Returns 1 when valid; 0 with a reason
// written into reason (len bytes) otherwise. *notesp (may be NULL) gets
// BU_CELL_NOTE_* flags.
int bu_validate_cell(const struct bu_column *col,
    Bulkupsert__V1__Value                   *value,  // may be NULL
    struct bu_cell                          *cellp,  // OUT
    unsigned                                *notesp, // OUT, may be NULL
    char *reason, size_t len);                       // OUT on failure

#endif // BU_VALID_VALIDATE_H
