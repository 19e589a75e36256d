// SPDX-License-Identifier: MIT
/*
 * Shared parts of rpc-cli: exit codes, the connection options every server
 * command accepts (--url, --token, --timeout, with BULKUPSERT_URL and
 * BULKUPSERT_TOKEN as defaults), usage-error and status printing, colours
 * (only on a terminal, never with NO_COLOR), and the entry point of each
 * command. The program is single-threaded; nothing here is meant for use
 * from several threads.
 */
#ifndef BU_RPC_CLI_CLI_H
#define BU_RPC_CLI_CLI_H

#include <stddef.h>

#include <jansson.h>

#include "bulkupsert.h"

#ifndef BU_VERSION
#define BU_VERSION "0.1.0"
#endif

// Exit codes, documented in the top-level --help.
enum cli_exit {
    CLI_EXIT_OK = 0,    // the command did what was asked
    CLI_EXIT_FAIL = 1,  // the server or transport failed, or a local write
    CLI_EXIT_USAGE = 2, // bad command line or bad input data
    // The work ran to its end, but not cleanly. import: some records did
    // not land (rejected requests; with --wait records FAILED or NOT_FOUND,
    // jobs FAILED or CANCELLED). job watch: the job ended
    // COMPLETED_WITH_ERRORS, FAILED or CANCELLED.
    CLI_EXIT_UNCLEAN = 3,
    // import stopped by SIGHUP (129), SIGINT (130) or SIGTERM (143): 128 +
    // the signal, as a shell reports it. The state file lets --resume
    // continue.
    CLI_EXIT_SIGNAL_BASE = 128,
};

// getopt_long values of the options that have no short form.
enum cli_opt {
    CLI_OPT_URL = 256,
    CLI_OPT_TOKEN,
    CLI_OPT_TIMEOUT,
    CLI_OPT_FIRST_LOCAL, // commands number their own options from here
};

// The long options of struct cli_conn, for a command's getopt_long table
// (the file using it includes <getopt.h>).
// clang-format off
#define CLI_CONN_LONGOPTS                                                    \
    { "url", required_argument, NULL, CLI_OPT_URL },                         \
    { "token", required_argument, NULL, CLI_OPT_TOKEN },                     \
    { "timeout", required_argument, NULL, CLI_OPT_TIMEOUT }
// clang-format on

// Help text of the connection options, shared by every server command.
// clang-format off
#define CLI_CONN_HELP                                                        \
    "  --url URL             server address (env BULKUPSERT_URL; default\n"  \
    "                        " BULKUPSERT_DEFAULT_URL ")\n"                   \
    "  --token TOKEN         access token (env BULKUPSERT_TOKEN, the safer\n" \
    "                        way: arguments are visible in ps)\n"            \
    "  --timeout MS          give up on a call after MS milliseconds\n"      \
    "                        (default 30000)\n"
// clang-format on

// Where and how to call the server. The strings are borrowed from argv or
// the environment.
struct cli_conn {
    const char *url;
    const char *token;
    int         timeout_ms;
};

// cli_conn_init fills conn with the defaults: the environment variables,
// then the built-in URL and timeout.
void cli_conn_init(struct cli_conn *conn);

// cli_conn_option applies one connection option (opt is a CLI_OPT_ value)
// with its argument. Returns CLI_EXIT_OK, or CLI_EXIT_USAGE after printing
// why the value is refused.
int cli_conn_option(
    struct cli_conn *conn, int opt, const char *arg, const char *cmd);

// cli_client_open opens a client for conn. A missing token is refused here
// rather than by the server. Returns CLI_EXIT_OK with *clientp (release with
// bulkupsert_client_close), or an exit code after printing the reason.
int cli_client_open(
    const struct cli_conn *conn, const char *cmd, bulkupsert_client **clientp);

// cli_usage_error prints "rpc-cli CMD: <message>" and a pointer to the
// command's --help on stderr. Returns CLI_EXIT_USAGE.
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// cli_operands checks that exactly want (0 or 1) operands follow the
// options at argv[ind]: "missing WHAT" when there are fewer, "unexpected
// argument 'X'" when there are more. Returns CLI_EXIT_OK, or
// CLI_EXIT_USAGE after printing which (see cli_usage_error).
int cli_operands(const char *cmd, int argc, char *const argv[], int ind,
    int want, const char *what);

