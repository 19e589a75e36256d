// SPDX-License-Identifier: MIT
/*
 * `rpc-cli token revoke`: appends a token's id (its "jti" claim) to the
 * revocation list bulkupsertd reads (--revoked, default DATA/revoked), after
 * a comment saying when and, when the token itself is given, for which
 * tenant and subject and until when. The token's signature is not checked:
 * revoking needs no trust in it, only its jti. The server refuses the token
 * once it re-reads the list (SIGHUP).
 */
// getopt_long is a GNU/BSD extension; _DEFAULT_SOURCE declares it.
#define _DEFAULT_SOURCE

#include "cli.h"

#include "auth/keyring.h"
#include "auth/paseto.h"
#include "auth/token.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"

#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

// clang-format off
static const char revoke_usage[] =
    "Usage: rpc-cli token revoke --revoked FILE (TOKEN | - | --jti ID) [--json]\n"
    "\n"
    "Puts a token's id (its jti claim) on the revocation list that\n"
    "bulkupsertd reads (its --revoked file, default DATA/revoked): one line,\n"
    "after a comment saying when and, from a TOKEN, its tenant, subject and\n"
    "expiry. The file is created with mode 0644 if missing. The server\n"
    "refuses the token once it re-reads the list: send it SIGHUP. Only the\n"
    "jti is read from TOKEN; its signature is not checked. The jti is\n"
    "printed on stdout.\n"
    "\n"
    "Options:\n"
    "  --revoked FILE        the server's revocation list\n"
    "  --jti ID              revoke this token id (as 'token issue --json'\n"
    "                        printed it) instead of reading a TOKEN\n"
    "  -                     read the TOKEN from standard input, which keeps\n"
    "                        it out of the shell's history\n"
    "  --json                print {\"jti\", \"revoked\", \"tenant\", \"sub\",\n"
    "                        \"expires_at\"} as one JSON object instead (the\n"
    "                        last three only from a TOKEN)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli token revoke --revoked /var/lib/bu/revoked - < leaked.token\n"
    "  kill -HUP \"$(pidof bulkupsertd)\"\n";
// clang-format on

enum revoke_opt {
    REVOKE_OPT_REVOKED = CLI_OPT_FIRST_LOCAL,
    REVOKE_OPT_JTI,
    REVOKE_OPT_JSON,
};

struct revoke_args {
    int         json;
    const char *revoked_path;
    const char *jti;
    const char *token; // operand: the token, or "-"
};

// What the list's comment says about a token given whole.
struct revoke_info {
    char jti[BU_KEYRING_JTI_MAX + 1];
    char tenant[BU_TENANT_MAX + 1];
    char sub[64];
    char expires[32];
};

// Parses the command line. Returns CLI_EXIT_OK, an exit code, or -1 when
// help was printed.
static int
revoke_parse(int argc, char *argv[], struct revoke_args *a)
{
    static const struct option longopts[] = {
        { "revoked", required_argument, NULL, REVOKE_OPT_REVOKED },
        { "jti", required_argument, NULL, REVOKE_OPT_JTI },
        { "json", no_argument, NULL, REVOKE_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(revoke_usage, stdout);
            return -1;
        case REVOKE_OPT_REVOKED:
            a->revoked_path = optarg;
            break;
        case REVOKE_OPT_JTI:
            a->jti = optarg;
            break;
        case REVOKE_OPT_JSON:
            a->json = 1;
            break;
        default:
            return cli_getopt_error("token revoke", c, argv, optind);
        }
    }
    int rv = cli_operands("token revoke", argc, argv, optind,
        a->jti != NULL ? 0 : 1, "TOKEN (or - to read it from stdin)");
    if (rv != CLI_EXIT_OK) {
        return rv;
    }
    if (a->jti == NULL) {
        a->token = argv[optind];
    }
    if (a->revoked_path == NULL) {
        return cli_usage_error("token revoke",
            "missing --revoked FILE (the server's list, by default "
            "DATA/revoked)");
    }
    const char *fault = a->jti != NULL ? bu_keyring_jti_fault(a->jti) : NULL;
    if (fault != NULL) {
        return cli_usage_error("token revoke",
            "--jti '%s' is not a token id: it %s", a->jti, fault);
    }
    return CLI_EXIT_OK;
}

// revoke_read_stdin reads one token from standard input into buf, without
// the surrounding white space. Returns an exit code.
static int
revoke_read_stdin(char *buf, size_t size)
{
    size_t n = fread(buf, 1, size - 1, stdin);
    if (ferror(stdin)) {
        cli_error("token revoke: cannot read the token from stdin");
        return CLI_EXIT_FAIL;
    }
    if (n == size - 1 && fgetc(stdin) != EOF) {
        cli_error("token revoke: stdin holds more than a token (over %zu "
                  "bytes)",
            size - 2);
        return CLI_EXIT_USAGE;
    }
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL) {
        n--;
    }
    buf[n] = '\0';
    size_t skip = strspn(buf, " \t\r\n");
    memmove(buf, buf + skip, n - skip + 1);
    return CLI_EXIT_OK;
}

