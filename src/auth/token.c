// SPDX-License-Identifier: MIT
/*
 * Access tokens: claims as a compact JSON object signed with PASETO
 * v4.public, and a footer {"kid":"k4.pid.…"} naming the verifying key.
 * Verification runs in a fixed order and fails closed at every step:
 *   1. bound the token, decode the footer, bound it, read its kid;
 *   2. pick that key from the keyring (an unknown kid is refused);
 *   3. verify the signature over the exact token bytes;
 *   4. only then parse and check the claims.
 * The footer is untrusted until step 3 and is used for nothing but step 2.
 */
#include "auth/token.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"

// Bounds on the untrusted footer before it is parsed.
#define TOKEN_FOOTER_MAX      512
#define TOKEN_FOOTER_KEYS_MAX 4

// Largest time written into a token: 9999-12-31T23:59:59Z, the last
// instant RFC 3339's four-digit year can name.
#define TOKEN_TIME_MAX INT64_C(253402300799)

#define TOKEN_JTI_RANDOM 16

static const struct {
    const char *name;
    uint32_t    bit;
} token_perms[] = {
    { "DataSpace.Read", BU_PERM_READ },
    { "DataSpace.Manage", BU_PERM_MANAGE },
};

#define TOKEN_NPERMS (sizeof(token_perms) / sizeof(token_perms[0]))

int
bu_tenant_valid(const char *s)
{
    size_t n;

    if (s == NULL) {
        return 0;
    }
    for (n = 0; s[n] != '\0'; n++) {
        char c = s[n];
        int  ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || (n > 0 && (c == '_' || c == '-'));
        if (!ok || n >= BU_TENANT_MAX) {
            return 0;
        }
    }
    return n > 0;
}

uint32_t
bu_perm_parse(const char *name)
{
    if (name == NULL) {
        return 0;
    }
    for (size_t k = 0; k < TOKEN_NPERMS; k++) {
        if (strcmp(name, token_perms[k].name) == 0) {
            return token_perms[k].bit;
        }
    }
    return 0;
}

// token_json_err maps a failed jansson call to BU_ENOMEM or to other.
static int
token_json_err(const json_error_t *jerr, int other)
{
    return json_error_code(jerr) == json_error_out_of_memory ? BU_ENOMEM
                                                             : other;
}

// token_claims_dump serializes claims (with jti already filled in) as
// compact JSON into a new buffer *mp of *mlenp bytes (release with
// bu_free). Returns BU_EINVAL (a string that is not UTF-8), BU_ENOMEM.
static int
token_claims_dump(
    const struct bu_claims *c, const char *jti, uint8_t **mp, size_t *mlenp)
{
    char         iat[32];
    char         exp[32];
    json_error_t jerr;
    json_t      *perms;
    json_t      *root;
    uint8_t     *m;
    size_t       mlen;

    if (bu_rfc3339_format(c->iat, iat, sizeof(iat)) != BU_OK
        || bu_rfc3339_format(c->exp, exp, sizeof(exp)) != BU_OK) {
        return BU_EINVAL;
    }
    if ((perms = json_array()) == NULL) {
        return BU_ENOMEM;
    }
    for (size_t k = 0; k < TOKEN_NPERMS; k++) {
        if ((c->perms & token_perms[k].bit) != 0
            && json_array_append_new(perms, json_string(token_perms[k].name))
                != 0) {
            json_decref(perms);
            return BU_ENOMEM;
        }
    }
    // "o" hands perms to the new object; jansson (>= 2.11) takes the
    // reference even when json_pack fails.
    root = json_pack_ex(&jerr, 0, "{s:s, s:s, s:o, s:s, s:s, s:s}", "sub",
        c->sub, "tenant", c->tenant, "perms", perms, "iat", iat, "exp", exp,
        "jti", jti);
    if (root == NULL) {
        return token_json_err(&jerr, BU_EINVAL);
    }
    mlen = json_dumpb(root, NULL, 0, JSON_COMPACT);
    if (mlen == 0 || (m = bu_alloc(mlen)) == NULL) {
        json_decref(root);
        return BU_ENOMEM;
    }
    json_dumpb(root, (char *) m, mlen, JSON_COMPACT);
    json_decref(root);
    *mp = m;
    *mlenp = mlen;
    return BU_OK;
}

