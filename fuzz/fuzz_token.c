// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for token parsing and verification (auth/). The first
 * input byte is a mode; the rest, NUL-terminated, is taken as a token and
 * goes through bu_paseto_v4_footer, bu_paseto_v4_verify against a fixed
 * public key, and bu_token_verify against a keyring holding that key.
 * Mode bits add:
 *   TOKEN_MODE_PASERK     the same string through bu_paserk_parse;
 *   TOKEN_MODE_ASSERTION  verify with the implicit assertion of vector
 *                         4-S-3 instead of an empty one;
 *   TOKEN_MODE_SIGN       the rest as "claims\nfooter\nassertion", signed
 *                         with the fixed secret key and verified again, so
 *                         that the claim and footer checks behind the
 *                         signature see hostile JSON too;
 *   TOKEN_MODE_NO_FOOTER  verify without asking for the footer.
 *
 * The fixed key pair is that of the PASETO v4.public test vectors
 * (tests/data/paseto-v4.json, 4-S-*): public test data, so the official
 * tokens verify and seeds can be signed outside the harness. Since Ed25519
 * signatures are deterministic and the decoder is meant to be strict, a
 * token that verifies must be exactly what signing its message, footer and
 * assertion produces; a PASERK string that parses must be what formatting
 * its key produces. Broken checks abort (libFuzzer saves the input).
 *
 * The keyring file is written once by LLVMFuzzerInitialize into a fresh
 * temporary directory, loaded, and removed at once; the keyring is closed
 * at exit so LeakSanitizer sees a clean process.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/keyring.h"
#include "auth/paseto.h"
#include "auth/token.h"
#include "base/alloc.h"
#include "base/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN_MODE_PASERK 0x01u
#define TOKEN_MODE_ASSERTION 0x02u
#define TOKEN_MODE_SIGN 0x04u
#define TOKEN_MODE_NO_FOOTER 0x08u

// The clock of every verification: 2030-01-01T00:00:00Z, so that results
// do not depend on the day the fuzzer runs.
#define TOKEN_NOW INT64_C(1893456000)
#define TOKEN_SKEW 60

// Key pair of the PASETO v4 test vectors 4-S-1..3 (secret || public).
#define TOKEN_SECRET_HEX                                                    \
    "b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774"      \
    "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2"
#define TOKEN_ASSERTION "{\"test-vector\":\"4-S-3\"}"

// The canonical-encoding checks below found that libsodium 1.0.18 (Debian
// 12) decodes every byte 0x80..0xff as '_' in base64url, so that a token or
// PASERK string with such a byte in place of a '_' verified or parsed;
// auth/paseto.c now checks the alphabet itself. The inputs are kept in
// fuzz/crashes-found/ and in the seed corpus (regression-b64-high-byte-*).

// Set up once by LLVMFuzzerInitialize, then only read.
static struct bu_paseto_key token_secret;
static struct bu_paseto_key token_public;
static struct bu_keyring *token_keyring;

// token_check aborts with a message when an expectation is broken.
static void
token_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_token: check failed: %s\n", what);
        abort();
    }
}

static void
token_fini(void)
{
    bu_keyring_close(token_keyring);
    token_keyring = NULL;
    bu_paseto_key_wipe(&token_secret);
}

// token_keyring_load writes the public key's PASERK into a keyring file in
// a new temporary directory, opens the keyring, and removes the file.
static void
token_keyring_load(void)
{
    char dir[] = "/tmp/bu_fuzz_token.XXXXXX";
    char path[sizeof(dir) + 8];
    char *line = NULL;
    FILE *fp;

    token_check(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof(path), "%s/keys", dir);
    token_check(bu_paserk_format(&token_public, &line) == BU_OK,
        "bu_paserk_format of the public key");
    fp = fopen(path, "w");
    token_check(fp != NULL, "fopen of the keyring file");
    fprintf(fp, "# fuzz_token keyring\n%s\n", line);
    token_check(fclose(fp) == 0, "fclose of the keyring file");
    bu_free(line);
    int rv = bu_keyring_open(&token_keyring, path);
    unlink(path);
    rmdir(dir);
    token_check(rv == BU_OK, "bu_keyring_open");
    token_check(bu_keyring_count(token_keyring) == 1, "one key loaded");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uint8_t sk[64];
    size_t sklen = 0;

    (void) argc;
    (void) argv;
    token_check(sodium_init() >= 0, "sodium_init");
    token_check(sodium_hex2bin(sk, sizeof(sk), TOKEN_SECRET_HEX,
                    strlen(TOKEN_SECRET_HEX), NULL, &sklen, NULL) == 0 &&
            sklen == sizeof(sk),
        "secret key hex");
    token_check(bu_paseto_key_from_bytes(&token_secret, BU_KEY_V4_SECRET, sk,
                    sizeof(sk)) == BU_OK,
        "secret key");
    sodium_memzero(sk, sizeof(sk));
    token_check(bu_paseto_public_of(&token_secret, &token_public) == BU_OK,
        "public key");
    token_keyring_load();
    atexit(token_fini);
    return 0;
}

