// SPDX-License-Identifier: MIT
/*
 * Column metadata of a tenant's master_contact table: the standard columns
 * every tenant has (the vendor API's), plus the custom text columns an
 * operator adds. The validator checks requests against it and the tenant
 * store creates the table from it.
 *
 * A bu_schema is a plain value owned by whoever filled it; it is immutable
 * once shared, so any thread may read it.
 */
#ifndef BU_STORE_SCHEMA_H
#define BU_STORE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

enum bu_col_type {
    BU_COL_TEXT,
    BU_COL_DATE,  // yyyy-MM-dd, a real calendar date
    BU_COL_BOOL,  // stored as INTEGER 0/1
    BU_COL_ENUM,  // one of allowed[]
    BU_COL_PHONE, // digits only
    BU_COL_EMAIL, // stored lowercased
};

#define BU_COLUMN_NAME_MAX    63
#define BU_SCHEMA_MAX_COLUMNS 256

struct bu_column {
    char             name[BU_COLUMN_NAME_MAX + 1];
    enum bu_col_type type;
    unsigned         max_len;     // in characters; 0 = no limit
    char             allowed[16]; // BU_COL_ENUM: the allowed one-letter values
    bool             nullable;    // may be set to null_value
    bool             has_default; // false: the default is SQL NULL
    char default_value[16];       // text form of the default ("A", "1", "")
    bool custom;                  // added by an operator
    bool import_enabled;          // may appear in a request's columns
};

struct bu_schema {
    size_t           ncols;
    struct bu_column cols[BU_SCHEMA_MAX_COLUMNS];
};

// Custom columns: text, 1..4000 characters (255 unless said otherwise).
#define BU_CUSTOM_MAX_LEN     4000
#define BU_CUSTOM_DEFAULT_LEN 255
// A row's declared width, the sum of its columns' max lengths, is bounded so
// that the largest valid request has a known size (see BU_MAX_FRAME_BYTES).
#define BU_ROW_WIDTH_MAX 8000
// The largest valid request frame: 1000 records of BU_ROW_WIDTH_MAX
// characters of 4 UTF-8 bytes, plus per-value protobuf overhead (at most 8
// bytes for each of BU_SCHEMA_MAX_COLUMNS values), plus the envelope (token
// up to 8 KiB, column names, method). 32 000 000 + 2 048 000 + 8 192 + ...
// rounds up to 40 MiB, the default --max-message-bytes.
#define BU_MAX_FRAME_BYTES (40u * 1024u * 1024u)

// Name of the one column every request must carry.
#define BU_COL_CONTACT_KEY "contact_key"
// Longest contact_key, in characters.
#define BU_CONTACT_KEY_MAX 255

// One cell of a record, already checked and normalised for its column.
// text points into memory the caller keeps alive (the request message).
enum bu_cell_kind {
    BU_CELL_UNSET, // not provided: keep on update, default on insert
    BU_CELL_NULL,
    BU_CELL_TEXT,
    BU_CELL_INT, // booleans
};

struct bu_cell {
    enum bu_cell_kind kind;
    const char       *text; // BU_CELL_TEXT
    size_t            len;  // BU_CELL_TEXT, in bytes
    long long         i;    // BU_CELL_INT
};

// bu_schema_standard fills *schemap with the standard columns, in table
// order, contact_key first. Never fails.
void bu_schema_standard(struct bu_schema *schemap);

// bu_schema_find returns the index of the column called name, or -1.
int bu_schema_find(const struct bu_schema *schema, const char *name);

// bu_schema_row_width returns the sum of the columns' max lengths.
unsigned bu_schema_row_width(const struct bu_schema *schema);

// bu_column_name_check returns 1 when name may name a new custom column:
// [a-z][a-z0-9_]{0,62}, not an SQL keyword, not a standard column. Else 0
// with the reason in reason (len bytes).
int bu_column_name_check(const char *name, char *reason, size_t len);

// bu_col_type_name returns "text", "date", "boolean", "enum", "phone",
// "email".
const char *bu_col_type_name(enum bu_col_type type);

#endif // BU_STORE_SCHEMA_H