int
bu_token_issue(const struct bu_paseto_key *secret,
    const struct bu_claims *claims, char **tokenp)
{
    struct bu_paseto_key pub;
    char                 kid[BU_PASERK_PID_SIZE];
    char                 footer[sizeof("{\"kid\":\"\"}") + BU_PASERK_PID_SIZE];
    char                 jti[sizeof(claims->jti)];
    uint8_t             *m = NULL;
    size_t               mlen = 0;

    int rv = bu_paseto_public_of(secret, &pub);
    if (rv == BU_OK) {
        rv = bu_paserk_pid(&pub, kid);
    }
    if (rv != BU_OK) {
        return rv;
    }
    if (!bu_tenant_valid(claims->tenant) || claims->iat < 0
        || claims->exp < claims->iat || claims->exp > TOKEN_TIME_MAX
        || strnlen(claims->sub, sizeof(claims->sub)) == sizeof(claims->sub)
        || strnlen(claims->jti, sizeof(claims->jti)) == sizeof(claims->jti)) {
        return BU_EINVAL;
    }
    if (claims->jti[0] == '\0') {
        uint8_t rnd[TOKEN_JTI_RANDOM];
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(jti, sizeof(jti), rnd, sizeof(rnd));
    } else {
        memcpy(jti, claims->jti, sizeof(jti));
    }
    rv = token_claims_dump(claims, jti, &m, &mlen);
    if (rv != BU_OK) {
        return rv;
    }
    // A PASERK id is base64url, so it needs no JSON escaping.
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"}", kid);
    rv = bu_paseto_v4_sign(secret, m, mlen, (const uint8_t *) footer,
        strlen(footer), NULL, 0, tokenp);
    bu_free(m);
    return rv;
}

// token_footer_key reads the kid from token's footer and copies that key
// out of kr. Returns BU_EAUTH (no footer, footer too big, not a JSON
// object with a string "kid", unknown kid), BU_EPARSE, BU_ENOMEM.
static int
token_footer_key(
    struct bu_keyring *kr, const char *token, struct bu_paseto_key *keyp)
{
    uint8_t     *f = NULL;
    size_t       flen = 0;
    json_t      *root = NULL;
    json_t      *kid;
    json_error_t jerr;

    int rv = bu_paseto_v4_footer(token, &f, &flen);
    if (rv != BU_OK) {
        return rv;
    }
    rv = BU_EAUTH;
    if (f == NULL || flen > TOKEN_FOOTER_MAX) {
        goto out;
    }
    // The size bound above also bounds the nesting depth; the key count is
    // checked once the object is built.
    root = json_loadb((const char *) f, flen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rv = token_json_err(&jerr, BU_EAUTH);
        goto out;
    }
    kid = json_object_get(root, "kid");
    if (!json_is_object(root) || json_object_size(root) > TOKEN_FOOTER_KEYS_MAX
        || !json_is_string(kid)) {
        goto out;
    }
    if (bu_keyring_find(kr, json_string_value(kid), keyp) == BU_OK) {
        rv = BU_OK;
    }

out:
    json_decref(root);
    bu_free(f);
    return rv;
}

// token_time reads claim name as an RFC 3339 date-time. Returns 0 when it
// is not a string or not a valid date-time.
static int
token_time(json_t *root, const char *name, int64_t *secsp)
{
    json_t *v = json_object_get(root, name);
    return json_is_string(v)
        && bu_rfc3339_parse(json_string_value(v), secsp) == BU_OK;
}