// token_footer checks bu_paseto_v4_footer's contract on token.
static void
token_footer(const char *token)
{
    uint8_t *f = NULL;
    size_t flen = 0;
    int rv = bu_paseto_v4_footer(token, &f, &flen);
    if (rv == BU_OK) {
        token_check(f != NULL || flen == 0, "no footer means length 0");
        token_check(f == NULL || f[flen] == '\0',
            "the footer is NUL-terminated");
    } else {
        token_check(rv == BU_EPARSE, "footer fails only with BU_EPARSE");
        token_check(f == NULL, "nothing written on failure");
    }
    bu_free(f);
}

// token_same_footer checks that bu_paseto_v4_footer reads the footer that
// verify returned.
static void
token_same_footer(const char *token, const uint8_t *f, size_t flen)
{
    uint8_t *f2 = NULL;
    size_t flen2 = 0;
    token_check(bu_paseto_v4_footer(token, &f2, &flen2) == BU_OK,
        "a verified token's footer decodes");
    token_check(flen2 == flen && (flen == 0 || memcmp(f2, f, flen) == 0),
        "footer and verify agree on the footer");
    bu_free(f2);
}

// token_verify_raw verifies token against the fixed public key.
static void
token_verify_raw(const char *token, unsigned mode)
{
    const uint8_t *i = NULL;
    size_t ilen = 0;
    uint8_t *m = NULL;
    uint8_t *f = NULL;
    size_t mlen = 0;
    size_t flen = 0;
    int want_footer = (mode & TOKEN_MODE_NO_FOOTER) == 0;

    if (mode & TOKEN_MODE_ASSERTION) {
        i = (const uint8_t *) TOKEN_ASSERTION;
        ilen = strlen(TOKEN_ASSERTION);
    }
    int rv = bu_paseto_v4_verify(&token_public, token, i, ilen, &m, &mlen,
        want_footer ? &f : NULL, want_footer ? &flen : NULL);
    if (rv != BU_OK) {
        token_check(rv == BU_EPARSE || rv == BU_ESIG,
            "verify fails with BU_EPARSE or BU_ESIG");
        token_check(m == NULL && f == NULL, "nothing written on failure");
        return;
    }
    token_check(m != NULL && m[mlen] == '\0',
        "the message is NUL-terminated");
    if (want_footer) {
        token_check(f != NULL && f[flen] == '\0',
            "the footer is NUL-terminated, empty when absent");
        token_same_footer(token, f, flen);
        // Ed25519 is deterministic: with a strict decoder, the only token
        // that verifies is the one signing produces.
        char *again = NULL;
        token_check(bu_paseto_v4_sign(&token_secret, m, mlen, f, flen, i,
                        ilen, &again) == BU_OK,
            "re-sign");
        token_check(strcmp(again, token) == 0,
            "a verified token is the canonical encoding");
        bu_free(again);
    }
    bu_free(m);
    bu_free(f);
}

// token_paserk parses str as a PASERK key string.
static void
token_paserk(const char *str)
{
    struct bu_paseto_key key = { .kind = BU_KEY_NONE };
    char *again = NULL;
    char pid[BU_PASERK_PID_SIZE];

    int rv = bu_paserk_parse(str, &key);
    if (rv != BU_OK) {
        token_check(rv == BU_EPARSE, "paserk fails with BU_EPARSE");
        token_check(key.kind == BU_KEY_NONE, "nothing written on failure");
        return;
    }
    token_check(bu_paserk_format(&key, &again) == BU_OK, "re-format");
    token_check(strcmp(again, str) == 0,
        "a parsed PASERK is the canonical encoding");
    sodium_memzero(again, strlen(again));
    bu_free(again);
    if (key.kind == BU_KEY_V4_PUBLIC) {
        token_check(bu_paserk_pid(&key, pid) == BU_OK, "pid");
        token_check(strlen(pid) == BU_PASERK_PID_SIZE - 1, "pid length");
    } else {
        token_check(bu_paserk_pid(&key, pid) == BU_EKEY,
            "only public keys have a pid");
    }
    if (key.kind == BU_KEY_V4_SECRET) {
        struct bu_paseto_key pub;
        token_check(bu_paseto_public_of(&key, &pub) == BU_OK, "public_of");
        token_check(memcmp(pub.bytes, key.bytes + 32, 32) == 0,
            "a secret key carries its public key");
    }
    bu_paseto_key_wipe(&key);
}