// cli_getopt_error reports what getopt_long returned as c ('?' for an
// unknown option, ':' for a missing value), given the argv it scanned and
// its optind. Returns CLI_EXIT_USAGE.
int cli_getopt_error(const char *cmd, int c, char *const argv[], int ind);

// cli_error prints "rpc-cli: <message>" on stderr, the message shown
// through cli_text (so no control character of a name or of data in it
// reaches the terminal). cli_usage_error shows its message the same way.
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// cli_text returns s as it may be shown in human (not --json) output:
// unchanged when it is printable UTF-8, otherwise a copy in which every
// control character (C0, DEL, C1 U+0080 to U+009F) and every byte that is
// not part of valid UTF-8 is written as the four characters \xNN, so that
// data cannot move the cursor, retitle or clear the terminal. NULL gives
// "". The copy stays valid until CLI_TEXT_RING more copies are made (so
// one printf may show that many); when out of memory, "(unprintable)".
const char *cli_text(const char *s);
#define CLI_TEXT_RING 8

// cli_print_json writes value as one line of JSON and a newline on stdout
// (value stays the caller's). Returns CLI_EXIT_OK, or CLI_EXIT_FAIL after
// printing "rpc-cli: CMD: cannot write the JSON output".
int cli_print_json(const char *cmd, const json_t *value);

// cli_json_text returns a JSON string of s (NUL-terminated bytes, such as
// a file name) that jansson can always write: valid UTF-8 is kept, and each
// byte that is not part of valid UTF-8 becomes the four characters \xNN.
// Returns a new reference (release with json_decref), or NULL only when
// out of memory.
json_t *cli_json_text(const char *s);

// cli_print_status prints a failed call's status on stderr:
//   rpc-cli: CODE (http N): message
//     record I (key K) column C: reason
// When lines is not NULL, lines[I] (for I < nlines) is the input line of
// record I and is appended to its error.
void cli_print_status(
    const struct bulkupsert_status *status, const long *lines, size_t nlines);

// ANSI SGR sequences for cli_sgr.
#define CLI_SGR_BOLD   "\033[1m"
#define CLI_SGR_RED    "\033[31m"
#define CLI_SGR_GREEN  "\033[32m"
#define CLI_SGR_YELLOW "\033[33m"
#define CLI_SGR_RESET  "\033[0m"

// cli_color_init decides once whether standard output gets colours: only
// when it is a terminal, TERM is not "dumb" and NO_COLOR is unset or empty
// (https://no-color.org). main calls it before any command runs.
void cli_color_init(void);

// cli_stderr_terminal returns whether standard error is a terminal that
// understands carriage return and erase-line (TERM set and not "dumb"),
// so that a progress bar may redraw itself in place. NO_COLOR does not
// matter here: the bar has no colours.
int cli_stderr_terminal(void);

// cli_sgr returns seq (a CLI_SGR_ string) when standard output gets
// colours, and "" otherwise, so that callers can print it unconditionally.
const char *cli_sgr(const char *seq);

// cli_state_sgr returns the colour of a job state name (green COMPLETED,
// yellow COMPLETED_WITH_ERRORS and CANCELLED, red FAILED), through cli_sgr.
const char *cli_state_sgr(const char *state);

// cli_parse_long reads s as a decimal integer in [min, max] into *outp.
// Returns 0, or -1 (nothing written) when s is not such a number.
int cli_parse_long(const char *s, long min, long max, long *outp);

// The commands. argv[0] is the command's own name; each returns an exit
// code. conn holds the global options given before the command.
int cmd_submit(int argc, char *argv[], const struct cli_conn *conn);
int cmd_import(int argc, char *argv[], const struct cli_conn *conn);
int cmd_job(int argc, char *argv[], const struct cli_conn *conn);
int cmd_columns(int argc, char *argv[], const struct cli_conn *conn);
int cmd_keygen(int argc, char *argv[]);
int cmd_token(int argc, char *argv[]);
// `token revoke` (token_revoke.c); argv[0] is "revoke".
int token_revoke(int argc, char *argv[]);

// keys_append_entry appends a comment (ending in a newline) and one line
// to the text file at path (created with mode 0644 when missing), first
// ending an unterminated last line, in one write under an exclusive flock
// (appends that run at once do not interleave), and syncs it. Returns an exit
// code after printing any failure as "CMD: ...".
int keys_append_entry(
    const char *cmd, const char *path, const char *comment, const char *line);

#endif // BU_RPC_CLI_CLI_H
