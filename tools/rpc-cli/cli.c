// SPDX-License-Identifier: MIT
/*
 * Helpers every rpc-cli command shares: connection defaults and options,
 * opening the client, and the error output. A failed call prints one line
 * with the status code, the HTTP status and the server's message, then one
 * line per field error, so that an operator can find the record and column
 * at fault without reading the protocol.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Whether standard output gets colours; set once by cli_color_init.
static int cli_color;

void
cli_color_init(void)
{
    const char *no_color = getenv("NO_COLOR");
    const char *term = getenv("TERM");

    cli_color = (no_color == NULL || no_color[0] == '\0')
        && (term == NULL || strcmp(term, "dumb") != 0)
        && isatty(STDOUT_FILENO);
}

int
cli_stderr_terminal(void)
{
    const char *term = getenv("TERM");

    return term != NULL && term[0] != '\0' && strcmp(term, "dumb") != 0
        && isatty(STDERR_FILENO);
}

const char *
cli_sgr(const char *seq)
{
    return cli_color ? seq : "";
}

const char *
cli_state_sgr(const char *state)
{
    if (strcmp(state, "COMPLETED") == 0) {
        return cli_sgr(CLI_SGR_GREEN);
    }
    if (strcmp(state, "COMPLETED_WITH_ERRORS") == 0
        || strcmp(state, "CANCELLED") == 0) {
        return cli_sgr(CLI_SGR_YELLOW);
    }
    if (strcmp(state, "FAILED") == 0) {
        return cli_sgr(CLI_SGR_RED);
    }
    return "";
}

void
cli_conn_init(struct cli_conn *conn)
{
    const char *url = getenv("BULKUPSERT_URL");
    const char *token = getenv("BULKUPSERT_TOKEN");

    conn->url = url != NULL && url[0] != '\0' ? url : BULKUPSERT_DEFAULT_URL;
    conn->token = token != NULL && token[0] != '\0' ? token : NULL;
    conn->timeout_ms = BULKUPSERT_DEFAULT_TIMEOUT_MS;
}

int
cli_parse_long(const char *s, long min, long max, long *outp)
{
    char *end;

    if (s == NULL || s[0] == '\0' || s[0] == ' ' || s[0] == '+') {
        return -1;
    }
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *outp = v;
    return 0;
}

int
cli_conn_option(
    struct cli_conn *conn, int opt, const char *arg, const char *cmd)
{
    long ms;

    switch (opt) {
    case CLI_OPT_URL:
        if (arg[0] == '\0') {
            return cli_usage_error(cmd, "--url is empty");
        }
        conn->url = arg;
        return CLI_EXIT_OK;
    case CLI_OPT_TOKEN:
        if (arg[0] == '\0') {
            return cli_usage_error(cmd, "--token is empty");
        }
        conn->token = arg;
        return CLI_EXIT_OK;
    case CLI_OPT_TIMEOUT:
        if (cli_parse_long(arg, 1, 24L * 3600 * 1000, &ms) != 0) {
            return cli_usage_error(cmd,
                "--timeout '%s' is not a number of milliseconds "
                "(1 to 86400000)",
                arg);
        }
        conn->timeout_ms = (int) ms;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(cmd, "unexpected option");
    }
}

int
cli_client_open(
    const struct cli_conn *conn, const char *cmd, bulkupsert_client **clientp)
{
    bulkupsert_client *client = NULL;

    if (conn->token == NULL) {
        return cli_usage_error(cmd,
            "no access token: set BULKUPSERT_TOKEN or pass --token "
            "(make one with 'rpc-cli token issue')");
    }
    int rv = bulkupsert_client_open(&client, conn->url, conn->token);
    if (rv == BULKUPSERT_INVALID_ARGUMENT) {
        return cli_usage_error(cmd,
            "'%s' is not a server address (use tcp://HOST:PORT or "
            "ipc:///PATH)",
            conn->url);
    }
    if (rv != BULKUPSERT_OK) {
        cli_error("%s: cannot open a client for %s: %s", cmd, conn->url,
            bulkupsert_code_name(rv));
        return CLI_EXIT_FAIL;
    }
    bulkupsert_client_set_timeout(client, conn->timeout_ms);
    *clientp = client;
    return CLI_EXIT_OK;
}

// Writes the message of fmt and ap to stderr through cli_text.
static void
cli_vshow(const char *fmt, va_list ap)
{
    char    small[512];
    va_list copy;

    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0) {
        return;
    }
    if ((size_t) n < sizeof(small)) {
        fputs(cli_text(small), stderr);
        return;
    }
    char *big = malloc((size_t) n + 1);
    if (big == NULL) {
        fputs(cli_text(small), stderr); // the message, cut short
        return;
    }
    vsnprintf(big, (size_t) n + 1, fmt, ap);
    fputs(cli_text(big), stderr);
    free(big);
}

int
cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "rpc-cli%s%s: ", cmd != NULL ? " " : "",
        cmd != NULL ? cmd : "");
    va_start(ap, fmt);
    cli_vshow(fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'rpc-cli%s%s --help'.\n", cmd != NULL ? " " : "",
        cmd != NULL ? cmd : "");
    return CLI_EXIT_USAGE;
}

int
cli_getopt_error(const char *cmd, int c, char *const argv[], int ind)
{
    // getopt_long has moved optind past the offending argument.
    const char *arg = ind > 0 ? argv[ind - 1] : "?";
    if (c == ':') {
        return cli_usage_error(cmd, "option '%s' needs a value", arg);
    }
    return cli_usage_error(cmd, "unknown option '%s'", arg);
}

void
cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("rpc-cli: ", stderr);
    va_start(ap, fmt);
    cli_vshow(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
cli_print_status(
    const struct bulkupsert_status *status, const long *lines, size_t nlines)
{
    const char *message = cli_text(status->message);

    // Transport errors have no HTTP status; "(http 0)" would only confuse.
    if (status->http_status != 0) {
        fprintf(stderr, "rpc-cli: %s (http %u): %s\n",
            bulkupsert_code_name(status->code), status->http_status, message);
    } else {
        fprintf(stderr, "rpc-cli: %s: %s\n",
            bulkupsert_code_name(status->code), message);
    }
    for (size_t i = 0; i < status->nerrors; i++) {
        const struct bulkupsert_field_error *fe = &status->errors[i];
        const char                          *sep = "";
        fputs("  ", stderr);
        if (fe->record_index >= 0) {
            fprintf(stderr, "record %lld", (long long) fe->record_index);
            sep = " ";
        }
        if (fe->contact_key != NULL) {
            fprintf(stderr, "%s(key %s)", sep, cli_text(fe->contact_key));
            sep = " ";
        }
        if (fe->column != NULL) {
            fprintf(stderr, "%scolumn %s", sep, cli_text(fe->column));
            sep = " ";
        }
        fprintf(
            stderr, "%s%s", sep[0] != '\0' ? ": " : "", cli_text(fe->reason));
        if (lines != NULL && fe->record_index >= 0
            && (uint64_t) fe->record_index < nlines) {
            fprintf(stderr, " (line %ld)", lines[fe->record_index]);
        }
        fputc('\n', stderr);
    }
    if (status->retry_after_ms != 0) {
        fprintf(stderr, "  retry after %u ms\n", status->retry_after_ms);
    }
}

// Returns the length of the valid UTF-8 sequence at s (1 to 4; ASCII is
// 1), or 0 when s does not start one: RFC 3629, so no overlong forms, no
// surrogates, nothing above U+10FFFF, and no NUL (the end of s).
static size_t
cli_utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t   n;
    unsigned min;
    unsigned cp;

    if (c == 0) {
        return 0;
    }
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0; // also stops at the NUL
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

// Returns the length of the printable character at s (1 to 4), or 0 when
// its first byte is to be shown as \xNN (see cli_text).
static size_t
cli_text_len(const unsigned char *s)
{
    size_t n = cli_utf8_len(s);

    if (n == 1 && (s[0] < 0x20 || s[0] == 0x7f)) {
        return 0; // C0 control or DEL
    }
    if (n == 2 && s[0] == 0xc2 && s[1] < 0xa0) {
        return 0; // C1 control, U+0080 to U+009F
    }
    return n;
}

const char *
cli_text(const char *s)
{
    static char         *ring[CLI_TEXT_RING];
    static size_t        next;
    const unsigned char *p = (const unsigned char *) s;
    size_t               len;
    size_t               n;

    if (s == NULL) {
        return "";
    }
    for (len = 0; p[len] != '\0'; len += n) {
        if ((n = cli_text_len(p + len)) == 0) {
            break;
        }
    }
    if (p[len] == '\0') {
        return s; // nothing to escape
    }
    len += strlen(s + len);
    char *buf = malloc(len * 4 + 1); // each byte grows to at most four
    if (buf == NULL) {
        return "(unprintable)";
    }
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        if ((n = cli_text_len(p + i)) == 0) {
            out += (size_t) sprintf(buf + out, "\\x%02x", p[i]);
            i++;
            continue;
        }
        memcpy(buf + out, p + i, n);
        out += n;
        i += n;
    }
    buf[out] = '\0';
    free(ring[next]);
    ring[next] = buf;
    next = (next + 1) % CLI_TEXT_RING;
    return buf;
}

json_t *
cli_json_text(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t               len = strlen(s);

    // Each byte grows to at most four characters.
    char *buf = malloc(len * 4 + 1);
    if (buf == NULL) {
        return NULL;
    }
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = cli_utf8_len(p + i);
        if (n == 0) {
            out += (size_t) sprintf(buf + out, "\\x%02x", p[i]);
            i++;
            continue;
        }
        memcpy(buf + out, p + i, n);
        out += n;
        i += n;
    }
    json_t *v = json_stringn(buf, out);
    free(buf);
    return v;
}

int
cli_print_json(const char *cmd, const json_t *value)
{
    if (json_dumpf(value, stdout, JSON_PRESERVE_ORDER) != 0
        || putchar('\n') == EOF) {
        cli_error("%s: cannot write the JSON output", cmd);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int
cli_operands(const char *cmd, int argc, char *const argv[], int ind, int want,
    const char *what)
{
    if (argc - ind < want) {
        return cli_usage_error(cmd, "missing %s", what);
    }
    if (argc - ind > want) {
        return cli_usage_error(
            cmd, "unexpected argument '%s'", argv[ind + want]);
    }
    return CLI_EXIT_OK;
}