// token_verify_claims runs the server's check and returns its result.
static int
token_verify_claims(const char *token)
{
    struct bu_claims c;
    memset(&c, 0, sizeof(c));
    int rv = bu_token_verify(token_keyring, token, TOKEN_NOW, &c);
    token_check(rv == BU_OK || rv == BU_EAUTH || rv == BU_ESIG ||
            rv == BU_EEXPIRED,
        "bu_token_verify returns OK, EAUTH, ESIG or EEXPIRED");
    if (rv == BU_OK) {
        token_check(bu_tenant_valid(c.tenant), "tenant valid");
        token_check(c.iat <= TOKEN_NOW + TOKEN_SKEW, "iat not in future");
        token_check(TOKEN_NOW < c.exp && c.iat <= c.exp, "not expired");
        token_check(memchr(c.sub, '\0', sizeof(c.sub)) != NULL &&
                memchr(c.jti, '\0', sizeof(c.jti)) != NULL,
            "sub and jti NUL-terminated");
        token_check((c.perms & ~(uint32_t) (BU_PERM_READ | BU_PERM_MANAGE)) ==
                0,
            "known permission bits only");
    }
    return rv;
}

// token_piece cuts the next '\n'-separated piece off *pp/*np; the last
// piece takes the rest, newlines included.
static void
token_piece(const uint8_t **pp, size_t *np, int last, const uint8_t **piecep,
    size_t *lenp)
{
    const uint8_t *nl = last ? NULL : memchr(*pp, '\n', *np);
    size_t len = nl != NULL ? (size_t) (nl - *pp) : *np;
    *piecep = len > 0 ? *pp : NULL;
    *lenp = len;
    *pp += len;
    *np -= len;
    if (nl != NULL) {
        *pp += 1;
        *np -= 1;
    }
}

// token_sign signs "claims\nfooter\nassertion" with the fixed secret key and
// checks that everything reads back what was signed.
static void
token_sign(const uint8_t *p, size_t n)
{
    const uint8_t *m, *f, *i;
    size_t mlen, flen, ilen;
    char *token = NULL;
    uint8_t *m2 = NULL;
    uint8_t *f2 = NULL;
    size_t mlen2 = 0;
    size_t flen2 = 0;

    token_piece(&p, &n, 0, &m, &mlen);
    token_piece(&p, &n, 0, &f, &flen);
    token_piece(&p, &n, 1, &i, &ilen);
    token_check(bu_paseto_v4_sign(&token_secret, m, mlen, f, flen, i, ilen,
                    &token) == BU_OK,
        "sign");
    token_check(bu_paseto_v4_verify(&token_public, token, i, ilen, &m2,
                    &mlen2, &f2, &flen2) == BU_OK,
        "a signed token verifies");
    token_check(mlen2 == mlen && (mlen == 0 || memcmp(m2, m, mlen) == 0),
        "the message reads back");
    token_check(flen2 == flen && (flen == 0 || memcmp(f2, f, flen) == 0),
        "the footer reads back");
    token_same_footer(token, f2, flen2);
    bu_free(m2);
    bu_free(f2);
    m2 = NULL;
    if (ilen > 0) {
        token_check(bu_paseto_v4_verify(&token_public, token, NULL, 0, &m2,
                        &mlen2, NULL, NULL) == BU_ESIG,
            "the implicit assertion is bound");
        bu_free(m2);
    } else {
        // Our key signed it: whatever the claims or the footer say, the
        // signature itself is never the reason for a refusal.
        token_check(token_verify_claims(token) != BU_ESIG,
            "bu_token_verify accepts our signature");
    }
    bu_free(token);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    unsigned mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *token = malloc(n + 1);
    token_check(token != NULL, "malloc");
    memcpy(token, p, n);
    token[n] = '\0';

    token_footer(token);
    token_verify_raw(token, mode);
    if (mode & TOKEN_MODE_PASERK) {
        token_paserk(token);
    }
    (void) token_verify_claims(token);
    if (mode & TOKEN_MODE_SIGN) {
        token_sign(p, n);
    }
    free(token);
    return 0;
}
