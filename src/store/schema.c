// SPDX-License-Identifier: MIT
// The standard master_contact columns, as the vendor's docs define them.
#include "store/schema.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static const struct bu_column schema_standard_cols[] = {
    // name, type, max_len, allowed, nullable, has_default, default,
    // custom, import_enabled
    { "contact_key", BU_COL_TEXT, BU_CONTACT_KEY_MAX, "", false, false, "",
        false, true },
    { "contact_status", BU_COL_ENUM, 1, "AP", false, true, "A", false, true },
    { "email", BU_COL_EMAIL, 255, "", false, true, "", false, true },
    { "email_permission", BU_COL_BOOL, 0, "", false, true, "1", false, true },
    { "email_status", BU_COL_ENUM, 1, "AP", false, true, "A", false, true },
    { "gsm", BU_COL_PHONE, 20, "", false, true, "", false, true },
    { "gsm_permission", BU_COL_BOOL, 0, "", false, true, "1", false, true },
    { "gsm_status", BU_COL_ENUM, 1, "AP", false, true, "A", false, true },
    { "name", BU_COL_TEXT, 100, "", false, true, "", false, true },
    { "surname", BU_COL_TEXT, 100, "", false, true, "", false, true },
    { "gender", BU_COL_TEXT, 100, "", true, false, "", false, true },
    { "birth_date", BU_COL_DATE, 10, "", true, false, "", false, true },
    { "subscription_start_date", BU_COL_DATE, 10, "", true, false, "", false,
        true },
};

void
bu_schema_standard(struct bu_schema *schemap)
{
    size_t n = sizeof(schema_standard_cols) / sizeof(schema_standard_cols[0]);
    memcpy(schemap->cols, schema_standard_cols, sizeof(schema_standard_cols));
    schemap->ncols = n;
}

int
bu_schema_find(const struct bu_schema *schema, const char *name)
{
    for (size_t i = 0; i < schema->ncols; i++) {
        if (strcmp(schema->cols[i].name, name) == 0) {
            return (int) i;
        }
    }
    return -1;
}

const char *
bu_col_type_name(enum bu_col_type type)
{
    switch (type) {
    case BU_COL_TEXT:
        return "text";
    case BU_COL_DATE:
        return "date";
    case BU_COL_BOOL:
        return "boolean";
    case BU_COL_ENUM:
        return "enum";
    case BU_COL_PHONE:
        return "phone";
    case BU_COL_EMAIL:
        return "email";
    }
    return "text";
}

unsigned
bu_schema_row_width(const struct bu_schema *schema)
{
    unsigned w = 0;
    for (size_t i = 0; i < schema->ncols; i++) {
        w += schema->cols[i].max_len;
    }
    return w;
}

int
bu_column_name_check(const char *name, char *reason, size_t len)
{
    size_t n = strlen(name);
    if (n == 0 || n > BU_COLUMN_NAME_MAX) {
        snprintf(reason, len, "a column name has 1 to %d characters",
            BU_COLUMN_NAME_MAX);
        return 0;
    }
    if (name[0] < 'a' || name[0] > 'z') {
        snprintf(reason, len, "a column name starts with a letter a-z");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            snprintf(reason, len,
                "a column name has only a-z, 0-9 and '_' (position %zu)",
                i + 1);
            return 0;
        }
    }
    if (sqlite3_keyword_check(name, (int) n)) {
        snprintf(reason, len, "\"%s\" is an SQL keyword", name);
        return 0;
    }
    struct bu_schema std;
    bu_schema_standard(&std);
    if (bu_schema_find(&std, name) >= 0) {
        snprintf(reason, len, "\"%s\" is a standard column", name);
        return 0;
    }
    return 1;
}
