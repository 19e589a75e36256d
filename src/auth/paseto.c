// SPDX-License-Identifier: MIT
/*
 * PASETO v4.public over libsodium's Ed25519, and the PASERK strings for its
 * keys. Every entry point checks the key's type tag before any crypto, so
 * the only way to sign is with a v4 secret key and the only way to verify is
 * with a v4 public key. Base64url is decoded strictly (no padding, no
 * characters outside the alphabet, no non-zero trailing bits), and sodium's
 * -1 is translated to bu_err here. Nothing is written to an out-parameter
 * until the whole operation has succeeded.
 */
#include "auth/paseto.h"

#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/err.h"

#define PASETO_HEADER     "v4.public."
#define PASETO_HEADER_LEN (sizeof(PASETO_HEADER) - 1)
#define PASETO_SIG_LEN    crypto_sign_BYTES

#define PASERK_SECRET       "k4.secret."
#define PASERK_PUBLIC       "k4.public."
#define PASERK_LOCAL        "k4.local."
#define PASERK_PID          "k4.pid."
#define PASERK_PID_HASH_LEN 33
#define PASERK_LOCAL_LEN    32

#define PASETO_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

// Largest message, footer or assertion accepted by sign. It keeps every
// length sum and base64 size below SIZE_MAX without further checks.
#define PASETO_PIECE_MAX (SIZE_MAX / 8)

// Encoded length of n bytes, without the NUL.
#define PASETO_B64_LEN(n) (sodium_base64_ENCODED_LEN((n), PASETO_B64) - 1)

// Writes n as 8 little-endian bytes with the top bit cleared (PAE's LE64).
static void
paseto_le64(uint8_t out[8], uint64_t n)
{
    n &= UINT64_C(0x7FFFFFFFFFFFFFFF);
    for (int b = 0; b < 8; b++) {
        out[b] = (uint8_t) (n & 0xFF);
        n >>= 8;
    }
}

// paseto_pae builds PAE([h, m, f, i]) in a new buffer *bufp of *lenp
// bytes (release with bu_free). The callers bound each length by
// PASETO_PIECE_MAX, so the sum cannot overflow.
static int
paseto_pae(const uint8_t *m, size_t mlen, const uint8_t *f, size_t flen,
    const uint8_t *i, size_t ilen, uint8_t **bufp, size_t *lenp)
{
    const uint8_t *piece[4] = { (const uint8_t *) PASETO_HEADER, m, f, i };
    size_t         plen[4] = { PASETO_HEADER_LEN, mlen, flen, ilen };
    size_t         len = 8 + 4 * 8 + PASETO_HEADER_LEN + mlen + flen + ilen;
    uint8_t       *buf = bu_alloc(len);
    if (buf == NULL) {
        return BU_ENOMEM;
    }
    uint8_t *p = buf;
    paseto_le64(p, 4);
    p += 8;
    for (int k = 0; k < 4; k++) {
        paseto_le64(p, (uint64_t) plen[k]);
        p += 8;
        if (plen[k] > 0) {
            memcpy(p, piece[k], plen[k]);
            p += plen[k];
        }
    }
    *bufp = buf;
    *lenp = len;
    return BU_OK;
}

// paseto_b64_alphabet returns 1 when the n characters at s are all of the
// base64url alphabet. libsodium 1.0.18 computes on bytes above 0x7f as
// negative chars before it rejects them, so they never reach it.
static int
paseto_b64_alphabet(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

// paseto_b64_decode decodes the n characters at s strictly into a new
// buffer *outp of *lenp bytes, NUL-terminated so that text can be read
// directly (release with bu_free). Returns BU_EPARSE, BU_ENOMEM.
static int
paseto_b64_decode(const char *s, size_t n, uint8_t **outp, size_t *lenp)
{
    if (!paseto_b64_alphabet(s, n)) {
        return BU_EPARSE;
    }
    size_t   max = n / 4 * 3 + 2;
    uint8_t *out = bu_alloc(max + 1);
    size_t   len = 0;
    if (out == NULL) {
        return BU_ENOMEM;
    }
    // ignore and b64_end are NULL: sodium then rejects '=', characters
    // outside the alphabet, a length of 1 mod 4 and non-zero trailing bits.
    if (sodium_base642bin(out, max, s, n, NULL, &len, NULL, PASETO_B64) != 0) {
        bu_free(out);
        return BU_EPARSE;
    }
    out[len] = '\0';
    *outp = out;
    *lenp = len;
    return BU_OK;
}

// paseto_split checks the header and layout of token and finds its body
// and footer segments. The footer is absent (*footp = NULL) or non-empty;
// "v4.public.xxx." and a second '.' are malformed. Returns BU_EPARSE.
static int
paseto_split(const char *token, const char **bodyp, size_t *bodylenp,
    const char **footp, size_t *footlenp)
{
    if (token == NULL
        || strncmp(token, PASETO_HEADER, PASETO_HEADER_LEN) != 0) {
        return BU_EPARSE;
    }
    const char *body = token + PASETO_HEADER_LEN;
    const char *dot = strchr(body, '.');
    const char *foot = NULL;
    size_t      footlen = 0;
    size_t      bodylen = strlen(body);
    if (dot != NULL) {
        foot = dot + 1;
        footlen = strlen(foot);
        bodylen = (size_t) (dot - body);
        if (footlen == 0 || strchr(foot, '.') != NULL) {
            return BU_EPARSE;
        }
    }
    *bodyp = body;
    *bodylenp = bodylen;
    *footp = foot;
    *footlenp = footlen;
    return BU_OK;
}

// paseto_secret_consistent checks that the second half of a 64-byte secret
// key is the public key of its seed. Signing with a mismatched half would
// give signatures that fail, and can leak the key to whoever chose it.
static int
paseto_secret_consistent(const uint8_t sk[64])
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t full[crypto_sign_SECRETKEYBYTES];
    int     ok = crypto_sign_seed_keypair(pk, full, sk) == 0
        && sodium_memcmp(pk, sk + 32, sizeof(pk)) == 0;
    sodium_memzero(full, sizeof(full));
    return ok;
}