// token_string copies the optional string claim name into buf. Returns 0
// when it is present but not a string, or does not fit.
static int
token_string(json_t *root, const char *name, char *buf, size_t size)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) {
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) >= size) {
        return 0;
    }
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

// token_claims_check parses the signed message m and checks its claims at
// time now. Returns BU_EAUTH (any claim missing, mistyped or out of range),
// BU_EEXPIRED, BU_ENOMEM. *claimsp is written only on success.
static int
token_claims_check(
    const uint8_t *m, size_t mlen, int64_t now, struct bu_claims *claimsp)
{
    struct bu_claims c = { .perms = 0 };
    json_error_t     jerr;
    json_t          *root;
    json_t          *perms;
    json_t          *v;
    size_t           idx;
    int64_t          nbf;
    int              rv = BU_EAUTH;

    root = json_loadb((const char *) m, mlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return token_json_err(&jerr, BU_EAUTH);
    }
    if (!json_is_object(root)) {
        goto out;
    }
    v = json_object_get(root, "tenant");
    if (!json_is_string(v) || !bu_tenant_valid(json_string_value(v))) {
        goto out;
    }
    memcpy(c.tenant, json_string_value(v), json_string_length(v) + 1);

    perms = json_object_get(root, "perms");
    if (!json_is_array(perms)) {
        goto out;
    }
    json_array_foreach(perms, idx, v)
    {
        if (!json_is_string(v)) {
            goto out;
        }
        c.perms |= bu_perm_parse(json_string_value(v));
    }
    if (!token_time(root, "iat", &c.iat) || !token_time(root, "exp", &c.exp)
        || !token_string(root, "sub", c.sub, sizeof(c.sub))
        || !token_string(root, "jti", c.jti, sizeof(c.jti))
        || bu_keyring_jti_fault(c.jti) != NULL) {
        goto out; // a token whose jti no list can name can't be revoked
    }
    // "nbf" is not issued here, but a token that carries one is held to it.
    if (json_object_get(root, "nbf") != NULL
        && (!token_time(root, "nbf", &nbf) || now < nbf)) {
        goto out;
    }
    if (c.iat > now + BU_TOKEN_SKEW_SECS || c.exp < c.iat) {
        goto out;
    }
    if (now >= c.exp) {
        rv = BU_EEXPIRED;
        goto out;
    }
    *claimsp = c;
    rv = BU_OK;

out:
    json_decref(root);
    return rv;
}

int
bu_token_verify(struct bu_keyring *keyring, const char *token, int64_t now,
    struct bu_claims *claimsp)
{
    struct bu_paseto_key key = { .kind = BU_KEY_NONE };
    uint8_t             *m = NULL;
    size_t               mlen = 0;

    if (keyring == NULL || token == NULL
        || strnlen(token, BU_TOKEN_MAX_BYTES + 1) > BU_TOKEN_MAX_BYTES) {
        return BU_EAUTH;
    }
    int rv = token_footer_key(keyring, token, &key);
    if (rv == BU_OK) {
        rv = bu_paseto_v4_verify(&key, token, NULL, 0, &m, &mlen, NULL, NULL);
    }
    // The claims are read only once the signature has checked.
    struct bu_claims claims;
    if (rv == BU_OK) {
        rv = token_claims_check(m, mlen, now, &claims);
    }
    if (rv == BU_OK && bu_keyring_is_revoked(keyring, claims.jti)) {
        rv = BU_EREVOKED;
    }
    if (rv == BU_OK) {
        *claimsp = claims;
    }
    bu_free(m);
    bu_paseto_key_wipe(&key);
    // Fail closed with as little detail as the caller needs: everything
    // but a bad signature, an expired or revoked token and OOM is BU_EAUTH.
    if (rv != BU_OK && rv != BU_ESIG && rv != BU_EEXPIRED && rv != BU_EREVOKED
        && rv != BU_ENOMEM) {
        rv = BU_EAUTH;
    }
    return rv;
}
