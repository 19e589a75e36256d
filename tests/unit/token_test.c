// SPDX-License-Identifier: MIT
/*
 * Tests of the service's access tokens: issue and verify round trips, and
 * each way verify must fail closed (expiry, clock skew, unknown kid,
 * tampering, bad claims, bad footers, oversize tokens). Hostile tokens are
 * built with bu_paseto_v4_sign directly, signed by a key the keyring
 * trusts, so that only the claim or footer check can refuse them. Last, the
 * memo of verified tokens (token_cache): it answers repeats, but never past
 * exp or across a keyring reload, and never for a different token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "auth/keyring.h"
#include "auth/paseto.h"
#include "auth/token.h"
#include "auth/token_cache.h"
#include "base/alloc.h"
#include "base/err.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

// 2030-01-01T00:00:00Z, the "now" of every test.
#define NOW INT64_C(1893456000)
#define NOW_S "2030-01-01T00:00:00Z"
#define HOUR_S "2030-01-01T01:00:00Z"

struct fixture {
    char dir[64];
    char path[96];
    struct bu_paseto_key secret;
    struct bu_paseto_key pub;
    char kid[BU_PASERK_PID_SIZE];
    struct bu_keyring *kr;
};

// ---- fixtures ----

static int
token_setup(void **state)
{
    struct fixture *fx = bu_alloc(sizeof(*fx));
    char *line = NULL;
    FILE *fp;

    if (fx == NULL) {
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/bu_token_test.XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        bu_free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/keys", fx->dir);
    if (bu_paseto_keypair(&fx->secret, &fx->pub) != BU_OK ||
        bu_paserk_pid(&fx->pub, fx->kid) != BU_OK ||
        bu_paserk_format(&fx->pub, &line) != BU_OK ||
        (fp = fopen(fx->path, "w")) == NULL) {
        bu_free(line);
        bu_free(fx);
        return -1;
    }
    fprintf(fp, "# trusted issuers\n%s\n", line);
    fclose(fp);
    bu_free(line);
    if (bu_keyring_open(&fx->kr, fx->path) != BU_OK) {
        bu_free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int
token_teardown(void **state)
{
    struct fixture *fx = *state;
    bu_keyring_close(fx->kr);
    unlink(fx->path);
    rmdir(fx->dir);
    bu_paseto_key_wipe(&fx->secret);
    bu_free(fx);
    return 0;
}

// ---- helpers ----

static struct bu_claims
claims_default(void)
{
    struct bu_claims c = { .perms = BU_PERM_READ | BU_PERM_MANAGE };
    strcpy(c.sub, "alice@example.com");
    strcpy(c.tenant, "acme");
    c.iat = NOW;
    c.exp = NOW + 3600;
    return c;
}

// raw_token signs the exact claims and footer texts with fx's trusted key.
static char *
raw_token_footer(struct fixture *fx, const char *claims, const char *footer)
{
    char *token = NULL;
    assert_rv(bu_paseto_v4_sign(&fx->secret, (const uint8_t *) claims,
                  strlen(claims), (const uint8_t *) footer, strlen(footer),
                  NULL, 0, &token),
        BU_OK);
    return token;
}

// raw_token signs claims with the footer bu_token_issue would write.
static char *
raw_token(struct fixture *fx, const char *claims)
{
    char footer[128];
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"}", fx->kid);
    return raw_token_footer(fx, claims, footer);
}

// verify_raw gives bu_token_verify's result for the given claims text.
static int
verify_raw(struct fixture *fx, const char *claims)
{
    struct bu_claims c;
    char *token = raw_token(fx, claims);
    int rv = bu_token_verify(fx->kr, token, NOW, &c);
    bu_free(token);
    return rv;
}

static int
verify_footer(struct fixture *fx, const char *footer)
{
    static const char claims[] = "{\"tenant\":\"acme\",\"perms\":[],"
                                 "\"iat\":\"" NOW_S "\",\"exp\":\"" HOUR_S
                                 "\",\"jti\":\"j-1\"}";
    struct bu_claims c;
    char *token = raw_token_footer(fx, claims, footer);
    int rv = bu_token_verify(fx->kr, token, NOW, &c);
    bu_free(token);
    return rv;
}

// ---- names ----

static void
test_tenant_valid(void **state)
{
    (void) state;
    char max[BU_TENANT_MAX + 2];

    assert_true(bu_tenant_valid("a"));
    assert_true(bu_tenant_valid("0"));
    assert_true(bu_tenant_valid("acme"));
    assert_true(bu_tenant_valid("acme-eu_2"));
    memset(max, 'a', BU_TENANT_MAX);
    max[BU_TENANT_MAX] = '\0';
    assert_true(bu_tenant_valid(max));
    max[BU_TENANT_MAX] = 'a';
    max[BU_TENANT_MAX + 1] = '\0';
    assert_false(bu_tenant_valid(max)); // 64 characters

    static const char *const bad[] = { "", "../x", "A", "Acme", "-a", "_a",
        "a b", "a/b", "a.b", "..", "a\n", "caf\xc3\xa9" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        if (bu_tenant_valid(bad[k])) {
            fail_msg("accepted tenant \"%s\"", bad[k]);
        }
    }
    assert_false(bu_tenant_valid(NULL));
}

static void
test_perm_parse(void **state)
{
    (void) state;
    assert_int_equal(bu_perm_parse("DataSpace.Read"), BU_PERM_READ);
    assert_int_equal(bu_perm_parse("DataSpace.Manage"), BU_PERM_MANAGE);
    assert_int_equal(bu_perm_parse("dataspace.read"), 0);
    assert_int_equal(bu_perm_parse("DataSpace.Read "), 0);
    assert_int_equal(bu_perm_parse("DataSpace"), 0);
    assert_int_equal(bu_perm_parse(""), 0);
    assert_int_equal(bu_perm_parse(NULL), 0);
}

// ---- issue and verify ----

static void
test_issue_verify_roundtrip(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims in = claims_default();
    struct bu_claims out;
    char *token = NULL;
    char *token2 = NULL;

    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, NOW, &out), BU_OK);
    assert_string_equal(out.sub, in.sub);
    assert_string_equal(out.tenant, in.tenant);
    assert_int_equal(out.perms, BU_PERM_READ | BU_PERM_MANAGE);
    assert_int_equal(out.iat, in.iat);
    assert_int_equal(out.exp, in.exp);
    // An empty jti is filled with 16 random bytes in hex.
    assert_int_equal(strlen(out.jti), 32);
    assert_int_equal(strspn(out.jti, "0123456789abcdef"), 32);

    // The footer is exactly {"kid":"<pid>"}.
    uint8_t *f = NULL;
    size_t flen = 0;
    char want[128];
    snprintf(want, sizeof(want), "{\"kid\":\"%s\"}", fx->kid);
    assert_rv(bu_paseto_v4_footer(token, &f, &flen), BU_OK);
    assert_string_equal((const char *) f, want);
    bu_free(f);

    // The claims are the documented JSON object.
    uint8_t *m = NULL;
    size_t mlen = 0;
    assert_rv(bu_paseto_v4_verify(&fx->pub, token, NULL, 0, &m, &mlen, NULL,
                  NULL),
        BU_OK);
    json_t *root = json_loadb((const char *) m, mlen, 0, NULL);
    assert_non_null(root);
    const char *sub;
    const char *tenant;
    const char *iat;
    const char *exp;
    const char *jti;
    const char *p0;
    const char *p1;
    assert_int_equal(json_unpack(root, "{s:s, s:s, s:[ss!], s:s, s:s, s:s!}",
                         "sub", &sub, "tenant", &tenant, "perms", &p0, &p1,
                         "iat", &iat, "exp", &exp, "jti", &jti),
        0);
    assert_string_equal(p0, "DataSpace.Read");
    assert_string_equal(p1, "DataSpace.Manage");
    assert_string_equal(iat, NOW_S);
    assert_string_equal(exp, HOUR_S);
    assert_string_equal(jti, out.jti);
    json_decref(root);
    bu_free(m);

    // Every token gets its own jti; a given jti is kept.
    assert_rv(bu_token_issue(&fx->secret, &in, &token2), BU_OK);
    struct bu_claims out2;
    assert_rv(bu_token_verify(fx->kr, token2, NOW, &out2), BU_OK);
    assert_string_not_equal(out2.jti, out.jti);
    bu_free(token2);
    strcpy(in.jti, "job-42");
    in.perms = BU_PERM_READ;
    assert_rv(bu_token_issue(&fx->secret, &in, &token2), BU_OK);
    assert_rv(bu_token_verify(fx->kr, token2, NOW, &out2), BU_OK);
    assert_string_equal(out2.jti, "job-42");
    assert_int_equal(out2.perms, BU_PERM_READ);
    bu_free(token2);
    bu_free(token);
}

static void
test_issue_invalid(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims c = claims_default();
    char *token = NULL;

    assert_rv(bu_token_issue(&fx->pub, &c, &token), BU_EKEY);
    strcpy(c.tenant, "../x");
    assert_rv(bu_token_issue(&fx->secret, &c, &token), BU_EINVAL);
    strcpy(c.tenant, "Acme");
    assert_rv(bu_token_issue(&fx->secret, &c, &token), BU_EINVAL);
    c = claims_default();
    c.exp = c.iat - 1;
    assert_rv(bu_token_issue(&fx->secret, &c, &token), BU_EINVAL);
    c = claims_default();
    memset(c.sub, 'x', sizeof(c.sub)); // not terminated
    assert_rv(bu_token_issue(&fx->secret, &c, &token), BU_EINVAL);
    c = claims_default();
    strcpy(c.sub, "\xff\xfe"); // not UTF-8
    assert_rv(bu_token_issue(&fx->secret, &c, &token), BU_EINVAL);
    assert_null(token);
}

static void
test_expired(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims in = claims_default();
    struct bu_claims out = { .perms = 0 };
    char *token = NULL;

    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, in.exp - 1, &out), BU_OK);
    memset(&out, 0, sizeof(out));
    assert_rv(bu_token_verify(fx->kr, token, in.exp, &out), BU_EEXPIRED);
    assert_rv(bu_token_verify(fx->kr, token, in.exp + 86400, &out),
        BU_EEXPIRED);
    // Nothing written on failure.
    assert_int_equal(out.tenant[0], '\0');
    bu_free(token);
}

static void
test_iat_future(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims in = claims_default();
    struct bu_claims out;
    char *token = NULL;

    // Within the 60 s skew.
    in.iat = NOW + 60;
    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, NOW, &out), BU_OK);
    bu_free(token);
    // Beyond it.
    in.iat = NOW + 61;
    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, NOW, &out), BU_EAUTH);
    assert_rv(bu_token_verify(fx->kr, token, NOW + 1, &out), BU_OK);
    bu_free(token);
}

static void
test_unknown_kid(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims in = claims_default();
    struct bu_claims out;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    char *token = NULL;

    // A key the keyring does not hold.
    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    assert_rv(bu_token_issue(&sk, &in, &token), BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, NOW, &out), BU_EAUTH);
    bu_free(token);
    bu_paseto_key_wipe(&sk);

    // A kid that is not a PASERK id at all.
    assert_rv(verify_footer(fx, "{\"kid\":\"nobody\"}"), BU_EAUTH);
    assert_rv(verify_footer(fx, "{\"kid\":\"\"}"), BU_EAUTH);
}

static void
test_tampered(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims in = claims_default();
    struct bu_claims out;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    char *token = NULL;

    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    token[20] = token[20] == 'A' ? 'B' : 'A';
    assert_rv(bu_token_verify(fx->kr, token, NOW, &out), BU_ESIG);
    bu_free(token);

    // A forger's key with the trusted kid in the footer.
    char footer[128];
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"}", fx->kid);
    const char *claims = "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                         "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}";
    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) claims,
                  strlen(claims), (const uint8_t *) footer, strlen(footer),
                  NULL, 0, &token),
        BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, NOW, &out), BU_ESIG);
    bu_free(token);
    bu_paseto_key_wipe(&sk);

    // Not a token at all.
    assert_rv(bu_token_verify(fx->kr, "", NOW, &out), BU_EAUTH);
    assert_rv(bu_token_verify(fx->kr, NULL, NOW, &out), BU_EAUTH);
    assert_rv(bu_token_verify(fx->kr, "v4.local.AAAA.AAAA", NOW, &out),
        BU_EAUTH);
}

static void
test_bad_tenant(void **state)
{
    struct fixture *fx = *state;
    char claims[512];
    char t64[65];

    memset(t64, 'a', 64);
    t64[64] = '\0';
    const char *tenants[] = { "../x", "A", t64, "" };
    for (size_t k = 0; k < sizeof(tenants) / sizeof(tenants[0]); k++) {
        snprintf(claims, sizeof(claims),
            "{\"tenant\":\"%s\",\"perms\":[],\"iat\":\"" NOW_S
            "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}",
            tenants[k]);
        if (verify_raw(fx, claims) != BU_EAUTH) {
            fail_msg("accepted tenant \"%s\"", tenants[k]);
        }
    }
    // A tenant that is not a string.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":7,\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}"),
        BU_EAUTH);
    // The 63-character maximum is fine.
    t64[63] = '\0';
    snprintf(claims, sizeof(claims),
        "{\"tenant\":\"%s\",\"perms\":[],\"iat\":\"" NOW_S
        "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}",
        t64);
    assert_rv(verify_raw(fx, claims), BU_OK);
}

static void
test_perms_in_token(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims c;
    char *token;

#define PERMS_CLAIMS(perms)                                                 \
    "{\"tenant\":\"acme\",\"perms\":" perms ",\"iat\":\"" NOW_S             \
    "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}"

    // Unknown names are ignored.
    token = raw_token(fx, PERMS_CLAIMS("[\"DataSpace.Read\",\"Root\"]"));
    assert_rv(bu_token_verify(fx->kr, token, NOW, &c), BU_OK);
    assert_int_equal(c.perms, BU_PERM_READ);
    bu_free(token);
    token = raw_token(fx, PERMS_CLAIMS("[]"));
    assert_rv(bu_token_verify(fx->kr, token, NOW, &c), BU_OK);
    assert_int_equal(c.perms, 0);
    bu_free(token);
    // Not an array of strings.
    assert_rv(verify_raw(fx, PERMS_CLAIMS("\"DataSpace.Read\"")), BU_EAUTH);
    assert_rv(verify_raw(fx, PERMS_CLAIMS("[1]")), BU_EAUTH);
    assert_rv(verify_raw(fx, PERMS_CLAIMS("[[\"DataSpace.Read\"]]")),
        BU_EAUTH);
    assert_rv(verify_raw(fx, PERMS_CLAIMS("{}")), BU_EAUTH);
    assert_rv(verify_raw(fx, PERMS_CLAIMS("null")), BU_EAUTH);
#undef PERMS_CLAIMS
}

static void
test_missing_claims(void **state)
{
    struct fixture *fx = *state;

    // The complete set verifies; each required claim left out does not.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}"),
        BU_OK);
    assert_rv(verify_raw(fx,
                  "{\"perms\":[],\"iat\":\"" NOW_S "\",\"exp\":\"" HOUR_S
                  "\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"exp\":\"" HOUR_S
                  "\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\"}"),
        BU_EAUTH);
    // Wrong types and formats.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":1893456000,"
                  "\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"2030-01-01t01:00:00z\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"sub\":5}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":null}"),
        BU_EAUTH);
    // No jti, or an empty one: such a token could never be revoked.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":\"\"}"),
        BU_EAUTH);
    // A jti no revocation list could name (a comment, a space).
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":\"#j\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j 1\"}"),
        BU_EAUTH);
    // exp before iat.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" HOUR_S
                  "\",\"exp\":\"" NOW_S "\"}"),
        BU_EAUTH);
    // A not-before in the future is honoured.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"nbf\":\"" HOUR_S
                  "\",\"jti\":\"j-1\"}"),
        BU_EAUTH);
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"nbf\":\"" NOW_S
                  "\",\"jti\":\"j-1\"}"),
        BU_OK);
    // A sub too long for struct bu_claims.
    char claims[512];
    char sub[200];
    memset(sub, 's', sizeof(sub) - 1);
    sub[sizeof(sub) - 1] = '\0';
    snprintf(claims, sizeof(claims),
        "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
        "\",\"exp\":\"" HOUR_S "\",\"sub\":\"%s\"}",
        sub);
    assert_rv(verify_raw(fx, claims), BU_EAUTH);
}

static void
test_claims_not_object(void **state)
{
    struct fixture *fx = *state;
    static const char *const bad[] = { "[]", "\"acme\"", "42", "null", "",
        "not json", "{\"tenant\":\"acme\"", "{} {}" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        if (verify_raw(fx, bad[k]) != BU_EAUTH) {
            fail_msg("accepted claims \"%s\"", bad[k]);
        }
    }
}

static void
test_duplicate_keys(void **state)
{
    struct fixture *fx = *state;
    char footer[160];

    // A second tenant would otherwise win or lose depending on the parser.
    assert_rv(verify_raw(fx,
                  "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                  "\",\"exp\":\"" HOUR_S "\",\"tenant\":\"other\"}"),
        BU_EAUTH);
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\",\"kid\":\"%s\"}",
        fx->kid, fx->kid);
    assert_rv(verify_footer(fx, footer), BU_EAUTH);
}

static void
test_footer_not_json(void **state)
{
    struct fixture *fx = *state;
    char footer[1024];

    // The well-formed footer, for contrast.
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"}", fx->kid);
    assert_rv(verify_footer(fx, footer), BU_OK);
    // Extra keys within the bound are tolerated.
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\",\"x\":1}", fx->kid);
    assert_rv(verify_footer(fx, footer), BU_OK);

    assert_rv(verify_footer(fx, fx->kid), BU_EAUTH);
    assert_rv(verify_footer(fx, "kid"), BU_EAUTH);
    assert_rv(verify_footer(fx, "{\"kid\":5}"), BU_EAUTH);
    assert_rv(verify_footer(fx, "{}"), BU_EAUTH);
    snprintf(footer, sizeof(footer), "[\"%s\"]", fx->kid);
    assert_rv(verify_footer(fx, footer), BU_EAUTH);
    snprintf(footer, sizeof(footer), "{\"kid\":[\"%s\"]}", fx->kid);
    assert_rv(verify_footer(fx, footer), BU_EAUTH);
    snprintf(footer, sizeof(footer), "{\"kid\":\"%s\"", fx->kid);
    assert_rv(verify_footer(fx, footer), BU_EAUTH);
    // Too many keys.
    snprintf(footer, sizeof(footer),
        "{\"kid\":\"%s\",\"a\":1,\"b\":2,\"c\":3,\"d\":4}", fx->kid);
    assert_rv(verify_footer(fx, footer), BU_EAUTH);
    // Too long, though otherwise valid.
    int n = snprintf(footer, sizeof(footer), "{\"kid\":\"%s\",\"pad\":\"",
        fx->kid);
    memset(footer + n, 'p', 600);
    strcpy(footer + n + 600, "\"}");
    assert_rv(verify_footer(fx, footer), BU_EAUTH);

    // No footer at all.
    struct bu_claims c;
    const char *claims = "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
                         "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\"}";
    char *token = NULL;
    assert_rv(bu_paseto_v4_sign(&fx->secret, (const uint8_t *) claims,
                  strlen(claims), NULL, 0, NULL, 0, &token),
        BU_OK);
    assert_rv(bu_token_verify(fx->kr, token, NOW, &c), BU_EAUTH);
    bu_free(token);
}

static void
test_oversize_token(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims c;
    char *claims = bu_alloc(BU_TOKEN_MAX_BYTES);
    char *token;
    assert_non_null(claims);

    // Grow a padding claim until the token passes the limit: the last
    // token under it verifies, the first over it does not.
    size_t pad = 5800;
    size_t len = 0;
    int seen_ok = 0;
    for (;; pad++) {
        int n = snprintf(claims, BU_TOKEN_MAX_BYTES,
            "{\"tenant\":\"acme\",\"perms\":[],\"iat\":\"" NOW_S
            "\",\"exp\":\"" HOUR_S "\",\"jti\":\"j-1\",\"pad\":\"");
        memset(claims + n, 'p', pad);
        strcpy(claims + n + pad, "\"}");
        token = raw_token(fx, claims);
        len = strlen(token);
        int rv = bu_token_verify(fx->kr, token, NOW, &c);
        bu_free(token);
        if (len > BU_TOKEN_MAX_BYTES) {
            assert_rv(rv, BU_EAUTH);
            break;
        }
        assert_rv(rv, BU_OK);
        seen_ok = 1;
    }
    assert_true(seen_ok);
    assert_true(len <= BU_TOKEN_MAX_BYTES + 4);
    bu_free(claims);
}

static void
test_alloc_failures(void **state)
{
    struct fixture *fx = *state;
    struct bu_claims in = claims_default();
    struct bu_claims out;
    char *token = NULL;
    int rv;

    // Only bu_alloc fails here (jansson has its own allocator): issue and
    // verify either succeed or report BU_ENOMEM, never a wrong verdict.
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        rv = bu_token_issue(&fx->secret, &in, &token);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
        assert_null(token);
    }
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        rv = bu_token_verify(fx->kr, token, NOW, &out);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
    }
    assert_string_equal(out.tenant, "acme");
    bu_free(token);
}

// ---- the memo of verified tokens ----

// keyring_write replaces the fixture's keyring file with the public key of
// pub and reloads it.
static void
keyring_write(struct fixture *fx, const struct bu_paseto_key *pub)
{
    char *line = NULL;
    assert_rv(bu_paserk_format(pub, &line), BU_OK);
    FILE *fp = fopen(fx->path, "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", line);
    fclose(fp);
    bu_free(line);
    assert_rv(bu_keyring_reload(fx->kr), BU_OK);
}

static void
test_cache_repeats(void **state)
{
    struct fixture       *fx = *state;
    struct bu_token_cache cache = { .tick = 0 };
    struct bu_claims      in = claims_default();
    struct bu_claims      out;
    char                 *token = NULL;

    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    assert_rv(bu_token_cache_verify(&cache, fx->kr, token, NOW, &out), BU_OK);
    assert_string_equal(out.tenant, "acme");
    // A repeat is answered from the memo: no allocation, no signature check.
    memset(&out, 0, sizeof(out));
    bu_alloc_fail_after(0);
    int rv = bu_token_cache_verify(&cache, fx->kr, token, NOW + 10, &out);
    bu_alloc_fail_after(-1);
    assert_rv(rv, BU_OK);
    assert_string_equal(out.tenant, "acme");
    assert_int_equal(out.perms, BU_PERM_READ | BU_PERM_MANAGE);

    // Another token, one character changed, is verified in full and fails.
    size_t n = strlen(token);
    char   was = token[n - 60];
    token[n - 60] = was == 'A' ? 'B' : 'A';
    assert_true(bu_token_cache_verify(&cache, fx->kr, token, NOW, &out)
        != BU_OK);
    token[n - 60] = was;

    // Expiry is checked on every hit.
    assert_rv(bu_token_cache_verify(&cache, fx->kr, token, in.exp - 1, &out),
        BU_OK);
    assert_rv(bu_token_cache_verify(&cache, fx->kr, token, in.exp, &out),
        BU_EEXPIRED);

    // More tokens than slots: each still verifies, evicted or not.
    char *many[BU_TOKEN_CACHE_SLOTS + 2];
    for (size_t i = 0; i < BU_TOKEN_CACHE_SLOTS + 2; i++) {
        snprintf(in.jti, sizeof(in.jti), "jti-%zu", i);
        assert_rv(bu_token_issue(&fx->secret, &in, &many[i]), BU_OK);
        assert_rv(
            bu_token_cache_verify(&cache, fx->kr, many[i], NOW, &out), BU_OK);
        assert_string_equal(out.jti, in.jti);
    }
    for (size_t i = 0; i < BU_TOKEN_CACHE_SLOTS + 2; i++) {
        snprintf(in.jti, sizeof(in.jti), "jti-%zu", i);
        assert_rv(
            bu_token_cache_verify(&cache, fx->kr, many[i], NOW, &out), BU_OK);
        assert_string_equal(out.jti, in.jti);
        bu_free(many[i]);
    }
    bu_token_cache_clear(&cache);
    bu_free(token);
}

// A key taken out of the keyring stops its tokens at the reload, even
// those the memo holds.
static void
test_cache_keyring_reload(void **state)
{
    struct fixture       *fx = *state;
    struct bu_token_cache cache = { .tick = 0 };
    struct bu_claims      in = claims_default();
    struct bu_claims      out;
    char                 *token = NULL;
    struct bu_paseto_key  other_secret, other_pub;

    assert_rv(bu_token_issue(&fx->secret, &in, &token), BU_OK);
    assert_rv(bu_token_cache_verify(&cache, fx->kr, token, NOW, &out), BU_OK);
    assert_rv(bu_paseto_keypair(&other_secret, &other_pub), BU_OK);
    keyring_write(fx, &other_pub);
    assert_rv(
        bu_token_cache_verify(&cache, fx->kr, token, NOW, &out), BU_EAUTH);
    // Trusted again: verified again.
    keyring_write(fx, &fx->pub);
    assert_rv(bu_token_cache_verify(&cache, fx->kr, token, NOW, &out), BU_OK);
    bu_paseto_key_wipe(&other_secret);
    bu_token_cache_clear(&cache);
    bu_free(token);
}

// A revoked jti is refused, from the memo too, once the list is re-read;
// other tokens of the same key go on verifying.
static void
test_revoked_jti(void **state)
{
    struct fixture       *fx = *state;
    struct bu_token_cache cache = { .tick = 0 };
    struct bu_claims      in = claims_default();
    struct bu_claims      out;
    char                 *leaked = NULL, *other = NULL;
    char                  path[128];

    strcpy(in.jti, "leaked-1");
    assert_rv(bu_token_issue(&fx->secret, &in, &leaked), BU_OK);
    strcpy(in.jti, "kept-2");
    assert_rv(bu_token_issue(&fx->secret, &in, &other), BU_OK);
    assert_rv(
        bu_token_cache_verify(&cache, fx->kr, leaked, NOW, &out), BU_OK);

    snprintf(path, sizeof(path), "%s/revoked", fx->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("# leaked in a log\n  leaked-1  \n\nsomething-else\n", fp);
    fclose(fp);
    assert_rv(bu_keyring_revocations(fx->kr, path), BU_OK);
    assert_int_equal(bu_keyring_revoked_count(fx->kr), 2);

    assert_rv(bu_token_verify(fx->kr, leaked, NOW, &out), BU_EREVOKED);
    assert_rv(
        bu_token_cache_verify(&cache, fx->kr, leaked, NOW, &out), BU_EREVOKED);
    assert_rv(bu_token_cache_verify(&cache, fx->kr, other, NOW, &out), BU_OK);
    assert_string_equal(out.jti, "kept-2");

    // Taken off the list and re-read: the token verifies again.
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_rv(bu_keyring_reload(fx->kr), BU_OK);
    assert_rv(
        bu_token_cache_verify(&cache, fx->kr, leaked, NOW, &out), BU_OK);
    assert_rv(bu_keyring_revocations(fx->kr, NULL), BU_OK);
    unlink(path);
    bu_token_cache_clear(&cache);
    bu_free(leaked);
    bu_free(other);
}

int
main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_valid),
        cmocka_unit_test(test_perm_parse),
        cmocka_unit_test(test_issue_verify_roundtrip),
        cmocka_unit_test(test_issue_invalid),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_iat_future),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_bad_tenant),
        cmocka_unit_test(test_perms_in_token),
        cmocka_unit_test(test_missing_claims),
        cmocka_unit_test(test_claims_not_object),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_footer_not_json),
        cmocka_unit_test(test_oversize_token),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_cache_repeats),
        cmocka_unit_test(test_cache_keyring_reload),
        cmocka_unit_test(test_revoked_jti),
    };
    return cmocka_run_group_tests(tests, token_setup, token_teardown);
}