static size_t
paseto_kind_len(enum bu_key_kind kind)
{
    switch (kind) {
    case BU_KEY_V4_SECRET:
        return crypto_sign_SECRETKEYBYTES;
    case BU_KEY_V4_PUBLIC:
        return crypto_sign_PUBLICKEYBYTES;
    case BU_KEY_V4_LOCAL:
        return PASERK_LOCAL_LEN;
    default:
        return 0;
    }
}

static int
paseto_key_is(const struct bu_paseto_key *key, enum bu_key_kind kind)
{
    return key != NULL && key->kind == kind
        && key->len == paseto_kind_len(kind);
}

void
bu_paseto_key_wipe(struct bu_paseto_key *key)
{
    if (key != NULL) {
        sodium_memzero(key, sizeof(*key));
    }
}

int
bu_paseto_key_from_bytes(struct bu_paseto_key *keyp, enum bu_key_kind kind,
    const uint8_t *bytes, size_t len)
{
    size_t want = paseto_kind_len(kind);
    if (want == 0 || len != want || bytes == NULL) {
        return BU_EINVAL;
    }
    if (kind == BU_KEY_V4_SECRET && !paseto_secret_consistent(bytes)) {
        return BU_EINVAL;
    }
    struct bu_paseto_key key = { .kind = kind, .len = len };
    memcpy(key.bytes, bytes, len);
    *keyp = key;
    sodium_memzero(&key, sizeof(key));
    return BU_OK;
}

int
bu_paseto_keypair(struct bu_paseto_key *secretp, struct bu_paseto_key *publicp)
{
    struct bu_paseto_key sk
        = { .kind = BU_KEY_V4_SECRET, .len = crypto_sign_SECRETKEYBYTES };
    struct bu_paseto_key pk
        = { .kind = BU_KEY_V4_PUBLIC, .len = crypto_sign_PUBLICKEYBYTES };
    crypto_sign_keypair(pk.bytes, sk.bytes);
    *secretp = sk;
    *publicp = pk;
    sodium_memzero(&sk, sizeof(sk));
    return BU_OK;
}

int
bu_paseto_public_of(
    const struct bu_paseto_key *secret, struct bu_paseto_key *publicp)
{
    if (!paseto_key_is(secret, BU_KEY_V4_SECRET)) {
        return BU_EKEY;
    }
    struct bu_paseto_key pk
        = { .kind = BU_KEY_V4_PUBLIC, .len = crypto_sign_PUBLICKEYBYTES };
    crypto_sign_ed25519_sk_to_pk(pk.bytes, secret->bytes);
    *publicp = pk;
    return BU_OK;
}

int
bu_paserk_format(const struct bu_paseto_key *key, char **strp)
{
    const char *prefix;
    if (key == NULL || key->len != paseto_kind_len(key->kind)) {
        return BU_EKEY;
    }
    switch (key->kind) {
    case BU_KEY_V4_SECRET:
        prefix = PASERK_SECRET;
        break;
    case BU_KEY_V4_PUBLIC:
        prefix = PASERK_PUBLIC;
        break;
    case BU_KEY_V4_LOCAL:
        prefix = PASERK_LOCAL;
        break;
    default:
        return BU_EKEY;
    }
    size_t plen = strlen(prefix);
    size_t size = plen + sodium_base64_ENCODED_LEN(key->len, PASETO_B64);
    char  *str = bu_alloc(size);
    if (str == NULL) {
        return BU_ENOMEM;
    }
    memcpy(str, prefix, plen);
    sodium_bin2base64(
        str + plen, size - plen, key->bytes, key->len, PASETO_B64);
    *strp = str;
    return BU_OK;
}

