// SPDX-License-Identifier: MIT
/*
 * `rpc-cli keygen` and `rpc-cli token issue`: the only places where signing
 * keys exist. keygen writes a fresh Ed25519 secret key as a PASERK
 * "k4.secret." line into a new file of mode 0600 (never over an existing
 * one) and appends the public key, after a "# kid ... added ..." comment, to
 * the server's keyring file. token issue signs a v4.public token for one
 * tenant with that secret. Secret bytes and strings are wiped with
 * sodium_memzero before they are released.
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

#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

// clang-format off
static const char keygen_usage[] =
    "Usage: rpc-cli keygen --secret FILE --keyring FILE [--json]\n"
    "\n"
    "Makes a new Ed25519 signing key pair. The secret key goes, as a PASERK\n"
    "k4.secret string, into a new file created with mode 0600 (an existing\n"
    "file is never overwritten). The public key is appended to the keyring\n"
    "file the server reads (created with mode 0644 if missing), after a\n"
    "comment naming its key id. The key id (k4.pid....) is printed on\n"
    "stdout. Keep the secret file off the server: only token issue needs it.\n"
    "\n"
    "Options:\n"
    "  --secret FILE         new file for the secret key\n"
    "  --keyring FILE        keyring file that gets the public key\n"
    "  --json                print {\"kid\", \"public_key\", \"secret_file\",\n"
    "                        \"keyring\"} as one JSON object instead\n"
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli keygen --secret ops-2024.key --keyring /etc/bulkupsert/keys\n"
    "  # then have bulkupsertd re-read its keyring (or restart it)\n";
// clang-format on

// clang-format off
static const char token_usage[] =
    "Usage: rpc-cli token issue --secret FILE --tenant T --perm P[,P...]\n"
    "                           [--ttl DURATION] [--sub NAME] [--jti ID] [--json]\n"
    "       rpc-cli token revoke --revoked FILE (TOKEN | - | --jti ID) [--json]\n"
    "\n"
    "Commands:\n"
    "  issue                 sign an access token for one tenant\n"
    "  revoke                add a token's id to the server's revocation list\n"
    "\n"
    "Run 'rpc-cli token issue --help' or 'rpc-cli token revoke --help' for\n"
    "their options.\n"
    "\n"
    "Example:\n"
    "  rpc-cli token issue --secret ops-2024.key --tenant acme \\\n"
    "      --perm DataSpace.Read\n";
// clang-format on

// clang-format off
static const char token_issue_usage[] =
    "Usage: rpc-cli token issue --secret FILE --tenant T --perm P[,P...]\n"
    "                           [--ttl DURATION] [--sub NAME] [--jti ID] [--json]\n"
    "\n"
    "Signs a PASETO v4.public access token with the secret key in FILE (from\n"
    "rpc-cli keygen) and prints it on stdout. The token names one tenant and\n"
    "its permissions; the server verifies it with the public key from its\n"
    "keyring.\n"
    "\n"
    "Options:\n"
    "  --secret FILE         file holding the k4.secret key\n"
    "  --tenant T            tenant id: lowercase letters, digits, '_' and\n"
    "                        '-', starting with a letter or digit, at most\n"
    "                        63 characters\n"
    "  --perm P[,P...]       DataSpace.Manage (submit jobs) and/or\n"
    "                        DataSpace.Read (read jobs); repeatable;\n"
    "                        --perms is the same option\n"
    "  --ttl DURATION        lifetime: N followed by s, m, h or d\n"
    "                        (default 24h)\n"
    "  --sub NAME            who the token is for (default rpc-cli)\n"
    "  --jti ID              token id, which 'token revoke --jti' takes;\n"
    "                        1-127 bytes, no spaces, not starting with '#'\n"
    "                        (default: 32 random hex digits)\n"
    "  --json                print {\"token\", \"tenant\", \"sub\",\n"
    "                        \"permissions\", \"issued_at\", \"expires_at\",\n"
    "                        \"jti\"} as one JSON object instead\n"
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  rpc-cli token issue --secret ops-2024.key --tenant acme \\\n"
    "      --perm DataSpace.Manage,DataSpace.Read --ttl 7d --sub importer\n";
// clang-format on

enum keys_opt {
    KEYS_OPT_SECRET = CLI_OPT_FIRST_LOCAL,
    KEYS_OPT_KEYRING,
    KEYS_OPT_TENANT,
    KEYS_OPT_PERM,
    KEYS_OPT_TTL,
    KEYS_OPT_SUB,
    KEYS_OPT_JTI,
    KEYS_OPT_JSON,
};

// Largest secret key file read (a k4.secret line is 96 characters).
#define KEYS_SECRET_FILE_MAX 1024

// Writes all n bytes of buf to fd. Returns 0 or -1 with errno set.
static int
keys_write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += w;
        n -= (size_t) w;
    }
    return 0;
}

// Creates path (mode 0600, must not exist) holding line and a newline.
// Returns an exit code after printing any failure.
static int
keys_write_secret(const char *path, const char *line)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            cli_error("keygen: %s already exists; refusing to overwrite a "
                      "secret key (choose another path or remove it)",
                path);
            return CLI_EXIT_USAGE;
        }
        cli_error("keygen: cannot create %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    int failed = keys_write_all(fd, line, strlen(line)) != 0
        || keys_write_all(fd, "\n", 1) != 0 || fsync(fd) != 0;
    int saved = errno;
    if (close(fd) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        cli_error("keygen: cannot write %s: %s", path, strerror(saved));
        unlink(path);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int
keys_append_entry(
    const char *cmd, const char *path, const char *comment, const char *line)
{
    char        last = '\n';
    struct stat sb;

    int fd = open(path, O_CREAT | O_RDWR | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        cli_error("%s: cannot open %s: %s", cmd, path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    int failed = flock(fd, LOCK_EX) != 0 || fstat(fd, &sb) != 0;
    if (!failed && sb.st_size > 0
        && pread(fd, &last, 1, sb.st_size - 1) != 1) {
        failed = 1;
    }
    // One write of the whole entry, under a lock: appends that run at
    // once must not interleave their pieces.
    size_t len = (last != '\n') + strlen(comment) + strlen(line) + 1;
    char  *entry = failed ? NULL : bu_alloc(len + 1);
    if (!failed && entry == NULL) {
        failed = 1;
        errno = ENOMEM;
    }
    if (!failed) {
        snprintf(entry, len + 1, "%s%s%s\n", last != '\n' ? "\n" : "", comment,
            line);
        failed = keys_write_all(fd, entry, len) != 0 || fsync(fd) != 0;
    }
    bu_free(entry);
    int saved = errno;
    if (close(fd) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        cli_error("%s: cannot append to %s: %s", cmd, path, strerror(saved));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

// Appends the comment and public key lines to the keyring at path. Returns
// an exit code after printing any failure.
static int
keys_append_keyring(const char *path, const char *kid, const char *pub)
{
    char when[32];
    char comment[160];

    if (bu_rfc3339_format(bu_now_ms() / 1000, when, sizeof(when)) != BU_OK) {
        snprintf(when, sizeof(when), "unknown time");
    }
    snprintf(comment, sizeof(comment), "# kid %s added %s\n", kid, when);
    return keys_append_entry("keygen", path, comment, pub);
}

// Parses the command line of keygen into *secretp and *keyringp. Returns
// CLI_EXIT_OK, an exit code, or -1 when help was printed.
static int
keygen_parse(int argc, char *argv[], const char **secretp,
    const char **keyringp, int *jsonp)
{
    static const struct option longopts[] = {
        { "secret", required_argument, NULL, KEYS_OPT_SECRET },
        { "keyring", required_argument, NULL, KEYS_OPT_KEYRING },
        { "json", no_argument, NULL, KEYS_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(keygen_usage, stdout);
            return -1;
        case KEYS_OPT_SECRET:
            *secretp = optarg;
            break;
        case KEYS_OPT_KEYRING:
            *keyringp = optarg;
            break;
        case KEYS_OPT_JSON:
            *jsonp = 1;
            break;
        default:
            return cli_getopt_error("keygen", c, argv, optind);
        }
    }
    int rv = cli_operands("keygen", argc, argv, optind, 0, NULL);
    if (rv != CLI_EXIT_OK) {
        return rv;
    }
    if (*secretp == NULL || (*secretp)[0] == '\0') {
        return cli_usage_error("keygen", "missing --secret FILE");
    }
    if (*keyringp == NULL || (*keyringp)[0] == '\0') {
        return cli_usage_error("keygen", "missing --keyring FILE");
    }
    if (strcmp(*secretp, *keyringp) == 0) {
        return cli_usage_error("keygen",
            "--secret and --keyring name the same file; the secret key must "
            "never be in the server's keyring");
    }
    return CLI_EXIT_OK;
}

int
cmd_keygen(int argc, char *argv[])
{
    struct bu_paseto_key secret;
    struct bu_paseto_key pub;
    char                 kid[BU_PASERK_PID_SIZE];
    char                *secret_str = NULL;
    char                *pub_str = NULL;
    const char          *secret_path = NULL;
    const char          *keyring_path = NULL;
    int                  json = 0;

    int rv = keygen_parse(argc, argv, &secret_path, &keyring_path, &json);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    memset(&secret, 0, sizeof(secret));
    memset(&pub, 0, sizeof(pub));
    rv = CLI_EXIT_FAIL;
    int brv = bu_paseto_keypair(&secret, &pub);
    if (brv == BU_OK) {
        brv = bu_paserk_format(&secret, &secret_str);
    }
    if (brv == BU_OK) {
        brv = bu_paserk_format(&pub, &pub_str);
    }
    if (brv == BU_OK) {
        brv = bu_paserk_pid(&pub, kid);
    }
    if (brv != BU_OK) {
        cli_error("keygen: cannot make a key pair: %s", bu_strerror(brv));
        goto out;
    }
    if ((rv = keys_write_secret(secret_path, secret_str)) != CLI_EXIT_OK) {
        goto out;
    }
    rv = keys_append_keyring(keyring_path, kid, pub_str);
    if (rv != CLI_EXIT_OK) {
        // A secret whose public key the server cannot know is useless and
        // would only be mistaken for a working key later.
        unlink(secret_path);
        goto out;
    }
    if (json) {
        json_t *obj
            = json_pack("{s:s, s:s, s:s, s:s}", "kid", kid, "public_key",
                pub_str, "secret_file", secret_path, "keyring", keyring_path);
        rv = obj != NULL ? cli_print_json("keygen", obj) : CLI_EXIT_FAIL;
        json_decref(obj);
    } else {
        printf("%s\n", kid);
    }
    if (fflush(stdout) != 0) {
        rv = CLI_EXIT_FAIL;
    } else if (!json) {
        rv = CLI_EXIT_OK;
    }

out:
    if (secret_str != NULL) {
        sodium_memzero(secret_str, strlen(secret_str));
    }
    bu_free(secret_str);
    bu_free(pub_str);
    bu_paseto_key_wipe(&secret);
    bu_paseto_key_wipe(&pub);
    return rv;
}

// Reads the secret key in path into *keyp. Returns an exit code after
// printing any failure.
static int
keys_read_secret(const char *path, struct bu_paseto_key *keyp)
{
    char        buf[KEYS_SECRET_FILE_MAX + 1];
    struct stat sb;
    size_t      n = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_error("token issue: cannot open %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    int too_open = fstat(fd, &sb) == 0 && (sb.st_mode & 077) != 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            if (r < 0) {
                int saved = errno;
                close(fd);
                sodium_memzero(buf, sizeof(buf));
                cli_error(
                    "token issue: cannot read %s: %s", path, strerror(saved));
                return CLI_EXIT_USAGE;
            }
            break;
        }
        n += (size_t) r;
        if (n == sizeof(buf) - 1) {
            close(fd);
            sodium_memzero(buf, sizeof(buf));
            cli_error("token issue: %s is too large to be a key file", path);
            return CLI_EXIT_USAGE;
        }
    }
    close(fd);
    // One line, maybe with a line end and surrounding blanks.
    while (n > 0
        && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '
            || buf[n - 1] == '\t')) {
        n--;
    }
    buf[n] = '\0';
    char *start = buf;
    while (*start == ' ' || *start == '\t') {
        start++;
    }
    struct bu_paseto_key key;
    int                  brv = bu_paserk_parse(start, &key);
    int is_secret = brv == BU_OK && key.kind == BU_KEY_V4_SECRET;
    int is_public = strncmp(start, "k4.public.", 10) == 0;
    sodium_memzero(buf, sizeof(buf));
    if (!is_secret) {
        if (brv == BU_OK) {
            bu_paseto_key_wipe(&key);
        }
        cli_error("token issue: %s does not hold a k4.secret key%s", path,
            is_public ? " (it holds a public key; use the --secret file "
                        "from keygen)"
                      : "");
        return CLI_EXIT_USAGE;
    }
    if (too_open) {
        fprintf(stderr,
            "rpc-cli: warning: secret key %s is open to other users (mode "
            "%04o); chmod 600 it\n",
            path, (unsigned) (sb.st_mode & 07777));
    }
    *keyp = key;
    bu_paseto_key_wipe(&key);
    return CLI_EXIT_OK;
}

// Parses "N" followed by s, m, h or d (N >= 1, at most a century) into
// seconds. Returns 0 or -1.
static int
keys_parse_ttl(const char *s, int64_t *secsp)
{
    int64_t secs;
    if (bu_duration_parse(s, 100LL * 365 * 86400, &secs) != BU_OK
        || secs == 0) {
        return -1;
    }
    *secsp = secs;
    return 0;
}

// Explains why bu_tenant_valid refused s, into buf.
static void
keys_tenant_reason(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n == 0) {
        snprintf(buf, len, "it is empty");
        return;
    }
    if (n > BU_TENANT_MAX) {
        snprintf(buf, len, "it has %zu characters; at most %d are allowed", n,
            BU_TENANT_MAX);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        int           alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (i == 0 && !alnum) {
            snprintf(
                buf, len, "it must start with a lowercase letter or a digit");
            return;
        }
        if (!alnum && c != '_' && c != '-') {
            if (c >= 0x20 && c < 0x7f) {
                snprintf(buf, len,
                    "'%c' at position %zu is not allowed (only a-z, 0-9, "
                    "'_' and '-')",
                    c, i + 1);
            } else {
                snprintf(buf, len,
                    "byte 0x%02x at position %zu is not allowed (only a-z, "
                    "0-9, '_' and '-')",
                    c, i + 1);
            }
            return;
        }
    }
    snprintf(buf, len, "it is not a valid tenant id");
}

// Adds the permissions named in the comma-separated list to *permsp.
// Returns an exit code after printing any failure.
static int
keys_parse_perms(const char *list, uint32_t *permsp)
{
    const char *p = list;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t      n = comma != NULL ? (size_t) (comma - p) : strlen(p);
        char        name[64];
        if (n == 0) {
            return cli_usage_error(
                "token issue", "--perm '%s' has an empty name", list);
        }
        if (n >= sizeof(name)) {
            return cli_usage_error("token issue",
                "unknown permission '%.*s' (known: DataSpace.Manage, "
                "DataSpace.Read)",
                (int) n, p);
        }
        memcpy(name, p, n);
        name[n] = '\0';
        uint32_t bit = bu_perm_parse(name);
        if (bit == 0) {
            return cli_usage_error("token issue",
                "unknown permission '%s' (known: DataSpace.Manage, "
                "DataSpace.Read)",
                name);
        }
        *permsp |= bit;
        if (comma == NULL) {
            return CLI_EXIT_OK;
        }
        p = comma + 1;
    }
}

struct issue_args {
    int         json;
    const char *secret_path;
    const char *tenant;
    const char *sub;
    const char *jti;
    uint32_t    perms;
    int64_t     ttl;
};

// Parses the command line of `token issue`. Returns CLI_EXIT_OK, an exit
// code, or -1 when help was printed.
static int
issue_parse(int argc, char *argv[], struct issue_args *a)
{
    static const struct option longopts[] = {
        { "secret", required_argument, NULL, KEYS_OPT_SECRET },
        { "tenant", required_argument, NULL, KEYS_OPT_TENANT },
        { "perm", required_argument, NULL, KEYS_OPT_PERM },
        { "perms", required_argument, NULL, KEYS_OPT_PERM },
        { "ttl", required_argument, NULL, KEYS_OPT_TTL },
        { "sub", required_argument, NULL, KEYS_OPT_SUB },
        { "jti", required_argument, NULL, KEYS_OPT_JTI },
        { "json", no_argument, NULL, KEYS_OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    // Only for sizeof: the claim fields bound --sub and --jti.
    struct bu_claims limits;
    char             reason[128];
    int              c;
    int              rv;

    optind = 0; // glibc: rescan from argv[1] with fresh state
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(token_issue_usage, stdout);
            return -1;
        case KEYS_OPT_SECRET:
            a->secret_path = optarg;
            break;
        case KEYS_OPT_TENANT:
            a->tenant = optarg;
            break;
        case KEYS_OPT_PERM:
            if ((rv = keys_parse_perms(optarg, &a->perms)) != CLI_EXIT_OK) {
                return rv;
            }
            break;
        case KEYS_OPT_TTL:
            if (keys_parse_ttl(optarg, &a->ttl) != 0) {
                return cli_usage_error("token issue",
                    "--ttl '%s' is not a duration like 90s, 30m, 24h or 7d",
                    optarg);
            }
            break;
        case KEYS_OPT_SUB:
            a->sub = optarg;
            break;
        case KEYS_OPT_JTI:
            a->jti = optarg;
            break;
        case KEYS_OPT_JSON:
            a->json = 1;
            break;
        default:
            return cli_getopt_error("token issue", c, argv, optind);
        }
    }
    if ((rv = cli_operands("token issue", argc, argv, optind, 0, NULL))
        != CLI_EXIT_OK) {
        return rv;
    }
    if (a->secret_path == NULL) {
        return cli_usage_error("token issue", "missing --secret FILE");
    }
    if (a->tenant == NULL) {
        return cli_usage_error("token issue", "missing --tenant T");
    }
    if (!bu_tenant_valid(a->tenant)) {
        keys_tenant_reason(a->tenant, reason, sizeof(reason));
        return cli_usage_error(
            "token issue", "tenant '%s' is refused: %s", a->tenant, reason);
    }
    if (a->perms == 0) {
        return cli_usage_error("token issue",
            "missing --perm (DataSpace.Manage and/or DataSpace.Read)");
    }
    if (a->sub[0] == '\0' || strlen(a->sub) >= sizeof(limits.sub)) {
        return cli_usage_error("token issue",
            "--sub must have 1 to %zu characters", sizeof(limits.sub) - 1);
    }
    if (a->jti != NULL
        && (a->jti[0] == '\0' || strlen(a->jti) >= sizeof(limits.jti))) {
        return cli_usage_error("token issue",
            "--jti must have 1 to %zu characters", sizeof(limits.jti) - 1);
    }
    const char *fault = a->jti != NULL ? bu_keyring_jti_fault(a->jti) : NULL;
    if (fault != NULL) {
        return cli_usage_error("token issue",
            "--jti '%s' could not be revoked: it %s", a->jti, fault);
    }
    return CLI_EXIT_OK;
}

// issue_print_json prints the token and the claims it carries as one JSON
// object. Returns an exit code.
static int
issue_print_json(const char *token, const struct bu_claims *claims)
{
    char    iat[32], exp[32];
    json_t *perms = json_array();
    if (perms != NULL && (claims->perms & BU_PERM_MANAGE)) {
        json_array_append_new(perms, json_string("DataSpace.Manage"));
    }
    if (perms != NULL && (claims->perms & BU_PERM_READ)) {
        json_array_append_new(perms, json_string("DataSpace.Read"));
    }
    bu_rfc3339_format(claims->iat, iat, sizeof(iat));
    bu_rfc3339_format(claims->exp, exp, sizeof(exp));
    json_t *obj = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "token", token,
        "tenant", claims->tenant, "sub", claims->sub, "permissions", perms,
        "issued_at", iat, "expires_at", exp);
    if (obj == NULL) {
        cli_error("token issue: out of memory");
        return CLI_EXIT_FAIL;
    }
    json_object_set_new(obj, "jti", json_string(claims->jti));
    int rv = cli_print_json("token issue", obj);
    json_decref(obj);
    return rv;
}

static int
token_issue(int argc, char *argv[])
{
    struct issue_args    a = { .sub = "rpc-cli", .ttl = 24 * 3600 };
    struct bu_paseto_key secret;
    struct bu_claims     claims;
    char                *token = NULL;

    int rv = issue_parse(argc, argv, &a);
    if (rv != CLI_EXIT_OK) {
        return rv < 0 ? CLI_EXIT_OK : rv;
    }
    memset(&secret, 0, sizeof(secret));
    if ((rv = keys_read_secret(a.secret_path, &secret)) != CLI_EXIT_OK) {
        return rv;
    }
    memset(&claims, 0, sizeof(claims));
    snprintf(claims.sub, sizeof(claims.sub), "%s", a.sub);
    snprintf(claims.tenant, sizeof(claims.tenant), "%s", a.tenant);
    if (a.jti != NULL) {
        snprintf(claims.jti, sizeof(claims.jti), "%s", a.jti);
    } else {
        // Chosen here rather than by bu_token_issue, so that it can be
        // printed: it is what revoking this token takes.
        uint8_t rnd[16];
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(claims.jti, sizeof(claims.jti), rnd, sizeof(rnd));
    }
    claims.perms = a.perms;
    claims.iat = bu_now_ms() / 1000;
    claims.exp = claims.iat + a.ttl;

    int brv = bu_token_issue(&secret, &claims, &token);
    bu_paseto_key_wipe(&secret);
    if (brv != BU_OK) {
        cli_error("token issue: cannot sign the token: %s", bu_strerror(brv));
        return CLI_EXIT_FAIL;
    }
    rv = a.json ? issue_print_json(token, &claims) : CLI_EXIT_OK;
    if (!a.json) {
        printf("%s\n", token);
    }
    if (fflush(stdout) != 0) {
        rv = CLI_EXIT_FAIL;
    }
    sodium_memzero(token, strlen(token));
    bu_free(token);
    return rv;
}

int
cmd_token(int argc, char *argv[])
{
    if (argc < 2) {
        return cli_usage_error("token", "missing subcommand (issue, revoke)");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(token_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "issue") == 0) {
        return token_issue(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "revoke") == 0) {
        return token_revoke(argc - 1, argv + 1);
    }
    return cli_usage_error("token", "unknown subcommand '%s'", argv[1]);
}
