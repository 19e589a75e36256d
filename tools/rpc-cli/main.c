// SPDX-License-Identifier: MIT
/*
 * rpc-cli: the operator's tool for bulkupsertd. main parses the global
 * options (those before the command), initialises libsodium, and hands
 * the rest of argv to the command, whose argv[0] is its own name. Every
 * command parses its options with getopt_long and answers --help; usage
 * errors exit 2, failed calls 1, an import with records that did not land
 * 3.
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"

#include <sodium.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

// clang-format off
static const char main_usage[] =
    "Usage: rpc-cli [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
    "\n"
    "The operator's tool for bulkupsertd: submit contact records, inspect\n"
    "jobs, and make the keys and access tokens the server checks.\n"
    "\n"
    "Commands:\n"
    "  submit FILE           submit CSV or NDJSON records; prints one job\n"
    "                        id per request of at most 1000 records\n"
    "  import FILE           import a CSV or NDJSON file of any size, with\n"
    "                        progress, --wait, --errors FILE and --resume\n"
    "  job get JOB_ID        show a job's state, timestamps and counts, and\n"
    "                        with --records every record's result\n"
    "  job cancel JOB_ID     cancel a job that is still QUEUED\n"
    "  job list              list the tenant's jobs, newest first, by state\n"
    "                        and acceptance time\n"
    "  job watch JOB_ID      follow a job until it is final; exit 3 unless\n"
    "                        it COMPLETED\n"
    "  columns list          show the tenant's columns and their metadata\n"
    "  columns add NAME      add a custom text column\n"
    "  columns enable NAME   allow a column in submitted files\n"
    "  columns disable NAME  refuse a column in submitted files\n"
    "  keygen                make a signing key pair: secret file + keyring\n"
    "                        line\n"
    "  token issue           sign an access token for one tenant\n"
    "  token revoke          put a token's id on the server's revocation list\n"
    "Run 'rpc-cli COMMAND --help' for a command's options and an example,\n"
    "and 'man rpc-cli' for the whole manual.\n"
    "\n"
    "Global options (the server commands also take them after the\n"
    "command):\n"
    CLI_CONN_HELP
    "  -h, --help            show this help\n"
    "  --version             print the version\n"
    "\n"
    "Environment:\n"
    "  BULKUPSERT_URL        default for --url\n"
    "  BULKUPSERT_TOKEN      default for --token\n"
    "  NO_COLOR              when set and not empty, never use colours\n"
    "                        (they are only used on a terminal anyway)\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  the server refused the call or could not be reached (the error is\n"
    "     printed as 'rpc-cli: CODE (http STATUS): message', one line per\n"
    "     field error after it), or a local write failed\n"
    "  2  usage error or bad input: unknown option or command, no access\n"
    "     token, unreadable or malformed input file (the message names the\n"
    "     line), existing key file, a state file that does not match\n"
    "  3  import: done, but some records did not land (a rejected request;\n"
    "     with --wait also records FAILED or NOT_FOUND, jobs FAILED or\n"
    "     CANCELLED); job watch: the job ended COMPLETED_WITH_ERRORS,\n"
    "     FAILED or CANCELLED\n"
    "  129, 130, 143  import interrupted by SIGHUP, SIGINT or SIGTERM (its\n"
    "     state is saved: run it again with the same --resume STATE to\n"
    "     continue)\n"
    "\n"
    "Example:\n"
    "  rpc-cli keygen --secret ops.key --keyring /etc/bulkupsert/keyring\n"
    "  export BULKUPSERT_TOKEN=\"$(rpc-cli token issue --secret ops.key \\\n"
    "      --tenant acme --perm DataSpace.Manage,DataSpace.Read)\"\n"
    "  rpc-cli --url tcp://10.0.0.5:7450 submit contacts.csv\n"
    "  rpc-cli job get \"$(rpc-cli submit new.ndjson | tail -n 1)\"\n"
    "  rpc-cli import big.csv --resume big.state --wait --errors bad.csv\n"
    "  rpc-cli job list --state failed --since 1d\n"
    "  rpc-cli columns add loyalty_tier --max-length 20\n";
// clang-format on

enum main_opt {
    MAIN_OPT_VERSION = CLI_OPT_FIRST_LOCAL,
};

int
main(int argc, char *argv[])
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, MAIN_OPT_VERSION },
        CLI_CONN_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    struct cli_conn conn;
    int             c;
    int             rv;

    // Set up before anything else runs. nng starts lazily on the first
    // socket, which is safe here: the program has one thread.
    if (sodium_init() < 0) {
        cli_error("cannot initialise libsodium");
        return CLI_EXIT_FAIL;
    }
    cli_conn_init(&conn);
    cli_color_init();

    // "+": stop at the command name; what follows belongs to the command.
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(main_usage, stdout);
            return CLI_EXIT_OK;
        case MAIN_OPT_VERSION:
            printf("rpc-cli %s\n", BU_VERSION);
            return CLI_EXIT_OK;
        case CLI_OPT_URL:
        case CLI_OPT_TOKEN:
        case CLI_OPT_TIMEOUT:
            if ((rv = cli_conn_option(&conn, c, optarg, NULL)) != 0) {
                return rv;
            }
            break;
        default:
            return cli_getopt_error(NULL, c, argv, optind);
        }
    }
    if (optind >= argc) {
        return cli_usage_error(NULL, "missing COMMAND");
    }
    const char *cmd = argv[optind];
    int         cargc = argc - optind;
    char      **cargv = argv + optind;
    if (strcmp(cmd, "submit") == 0) {
        return cmd_submit(cargc, cargv, &conn);
    }
    if (strcmp(cmd, "import") == 0) {
        return cmd_import(cargc, cargv, &conn);
    }
    if (strcmp(cmd, "job") == 0) {
        return cmd_job(cargc, cargv, &conn);
    }
    if (strcmp(cmd, "columns") == 0) {
        return cmd_columns(cargc, cargv, &conn);
    }
    if (strcmp(cmd, "keygen") == 0) {
        return cmd_keygen(cargc, cargv);
    }
    if (strcmp(cmd, "token") == 0) {
        return cmd_token(cargc, cargv);
    }
    if (strcmp(cmd, "help") == 0) {
        fputs(main_usage, stdout);
        return CLI_EXIT_OK;
    }
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