// revoke_claim_copy copies the string claim name of root into buf when it
// is there, fits and has no control characters (it goes into a comment
// line of the list); buf stays empty otherwise.
static void
revoke_claim_copy(json_t *root, const char *name, char *buf, size_t size)
{
    const char *v = json_string_value(json_object_get(root, name));
    if (v == NULL || strlen(v) >= size) {
        return;
    }
    for (const unsigned char *p = (const unsigned char *) v; *p; p++) {
        if (*p < ' ' || *p == 0x7f) {
            return;
        }
    }
    memcpy(buf, v, strlen(v) + 1);
}

// revoke_read_token reads the jti, tenant, sub and exp of token into info.
// Returns an exit code after printing why there is no jti to revoke.
static int
revoke_read_token(const char *token, struct revoke_info *info)
{
    uint8_t *m = NULL;
    size_t   mlen = 0;
    int      rv = bu_paseto_v4_message_unverified(token, &m, &mlen);
    if (rv != BU_OK) {
        cli_error("token revoke: not a v4.public token: %s",
            rv == BU_EPARSE ? "malformed" : bu_strerror(rv));
        return rv == BU_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
    }
    json_t *root = json_loadb((const char *) m, mlen, 0, NULL);
    bu_free(m);
    if (!json_is_object(root)) {
        json_decref(root);
        cli_error("token revoke: the token's claims are not a JSON object");
        return CLI_EXIT_USAGE;
    }
    const char *jti = json_string_value(json_object_get(root, "jti"));
    if (jti == NULL || bu_keyring_jti_fault(jti) != NULL) {
        json_decref(root);
        cli_error("token revoke: the token has %s: the server refuses such "
                  "tokens anyway (to stop its key's other tokens too, take "
                  "the key out of the server's keyring)",
            jti == NULL ? "no jti" : "a jti no list line can hold");
        return CLI_EXIT_USAGE;
    }
    memcpy(info->jti, jti, strlen(jti) + 1);
    revoke_claim_copy(root, "tenant", info->tenant, sizeof(info->tenant));
    revoke_claim_copy(root, "sub", info->sub, sizeof(info->sub));
    revoke_claim_copy(root, "exp", info->expires, sizeof(info->expires));
    json_decref(root);
    return CLI_EXIT_OK;
}

// revoke_print writes the result on stdout. Returns an exit code.
static int
revoke_print(const struct revoke_args *a, const struct revoke_info *info,
    const char *when)
{
    if (!a->json) {
        printf("%s\n", info->jti);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    json_t *obj = json_pack("{s:s, s:s}", "jti", info->jti, "revoked", when);
    if (obj == NULL) {
        cli_error("token revoke: out of memory");
        return CLI_EXIT_FAIL;
    }
    if (info->tenant[0] != '\0') {
        json_object_set_new(obj, "tenant", json_string(info->tenant));
    }
    if (info->sub[0] != '\0') {
        json_object_set_new(obj, "sub", json_string(info->sub));
    }
    if (info->expires[0] != '\0') {
        json_object_set_new(obj, "expires_at", json_string(info->expires));
    }
    int rv = cli_print_json("token revoke", obj);
    json_decref(obj);
    return rv;
}

int
token_revoke(int argc, char *argv[])
{
    struct revoke_args a = { .json = 0 };
    struct revoke_info info = { .jti = "" };
    char               token[BU_TOKEN_MAX_BYTES + 2];
    char               when[32];
    char               comment[512];

    int rv = revoke_parse(argc, argv, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    if (a.jti != NULL) {
        snprintf(info.jti, sizeof(info.jti), "%s", a.jti);
    } else {
        if (strcmp(a.token, "-") == 0) {
            rv = revoke_read_stdin(token, sizeof(token));
        } else {
            rv = snprintf(token, sizeof(token), "%s", a.token)
                    < (int) sizeof(token) - 1
                ? CLI_EXIT_OK
                : cli_usage_error("token revoke", "TOKEN is too long");
        }
        if (rv == CLI_EXIT_OK) {
            rv = revoke_read_token(token, &info);
        }
        sodium_memzero(token, sizeof(token));
        if (rv != CLI_EXIT_OK) {
            return rv;
        }
    }
    if (bu_rfc3339_format(bu_now_ms() / 1000, when, sizeof(when)) != BU_OK) {
        snprintf(when, sizeof(when), "unknown time");
    }
    if (info.tenant[0] != '\0') {
        snprintf(comment, sizeof(comment),
            "# revoked %s: tenant %s, sub %s, expires %s\n", when, info.tenant,
            info.sub[0] != '\0' ? info.sub : "(none)",
            info.expires[0] != '\0' ? info.expires : "(unknown)");
    } else {
        snprintf(comment, sizeof(comment), "# revoked %s\n", when);
    }
    rv = keys_append_entry("token revoke", a.revoked_path, comment, info.jti);
    if (rv != CLI_EXIT_OK) {
        return rv;
    }
    return revoke_print(&a, &info, when);
}
