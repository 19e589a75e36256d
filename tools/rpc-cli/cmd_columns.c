// SPDX-License-Identifier: MIT
/*
 * `rpc-cli columns list|add|enable|disable`: the tenant's table schema.
 * list calls DescribeTable and prints one aligned row per column (name,
 * type, max length, nullable, default, custom, import) and the row width,
 * or with --json one object built with jansson. add calls AddColumn for a
 * custom text column; enable and disable call SetImportEnabled. Those three
 * print the column as the server has it after the change, as a text block
 * or a JSON object, so that a script can check what it got.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"

#include <jansson.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The longest max_length a custom column may have (the proto's contract).
#define COLUMNS_MAX_LENGTH 4000

// clang-format off
static const char columns_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] columns SUBCOMMAND [ARGS] [OPTIONS]\n"
    "\n"
    "Shows and changes the columns of the tenant's contact table.\n"
    "\n"
    "Subcommands:\n"
    "  list                  show every column and its metadata\n"
    "  add NAME              add a custom text column\n"
    "  enable NAME           allow the column in submitted records\n"
    "  disable NAME          refuse the column in submitted records\n"
    "\n"
    "Run 'rpc-cli columns SUBCOMMAND --help' for its options.\n"
    "\n"
    "Example:\n"
    "  rpc-cli columns add loyalty_tier --max-length 20\n"
    "  rpc-cli columns list\n";
// clang-format on

// clang-format off
static const char columns_list_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] columns list [OPTIONS]\n"
    "\n"
    "Shows the columns of the tenant's contact table (DescribeTable), one a\n"
    "line: NAME, TYPE (text, date, boolean, enum with its allowed values,\n"
    "phone, email), MAX (length in characters; - when the type has none),\n"
    "NULLABLE, DEFAULT (the value a new contact gets; - for none), CUSTOM\n"
    "(added with 'columns add') and IMPORT (whether submitted records may\n"
    "carry it). A last line gives the row width, the sum of the maximum\n"
    "lengths, and the most it may reach. Needs a token with DataSpace.Read.\n"
    "\n"
    "Options:\n"
    "  --json                print one JSON object: \"columns\" (an array of\n"
    "                        objects with name, type, max_length,\n"
    "                        allowed_values, nullable, default, custom,\n"
    "                        import_enabled), \"row_width\" and\n"
    "                        \"max_row_width\"\n" CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli columns list --json | jq -r '.columns[].name'\n";
// clang-format on

// clang-format off
static const char columns_add_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] columns add NAME [OPTIONS]\n"
    "\n"
    "Adds a custom text column to the tenant's contact table (AddColumn)\n"
    "and prints it. NAME has lowercase letters, digits and '_', starts with\n"
    "a letter, has at most 63 characters, and is neither an SQL keyword nor\n"
    "a standard column. Existing contacts get NULL in the new column. The\n"
    "server refuses a column that would make a row wider than its limit\n"
    "(see 'columns list'). Needs a token with DataSpace.Manage.\n"
    "\n"
    "Options:\n"
    "  --max-length N        longest value in characters, 1 to 4000\n"
    "                        (default 255)\n"
    "  --disabled            add it with import disabled; enable it later\n"
    "                        with 'columns enable NAME'\n"
    "  --json                print the column as a JSON object (the keys of\n"
    "                        'columns list --json')\n" CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli columns add loyalty_tier --max-length 20\n";
// clang-format on

// clang-format off
static const char columns_enable_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] columns enable NAME [OPTIONS]\n"
    "\n"
    "Turns import on for the column NAME (SetImportEnabled), so that\n"
    "submitted records may carry it, and prints the column. Needs a token\n"
    "with DataSpace.Manage.\n"
    "\n"
    "Options:\n"
    "  --json                print the column as a JSON object\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli columns enable loyalty_tier\n";
// clang-format on

// clang-format off
static const char columns_disable_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] columns disable NAME [OPTIONS]\n"
    "\n"
    "Turns import off for the column NAME (SetImportEnabled) and prints the\n"
    "column. A request naming a column whose import is off is refused as a\n"
    "whole; the stored values stay. contact_key cannot be disabled. Needs a\n"
    "token with DataSpace.Manage.\n"
    "\n"
    "Options:\n"
    "  --json                print the column as a JSON object\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli columns disable gender\n";
// clang-format on

enum columns_opt {
    COLUMNS_OPT_JSON = CLI_OPT_FIRST_LOCAL,
    COLUMNS_OPT_MAX_LENGTH,
    COLUMNS_OPT_DISABLED,
};

struct columns_args {
    struct cli_conn conn;
    const char     *name; // NULL for list
    long            max_length;
    int             has_max_length;
    int             disabled;
    int             json;
};

// Parses the command line of `columns SUB` (cmd names it in messages),
// with the options in longopts and one NAME argument when want_name.
// Returns CLI_EXIT_OK, an exit code after a usage error, or -1 when help
// was printed.
static int
columns_parse(int argc, char *argv[], const char *cmd, const char *usage,
    const struct option *longopts, int want_name, struct columns_args *a)
{
    int c;
    int rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return -1;
        case COLUMNS_OPT_JSON:
            a->json = 1;
            break;
        case COLUMNS_OPT_MAX_LENGTH:
            if (cli_parse_long(optarg, 1, COLUMNS_MAX_LENGTH, &a->max_length)
                != 0) {
                return cli_usage_error(cmd,
                    "--max-length '%s' is not a number from 1 to %d", optarg,
                    COLUMNS_MAX_LENGTH);
            }
            a->has_max_length = 1;
            break;
        case COLUMNS_OPT_DISABLED:
            a->disabled = 1;
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
    if (want_name) {
        if (optind >= argc) {
            return cli_usage_error(cmd, "missing NAME (the column's name)");
        }
        a->name = argv[optind++];
        if (a->name[0] == '\0') {
            return cli_usage_error(cmd, "NAME is empty");
        }
    }
    return cli_operands(cmd, argc, argv, optind, 0, NULL);
}

static const char *
columns_yes_no(int b)
{
    return b ? "yes" : "no";
}

// Writes the column's type into buf: the type name, and for an enum its
// allowed values, as in "enum(A,P)".
static void
columns_type_text(const Bulkupsert__V1__ColumnInfo *c, char *buf, size_t len)
{
    const char *type = c->type != NULL ? c->type : "?";
    size_t      n = (size_t) snprintf(buf, len, "%s", type);

    for (size_t i = 0; i < c->n_allowed_values && n < len; i++) {
        n += (size_t) snprintf(buf + n, len - n, "%s%s", i == 0 ? "(" : ",",
            c->allowed_values[i]);
    }
    if (c->n_allowed_values > 0 && n < len) {
        snprintf(buf + n, len - n, ")");
    }
}

// Writes the column's max length into buf, "-" for none.
static void
columns_max_text(const Bulkupsert__V1__ColumnInfo *c, char *buf, size_t len)
{
    if (c->has_max_length && c->max_length > 0) {
        snprintf(buf, len, "%" PRIu32, c->max_length);
    } else {
        snprintf(buf, len, "-");
    }
}

// The default as shown in text: "-" for none (NULL), "" for the empty
// string.
static const char *
columns_default_text(const Bulkupsert__V1__ColumnInfo *c)
{
    if (c->default_value == NULL) {
        return "-";
    }
    return c->default_value[0] != '\0' ? c->default_value : "\"\"";
}

static size_t
columns_max(size_t a, size_t b)
{
    return a > b ? a : b;
}

static void
columns_print_table(const Bulkupsert__V1__DescribeTableResponse *resp)
{
    static const char *const heads[7]
        = { "NAME", "TYPE", "MAX", "NULLABLE", "DEFAULT", "CUSTOM", "IMPORT" };
    size_t w[7];
    char   type[128];
    char   max[16];

    // Every column is as wide as its widest cell; the last needs no width.
    for (size_t k = 0; k < 7; k++) {
        w[k] = strlen(heads[k]);
    }
    for (size_t i = 0; i < resp->n_columns; i++) {
        const Bulkupsert__V1__ColumnInfo *c = resp->columns[i];
        columns_type_text(c, type, sizeof(type));
        columns_max_text(c, max, sizeof(max));
        w[0] = columns_max(w[0], strlen(cli_text(c->name)));
        w[1] = columns_max(w[1], strlen(cli_text(type)));
        w[2] = columns_max(w[2], strlen(max));
        w[4] = columns_max(w[4], strlen(cli_text(columns_default_text(c))));
    }
    printf("%s%-*s  %-*s  %*s  %-*s  %-*s  %-*s  %s%s\n",
        cli_sgr(CLI_SGR_BOLD), (int) w[0], heads[0], (int) w[1], heads[1],
        (int) w[2], heads[2], (int) w[3], heads[3], (int) w[4], heads[4],
        (int) w[5], heads[5], heads[6], cli_sgr(CLI_SGR_RESET));
    for (size_t i = 0; i < resp->n_columns; i++) {
        const Bulkupsert__V1__ColumnInfo *c = resp->columns[i];
        columns_type_text(c, type, sizeof(type));
        columns_max_text(c, max, sizeof(max));
        printf("%-*s  %-*s  %*s  %-*s  %-*s  %-*s  %s\n", (int) w[0],
            cli_text(c->name), (int) w[1], cli_text(type), (int) w[2], max,
            (int) w[3], columns_yes_no(c->nullable), (int) w[4],
            cli_text(columns_default_text(c)), (int) w[5],
            columns_yes_no(c->custom), columns_yes_no(c->import_enabled));
    }
    printf("row width %" PRIu32 " of %" PRIu32 " characters (%zu column%s)\n",
        resp->row_width, resp->max_row_width, resp->n_columns,
        resp->n_columns == 1 ? "" : "s");
}

static void
columns_print_one(const Bulkupsert__V1__ColumnInfo *c)
{
    char type[128];
    char max[16];

    columns_type_text(c, type, sizeof(type));
    columns_max_text(c, max, sizeof(max));
    printf("name            %s\n", cli_text(c->name));
    printf("type            %s\n", cli_text(type));
    printf("max_length      %s\n", max);
    printf("nullable        %s\n", columns_yes_no(c->nullable));
    printf("default         %s\n", cli_text(columns_default_text(c)));
    printf("custom          %s\n", columns_yes_no(c->custom));
    printf("import_enabled  %s\n", columns_yes_no(c->import_enabled));
}

// Builds the JSON object of one column. Returns NULL when out of memory.
// (json_object_set_new takes the value even when it fails and fails on a
// NULL value, so one check at the end is enough; see cmd_job.c.)
static json_t *
columns_json_one(const Bulkupsert__V1__ColumnInfo *c)
{
    json_t *obj = json_object();
    json_t *allowed = json_array();
    int     bad = obj == NULL || allowed == NULL;

    for (size_t i = 0; !bad && i < c->n_allowed_values; i++) {
        bad |= json_array_append_new(
                   allowed, json_string(c->allowed_values[i]))
            != 0;
    }
    if (bad) {
        json_decref(allowed);
        json_decref(obj);
        return NULL;
    }
    bad |= json_object_set_new(
        obj, "name", c->name != NULL ? json_string(c->name) : json_null());
    bad |= json_object_set_new(
        obj, "type", c->type != NULL ? json_string(c->type) : json_null());
    bad |= json_object_set_new(obj, "max_length", json_integer(c->max_length));
    bad |= json_object_set_new(obj, "allowed_values", allowed);
    bad |= json_object_set_new(obj, "nullable", json_boolean(c->nullable));
    bad |= json_object_set_new(obj, "default",
        c->default_value != NULL ? json_string(c->default_value)
                                 : json_null());
    bad |= json_object_set_new(obj, "custom", json_boolean(c->custom));
    bad |= json_object_set_new(
        obj, "import_enabled", json_boolean(c->import_enabled));
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *
columns_json_table(const Bulkupsert__V1__DescribeTableResponse *resp)
{
    json_t *obj = json_object();
    json_t *cols = json_array();
    int     bad = obj == NULL || cols == NULL;

    for (size_t i = 0; !bad && i < resp->n_columns; i++) {
        bad |= json_array_append_new(cols, columns_json_one(resp->columns[i]))
            != 0;
    }
    if (bad) {
        json_decref(cols);
        json_decref(obj);
        return NULL;
    }
    bad |= json_object_set_new(obj, "columns", cols);
    bad |= json_object_set_new(
        obj, "row_width", json_integer(resp->row_width));
    bad |= json_object_set_new(
        obj, "max_row_width", json_integer(resp->max_row_width));
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

// Prints value (consumed; NULL means it could not be built) as one line of
// JSON. Returns an exit code.
static int
columns_dump(const char *cmd, json_t *value)
{
    if (value == NULL) {
        cli_error("%s: out of memory", cmd);
        return CLI_EXIT_FAIL;
    }
    int rv = cli_print_json(cmd, value);
    json_decref(value);
    return rv;
}

// Prints the column a change returned (NULL if the server sent none).
// Returns an exit code.
static int
columns_show(const char *cmd, const Bulkupsert__V1__ColumnInfo *c, int json)
{
    if (c == NULL) {
        cli_error("%s: the server's reply carries no column", cmd);
        return CLI_EXIT_FAIL;
    }
    if (json) {
        int rv = columns_dump(cmd, columns_json_one(c));
        if (rv != CLI_EXIT_OK) {
            return rv;
        }
    } else {
        columns_print_one(c);
    }
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
columns_list(int argc, char *argv[], const struct cli_conn *conn)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, COLUMNS_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const char                    cmd[] = "columns list";
    struct columns_args                  a = { .conn = *conn };
    Bulkupsert__V1__DescribeTableRequest req
        = BULKUPSERT__V1__DESCRIBE_TABLE_REQUEST__INIT;
    Bulkupsert__V1__DescribeTableResponse *resp = NULL;
    bulkupsert_client                     *client = NULL;
    struct bulkupsert_status               st;

    int rv
        = columns_parse(argc, argv, cmd, columns_list_usage, longopts, 0, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, cmd, &client)) != CLI_EXIT_OK) {
        return rv;
    }
    if (bulkupsert_describe_table(client, &req, &resp, &st) != BULKUPSERT_OK) {
        cli_print_status(&st, NULL, 0);
        bulkupsert_status_clear(&st);
        bulkupsert_client_close(client);
        return CLI_EXIT_FAIL;
    }
    bulkupsert_status_clear(&st);
    if (a.json) {
        rv = columns_dump(cmd, columns_json_table(resp));
    } else {
        columns_print_table(resp);
        rv = CLI_EXIT_OK;
    }
    if (rv == CLI_EXIT_OK && fflush(stdout) != 0) {
        rv = CLI_EXIT_FAIL;
    }
    bulkupsert__v1__describe_table_response__free_unpacked(resp, NULL);
    bulkupsert_client_close(client);
    return rv;
}

static int
columns_add(int argc, char *argv[], const struct cli_conn *conn)
{
    static const struct option longopts[] = {
        { "max-length", required_argument, NULL, COLUMNS_OPT_MAX_LENGTH },
        { "disabled", no_argument, NULL, COLUMNS_OPT_DISABLED },
        { "json", no_argument, NULL, COLUMNS_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const char                cmd[] = "columns add";
    struct columns_args              a = { .conn = *conn };
    Bulkupsert__V1__AddColumnRequest req
        = BULKUPSERT__V1__ADD_COLUMN_REQUEST__INIT;
    Bulkupsert__V1__AddColumnResponse *resp = NULL;
    bulkupsert_client                 *client = NULL;
    struct bulkupsert_status           st;

    int rv
        = columns_parse(argc, argv, cmd, columns_add_usage, longopts, 1, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, cmd, &client)) != CLI_EXIT_OK) {
        return rv;
    }
    // The request borrows the name from argv.
    req.name = (char *) a.name;
    if (a.has_max_length) {
        req.has_max_length = 1;
        req.max_length = (uint32_t) a.max_length;
    }
    if (a.disabled) {
        req.has_import_enabled = 1;
        req.import_enabled = 0;
    }
    if (bulkupsert_add_column(client, &req, &resp, &st) != BULKUPSERT_OK) {
        cli_print_status(&st, NULL, 0);
        bulkupsert_status_clear(&st);
        bulkupsert_client_close(client);
        return CLI_EXIT_FAIL;
    }
    bulkupsert_status_clear(&st);
    rv = columns_show(cmd, resp->column, a.json);
    bulkupsert__v1__add_column_response__free_unpacked(resp, NULL);
    bulkupsert_client_close(client);
    return rv;
}

// `columns enable` (enabled) and `columns disable`.
static int
columns_toggle(
    int argc, char *argv[], const struct cli_conn *conn, int enabled)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, COLUMNS_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = enabled ? "columns enable" : "columns disable";
    const char *usage = enabled ? columns_enable_usage : columns_disable_usage;
    struct columns_args                     a = { .conn = *conn };
    Bulkupsert__V1__SetImportEnabledRequest req
        = BULKUPSERT__V1__SET_IMPORT_ENABLED_REQUEST__INIT;
    Bulkupsert__V1__SetImportEnabledResponse *resp = NULL;
    bulkupsert_client                        *client = NULL;
    struct bulkupsert_status                  st;

    int rv = columns_parse(argc, argv, cmd, usage, longopts, 1, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if ((rv = cli_client_open(&a.conn, cmd, &client)) != CLI_EXIT_OK) {
        return rv;
    }
    // The request borrows the name from argv.
    req.column = (char *) a.name;
    req.has_enabled = 1;
    req.enabled = enabled;
    if (bulkupsert_set_import_enabled(client, &req, &resp, &st)
        != BULKUPSERT_OK) {
        cli_print_status(&st, NULL, 0);
        bulkupsert_status_clear(&st);
        bulkupsert_client_close(client);
        return CLI_EXIT_FAIL;
    }
    bulkupsert_status_clear(&st);
    rv = columns_show(cmd, resp->column, a.json);
    bulkupsert__v1__set_import_enabled_response__free_unpacked(resp, NULL);
    bulkupsert_client_close(client);
    return rv;
}

int
cmd_columns(int argc, char *argv[], const struct cli_conn *conn)
{
    if (argc < 2) {
        return cli_usage_error(
            "columns", "missing subcommand (list, add, enable or disable)");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(columns_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) {
        return columns_list(argc - 1, argv + 1, conn);
    }
    if (strcmp(argv[1], "add") == 0) {
        return columns_add(argc - 1, argv + 1, conn);
    }
    if (strcmp(argv[1], "enable") == 0) {
        return columns_toggle(argc - 1, argv + 1, conn, 1);
    }
    if (strcmp(argv[1], "disable") == 0) {
        return columns_toggle(argc - 1, argv + 1, conn, 0);
    }
    return cli_usage_error("columns", "unknown subcommand '%s'", argv[1]);
}