int
bu_paserk_parse(const char *str, struct bu_paseto_key *keyp)
{
    static const struct {
        const char      *prefix;
        enum bu_key_kind kind;
    } forms[] = {
        { PASERK_SECRET, BU_KEY_V4_SECRET },
        { PASERK_PUBLIC, BU_KEY_V4_PUBLIC },
        { PASERK_LOCAL, BU_KEY_V4_LOCAL },
    };
    if (str == NULL) {
        return BU_EPARSE;
    }
    for (size_t k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
        size_t plen = strlen(forms[k].prefix);
        if (strncmp(str, forms[k].prefix, plen) != 0) {
            continue;
        }
        struct bu_paseto_key key = { .kind = forms[k].kind };
        size_t               want = paseto_kind_len(forms[k].kind);
        const char          *b64 = str + plen;
        size_t               n = strlen(b64);
        int                  rv = BU_EPARSE;
        // The exact encoded length rules out any longer or shorter key
        // before sodium sees it; sodium then checks every character.
        if (n == PASETO_B64_LEN(want) && paseto_b64_alphabet(b64, n)
            && sodium_base642bin(key.bytes, sizeof(key.bytes), b64, n, NULL,
                   &key.len, NULL, PASETO_B64)
                == 0
            && key.len == want
            && (key.kind != BU_KEY_V4_SECRET
                || paseto_secret_consistent(key.bytes))) {
            *keyp = key;
            rv = BU_OK;
        }
        sodium_memzero(&key, sizeof(key));
        return rv;
    }
    return BU_EPARSE;
}

int
bu_paserk_pid(const struct bu_paseto_key *pub, char out[BU_PASERK_PID_SIZE])
{
    // "k4.pid." || "k4.public." || b64url(pk), hashed to 33 bytes.
    char    in[sizeof(PASERK_PID) - 1 + sizeof(PASERK_PUBLIC) - 1
        + sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, PASETO_B64)];
    uint8_t hash[PASERK_PID_HASH_LEN];
    size_t  pidlen = sizeof(PASERK_PID) - 1;
    size_t  publen = sizeof(PASERK_PUBLIC) - 1;

    if (!paseto_key_is(pub, BU_KEY_V4_PUBLIC)) {
        return BU_EKEY;
    }
    memcpy(in, PASERK_PID, pidlen);
    memcpy(in + pidlen, PASERK_PUBLIC, publen);
    sodium_bin2base64(in + pidlen + publen, sizeof(in) - pidlen - publen,
        pub->bytes, pub->len, PASETO_B64);
    crypto_generichash(
        hash, sizeof(hash), (const uint8_t *) in, strlen(in), NULL, 0);
    memcpy(out, PASERK_PID, pidlen);
    sodium_bin2base64(out + pidlen, BU_PASERK_PID_SIZE - pidlen, hash,
        sizeof(hash), PASETO_B64);
    return BU_OK;
}

int
bu_paseto_v4_sign(const struct bu_paseto_key *secret, const uint8_t *m,
    size_t mlen, const uint8_t *f, size_t flen, const uint8_t *i, size_t ilen,
    char **tokenp)
{
    uint8_t *pae = NULL;
    size_t   paelen = 0;
    uint8_t *body = NULL;
    char    *token = NULL;
    char    *p;
    int      rv;

    if (!paseto_key_is(secret, BU_KEY_V4_SECRET)) {
        return BU_EKEY;
    }
    if (mlen > PASETO_PIECE_MAX || flen > PASETO_PIECE_MAX
        || ilen > PASETO_PIECE_MAX) {
        return BU_ENOMEM;
    }
    // h || b64url(m || sig), then "." || b64url(f) only when f is
    // non-empty.
    size_t bodylen = mlen + PASETO_SIG_LEN;
    size_t body64 = PASETO_B64_LEN(bodylen);
    size_t foot64 = flen > 0 ? PASETO_B64_LEN(flen) : 0;
    size_t size = PASETO_HEADER_LEN + body64 + (flen > 0 ? 1 + foot64 : 0) + 1;

    rv = paseto_pae(m, mlen, f, flen, i, ilen, &pae, &paelen);
    if (rv != BU_OK) {
        goto out;
    }
    if ((body = bu_alloc(bodylen)) == NULL
        || (token = bu_alloc(size)) == NULL) {
        rv = BU_ENOMEM;
        goto out;
    }
    if (mlen > 0) {
        memcpy(body, m, mlen);
    }
    crypto_sign_detached(body + mlen, NULL, pae, paelen, secret->bytes);

    p = token;
    memcpy(p, PASETO_HEADER, PASETO_HEADER_LEN);
    p += PASETO_HEADER_LEN;
    sodium_bin2base64(p, body64 + 1, body, bodylen, PASETO_B64);
    p += body64;
    if (flen > 0) {
        *p++ = '.';
        sodium_bin2base64(p, foot64 + 1, f, flen, PASETO_B64);
    }
    *tokenp = token;
    token = NULL;
    rv = BU_OK;

out:
    bu_free(token);
    bu_free(body);
    bu_free(pae);
    return rv;
}

int
bu_paseto_v4_verify(const struct bu_paseto_key *pub, const char *token,
    const uint8_t *i, size_t ilen, uint8_t **mp, size_t *mlenp, uint8_t **fp,
    size_t *flenp)
{
    const char *body64;
    const char *foot64;
    size_t      body64len;
    size_t      foot64len;
    uint8_t    *body = NULL;
    size_t      bodylen = 0;
    uint8_t    *foot = NULL;
    size_t      footlen = 0;
    uint8_t    *pae = NULL;
    size_t      paelen = 0;
    size_t      mlen;
    int         rv;

    if (!paseto_key_is(pub, BU_KEY_V4_PUBLIC)) {
        return BU_EKEY;
    }
    if (ilen > PASETO_PIECE_MAX) {
        return BU_ENOMEM;
    }
    rv = paseto_split(token, &body64, &body64len, &foot64, &foot64len);
    if (rv != BU_OK) {
        return rv;
    }
    // An absent footer decodes (from zero characters) to an empty string,
    // so a successful verify always hands back a buffer.
    rv = paseto_b64_decode(
        foot64 != NULL ? foot64 : "", foot64len, &foot, &footlen);
    if (rv == BU_OK) {
        rv = paseto_b64_decode(body64, body64len, &body, &bodylen);
    }
    if (rv != BU_OK) {
        goto out;
    }
    // Check the length before any bodylen - 64.
    if (bodylen < PASETO_SIG_LEN) {
        rv = BU_EPARSE;
        goto out;
    }
    mlen = bodylen - PASETO_SIG_LEN;
    rv = paseto_pae(body, mlen, foot, footlen, i, ilen, &pae, &paelen);
    if (rv != BU_OK) {
        goto out;
    }
    if (crypto_sign_verify_detached(body + mlen, pae, paelen, pub->bytes)
        != 0) {
        rv = BU_ESIG;
        goto out;
    }
    // The message is the front of body; terminating it overwrites the
    // first signature byte, which is no longer needed.
    body[mlen] = '\0';
    *mp = body;
    *mlenp = mlen;
    body = NULL;
    if (fp != NULL) {
        *fp = foot;
        foot = NULL;
    }
    if (flenp != NULL) {
        *flenp = footlen;
    }
    rv = BU_OK;

out:
    bu_free(pae);
    bu_free(foot);
    bu_free(body);
    return rv;
}

int
bu_paseto_v4_footer(const char *token, uint8_t **fp, size_t *flenp)
{
    const char *body64;
    const char *foot64;
    size_t      body64len;
    size_t      foot64len;
    uint8_t    *foot;
    size_t      footlen;

    int rv = paseto_split(token, &body64, &body64len, &foot64, &foot64len);
    if (rv != BU_OK) {
        return rv;
    }
    if (foot64 == NULL) {
        *fp = NULL;
        *flenp = 0;
        return BU_OK;
    }
    if ((rv = paseto_b64_decode(foot64, foot64len, &foot, &footlen))
        != BU_OK) {
        return rv;
    }
    *fp = foot;
    *flenp = footlen;
    return BU_OK;
}

int
bu_paseto_v4_message_unverified(const char *token, uint8_t **mp, size_t *mlenp)
{
    const char *body64;
    const char *foot64;
    size_t      body64len;
    size_t      foot64len;
    uint8_t    *body;
    size_t      bodylen;

    int rv = paseto_split(token, &body64, &body64len, &foot64, &foot64len);
    if (rv != BU_OK
        || (rv = paseto_b64_decode(body64, body64len, &body, &bodylen))
            != BU_OK) {
        return rv;
    }
    if (bodylen < PASETO_SIG_LEN) {
        bu_free(body);
        return BU_EPARSE;
    }
    // The message is the body without its signature; cut it there.
    body[bodylen - PASETO_SIG_LEN] = '\0';
    *mp = body;
    *mlenp = bodylen - PASETO_SIG_LEN;
    return BU_OK;
}
