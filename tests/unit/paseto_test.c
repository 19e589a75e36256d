// SPDX-License-Identifier: MIT
/*
 * Tests of PASETO v4.public and PASERK. The official v4 vectors are read
 * from tests/data/paseto-v4.json (under $BU_SRC_DIR): each 4-S token must
 * verify to its payload and be reproduced byte for byte by sign, and each
 * 4-F token must be refused, with 4-F-2 showing that the key-type check is
 * what refuses it. The remaining tests cover strict base64url, the token
 * layout, tampering and key misuse, which the vectors do not reach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "auth/paseto.h"
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

// The public key of every 4-S vector, and its PASERK id.
#define VEC_PUBLIC                                                          \
    "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2"
#define VEC_PID "k4.pid.yh4-bJYjOYAG6CWy0zsfPmpKylxS7uAWrxqVmBN2KAiJ"

// Bytes 0x70..0x8f: the PASERK vectors' key, and the 4-F vectors' local key.
#define VEC_KEY7X                                                           \
    "707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"
#define VEC_KEY7X_PID "k4.pid.9ShR3xc8-qVJ_di0tc9nx0IDIqbatdeM2mqLFBJsKRHs"

// ---- helpers ----

static void
hex_key(const char *hex, enum bu_key_kind kind, struct bu_paseto_key *keyp)
{
    uint8_t bytes[64];
    size_t len = 0;
    assert_int_equal(sodium_hex2bin(bytes, sizeof(bytes), hex, strlen(hex),
                         NULL, &len, NULL),
        0);
    assert_rv(bu_paseto_key_from_bytes(keyp, kind, bytes, len), BU_OK);
    sodium_memzero(bytes, sizeof(bytes));
}

static const char *
vec_str(json_t *vec, const char *field)
{
    json_t *v = json_object_get(vec, field);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_t *
vec_find(json_t *vectors, const char *name)
{
    size_t idx;
    json_t *vec;
    json_array_foreach(json_object_get(vectors, "tests"), idx, vec)
    {
        if (strcmp(vec_str(vec, "name"), name) == 0) {
            return vec;
        }
    }
    fail_msg("vector %s not in file", name);
    return NULL;
}

// A copy of s with the first occurrence of from replaced by to.
static char *
str_replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    size_t pre = (size_t) (at - s);
    size_t flen = strlen(from);
    size_t tlen = strlen(to);
    char *out = bu_alloc(strlen(s) - flen + tlen + 1);
    assert_non_null(out);
    memcpy(out, s, pre);
    memcpy(out + pre, to, tlen);
    strcpy(out + pre + tlen, at + flen);
    return out;
}

static char *
str_cat(const char *a, const char *b)
{
    char *out = bu_alloc(strlen(a) + strlen(b) + 1);
    assert_non_null(out);
    strcpy(out, a);
    strcat(out, b);
    return out;
}

// verify_rv verifies token with pub and no implicit assertion, freeing
// whatever verify returns, and gives verify's result.
static int
verify_rv(const struct bu_paseto_key *pub, const char *token)
{
    uint8_t *m = NULL;
    uint8_t *f = NULL;
    size_t mlen = 0;
    size_t flen = 0;
    int rv = bu_paseto_v4_verify(pub, token, NULL, 0, &m, &mlen, &f, &flen);
    if (rv != BU_OK) {
        assert_null(m);
        assert_null(f);
    }
    bu_free(m);
    bu_free(f);
    return rv;
}

// ---- fixtures ----

static int
vectors_setup(void **state)
{
    const char *dir = getenv("BU_SRC_DIR");
    char path[4096];
    json_error_t jerr;
    if (dir == NULL) {
        fprintf(stderr, "BU_SRC_DIR is not set\n");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/tests/data/paseto-v4.json", dir);
    json_t *vectors = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (vectors == NULL) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return -1;
    }
    *state = vectors;
    return 0;
}

static int
vectors_teardown(void **state)
{
    json_decref(*state);
    return 0;
}

// ---- official vectors ----

static void
test_vectors_sign_verify(void **state)
{
    json_t *vectors = *state;
    size_t idx;
    json_t *vec;
    int nsign = 0;

    json_array_foreach(json_object_get(vectors, "tests"), idx, vec)
    {
        const char *name = vec_str(vec, "name");
        if (strncmp(name, "4-S-", 4) != 0) {
            continue;
        }
        nsign++;
        assert_false(json_is_true(json_object_get(vec, "expect-fail")));
        struct bu_paseto_key sk;
        struct bu_paseto_key pk;
        struct bu_paseto_key derived;
        hex_key(vec_str(vec, "secret-key"), BU_KEY_V4_SECRET, &sk);
        hex_key(vec_str(vec, "public-key"), BU_KEY_V4_PUBLIC, &pk);
        assert_rv(bu_paseto_public_of(&sk, &derived), BU_OK);
        assert_memory_equal(derived.bytes, pk.bytes, 32);

        const char *token = vec_str(vec, "token");
        const char *payload = vec_str(vec, "payload");
        const char *footer = vec_str(vec, "footer");
        const char *ia = vec_str(vec, "implicit-assertion");

        // Verify gives the payload and the footer.
        uint8_t *m = NULL;
        uint8_t *f = NULL;
        size_t mlen = 0;
        size_t flen = 0;
        assert_rv(bu_paseto_v4_verify(&pk, token, (const uint8_t *) ia,
                      strlen(ia), &m, &mlen, &f, &flen),
            BU_OK);
        assert_int_equal(mlen, strlen(payload));
        assert_string_equal((const char *) m, payload);
        assert_int_equal(flen, strlen(footer));
        assert_string_equal((const char *) f, footer);
        bu_free(m);
        bu_free(f);

        // Sign reproduces the token byte for byte.
        char *out = NULL;
        assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) payload,
                      strlen(payload), (const uint8_t *) footer,
                      strlen(footer), (const uint8_t *) ia, strlen(ia),
                      &out),
            BU_OK);
        assert_string_equal(out, token);
        bu_free(out);

        // The implicit assertion is bound: leaving it out (or adding one
        // where there was none) breaks the signature.
        const char *other = ia[0] != '\0' ? "" : "{\"x\":1}";
        m = NULL;
        assert_rv(bu_paseto_v4_verify(&pk, token, (const uint8_t *) other,
                      strlen(other), &m, &mlen, NULL, NULL),
            BU_ESIG);
        assert_null(m);

        // The same key rebuilt from the seed signs identically.
        uint8_t seed[32];
        uint8_t pkb[32];
        uint8_t skb[64];
        struct bu_paseto_key sk2;
        const char *seedhex = vec_str(vec, "secret-key-seed");
        assert_int_equal(sodium_hex2bin(seed, sizeof(seed), seedhex,
                             strlen(seedhex), NULL, NULL, NULL),
            0);
        assert_int_equal(crypto_sign_seed_keypair(pkb, skb, seed), 0);
        assert_rv(bu_paseto_key_from_bytes(&sk2, BU_KEY_V4_SECRET, skb, 64),
            BU_OK);
        assert_memory_equal(sk2.bytes, sk.bytes, 64);
        bu_paseto_key_wipe(&sk);
        bu_paseto_key_wipe(&sk2);
        sodium_memzero(skb, sizeof(skb));
        sodium_memzero(seed, sizeof(seed));
    }
    assert_int_equal(nsign, 3);
}

static void
test_vector_4f1_local_token(void **state)
{
    json_t *vec = vec_find(*state, "4-F-1");
    const char *token = vec_str(vec, "token");
    const char *ia = vec_str(vec, "implicit-assertion");
    struct bu_paseto_key pk;
    uint8_t *m = NULL;
    size_t mlen = 0;

    assert_true(json_is_true(json_object_get(vec, "expect-fail")));
    hex_key(vec_str(vec, "public-key"), BU_KEY_V4_PUBLIC, &pk);
    // A v4.local token never reaches the crypto of a public verifier.
    assert_rv(bu_paseto_v4_verify(&pk, token, (const uint8_t *) ia,
                  strlen(ia), &m, &mlen, NULL, NULL),
        BU_EPARSE);
    assert_null(m);
}

static void
test_vector_4f2_local_key(void **state)
{
    json_t *vec = vec_find(*state, "4-F-2");
    const char *token = vec_str(vec, "token");
    const char *ia = vec_str(vec, "implicit-assertion");
    const char *keyhex = vec_str(vec, "key");
    struct bu_paseto_key local;
    struct bu_paseto_key pk;
    uint8_t *m = NULL;
    size_t mlen = 0;

    assert_true(json_is_true(json_object_get(vec, "expect-fail")));
    assert_string_equal(keyhex, VEC_KEY7X);

    // The vector's key is a local (symmetric) key: refused by type.
    hex_key(keyhex, BU_KEY_V4_LOCAL, &local);
    assert_rv(bu_paseto_v4_verify(&local, token, (const uint8_t *) ia,
                  strlen(ia), &m, &mlen, NULL, NULL),
        BU_EKEY);
    assert_null(m);

    // The same 32 bytes used as an Ed25519 seed do verify the token, so
    // the type check is the only thing that refuses it.
    uint8_t pkb[32];
    uint8_t skb[64];
    assert_int_equal(crypto_sign_seed_keypair(pkb, skb, local.bytes), 0);
    assert_rv(bu_paseto_key_from_bytes(&pk, BU_KEY_V4_PUBLIC, pkb, 32),
        BU_OK);
    assert_rv(bu_paseto_v4_verify(&pk, token, (const uint8_t *) ia,
                  strlen(ia), &m, &mlen, NULL, NULL),
        BU_OK);
    assert_non_null(m);
    bu_free(m);
    sodium_memzero(skb, sizeof(skb));
    bu_paseto_key_wipe(&local);

    // Under the 4-S public key it is simply a bad signature.
    hex_key(VEC_PUBLIC, BU_KEY_V4_PUBLIC, &pk);
    m = NULL;
    assert_rv(bu_paseto_v4_verify(&pk, token, (const uint8_t *) ia,
                  strlen(ia), &m, &mlen, NULL, NULL),
        BU_ESIG);
    assert_null(m);
}

static void
test_vector_4f3_to_4f5(void **state)
{
    static const char *const names[] = { "4-F-3", "4-F-4", "4-F-5" };
    struct bu_paseto_key pk;

    hex_key(VEC_PUBLIC, BU_KEY_V4_PUBLIC, &pk);
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        json_t *vec = vec_find(*state, names[k]);
        const char *token = vec_str(vec, "token");
        assert_true(json_is_true(json_object_get(vec, "expect-fail")));
        assert_rv(verify_rv(&pk, token), BU_EPARSE);
    }

    // 4-F-5's padding is refused by the decoder too, not only by the
    // header: the same segments under a v4.public header still fail.
    const char *token = vec_str(vec_find(*state, "4-F-5"), "token");
    assert_non_null(strstr(token, "=="));
    char *pub = str_replace(token, "v4.local.", "v4.public.");
    assert_rv(verify_rv(&pk, pub), BU_EPARSE);
    bu_free(pub);
}

// ---- layout and strict base64url ----

static void
test_b64_strict(void **state)
{
    json_t *s1 = vec_find(*state, "4-S-1");
    json_t *s2 = vec_find(*state, "4-S-2");
    const char *t1 = vec_str(s1, "token");
    const char *t2 = vec_str(s2, "token");
    struct bu_paseto_key pk;
    char *bad;

    hex_key(VEC_PUBLIC, BU_KEY_V4_PUBLIC, &pk);
    assert_rv(verify_rv(&pk, t1), BU_OK);
    assert_rv(verify_rv(&pk, t2), BU_OK);

    // 4-S-1's body is 133 bytes: 178 characters, the last of which carries
    // 4 unused bits. It ends in 'A'; 'B' decodes to the same bytes in a
    // lenient decoder (and would then verify), so only strictness
    // refuses it.
    size_t n1 = strlen(t1);
    assert_int_equal(t1[n1 - 1], 'A');
    bad = bu_strdup(t1);
    bad[n1 - 1] = 'B';
    assert_rv(verify_rv(&pk, bad), BU_EPARSE);
    bu_free(bad);

    static const char *const tails[] = {
        "==", // padding
        "=",  // padding
        " ",  // whitespace
        "\n", // newline
    };
    for (size_t k = 0; k < sizeof(tails) / sizeof(tails[0]); k++) {
        bad = str_cat(t1, tails[k]);
        assert_rv(verify_rv(&pk, bad), BU_EPARSE);
        bu_free(bad);
        // The same in the footer segment.
        bad = str_cat(t2, tails[k]);
        assert_rv(verify_rv(&pk, bad), BU_EPARSE);
        bu_free(bad);
    }

    // A segment of length 1 mod 4 (6 bits cannot make a byte), in the body
    // and in the footer: pad each with 'A's, which are zero bits.
    const char *tokens[] = { t1, t2 };
    for (size_t k = 0; k < 2; k++) {
        const char *seg = strrchr(tokens[k], '.') + 1;
        size_t n = strlen(seg);
        char tail[4] = "AAA";
        tail[(1 + 4 - n % 4) % 4] = '\0';
        bad = str_cat(tokens[k], tail);
        assert_int_equal(strlen(strrchr(bad, '.') + 1) % 4, 1);
        assert_rv(verify_rv(&pk, bad), BU_EPARSE);
        bu_free(bad);
    }

    // The standard alphabet's '+' and '/' in place of '-' and '_'.
    assert_non_null(strchr(t1 + 10, '-'));
    assert_non_null(strchr(t1 + 10, '_'));
    bad = str_replace(t1, "-", "+");
    assert_rv(verify_rv(&pk, bad), BU_EPARSE);
    bu_free(bad);
    bad = str_replace(t1, "_", "/");
    assert_rv(verify_rv(&pk, bad), BU_EPARSE);
    bu_free(bad);

    // Whitespace inside the body.
    bad = str_replace(t1, "eyJk", "ey Jk");
    assert_rv(verify_rv(&pk, bad), BU_EPARSE);
    bu_free(bad);
}

static void
test_layout(void **state)
{
    const char *t1 = vec_str(vec_find(*state, "4-S-1"), "token");
    const char *t2 = vec_str(vec_find(*state, "4-S-2"), "token");
    struct bu_paseto_key pk;
    uint8_t sentinel[1];
    uint8_t *f = sentinel;
    size_t flen = 99;
    char *bad;

    hex_key(VEC_PUBLIC, BU_KEY_V4_PUBLIC, &pk);

    // An empty footer segment is never produced by sign; refuse it.
    bad = str_cat(t1, ".");
    assert_rv(verify_rv(&pk, bad), BU_EPARSE);
    assert_rv(bu_paseto_v4_footer(bad, &f, &flen), BU_EPARSE);
    bu_free(bad);
    // Three segments.
    bad = str_cat(t2, ".eyJ9");
    assert_rv(verify_rv(&pk, bad), BU_EPARSE);
    assert_rv(bu_paseto_v4_footer(bad, &f, &flen), BU_EPARSE);
    bu_free(bad);
    // Header variants.
    static const char *const headers[] = { "V4.public.", "v4.Public.",
        "v3.public.", "v4.local.", "v4.public", "v4public." };
    for (size_t k = 0; k < sizeof(headers) / sizeof(headers[0]); k++) {
        bad = str_replace(t1, "v4.public.", headers[k]);
        assert_rv(verify_rv(&pk, bad), BU_EPARSE);
        bu_free(bad);
    }
    assert_rv(verify_rv(&pk, ""), BU_EPARSE);
    assert_rv(verify_rv(&pk, "v4.public."), BU_EPARSE);
    assert_rv(verify_rv(&pk, NULL), BU_EPARSE);
    assert_ptr_equal(f, sentinel);
    assert_int_equal(flen, 99);

    // bu_paseto_v4_footer: decode only.
    assert_rv(bu_paseto_v4_footer(t1, &f, &flen), BU_OK);
    assert_null(f);
    assert_int_equal(flen, 0);
    assert_rv(bu_paseto_v4_footer(t2, &f, &flen), BU_OK);
    assert_string_equal((const char *) f,
        vec_str(vec_find(*state, "4-S-2"), "footer"));
    assert_int_equal(flen, strlen((const char *) f));
    bu_free(f);
    // Its decoding is just as strict.
    bad = str_cat(t2, "=");
    assert_rv(bu_paseto_v4_footer(bad, &f, &flen), BU_EPARSE);
    bu_free(bad);
}

// A token "v4.public." || b64url(n zero bytes).
static char *
zero_body_token(size_t n)
{
    uint8_t body[128] = { 0 };
    char b64[256];
    assert_true(n <= sizeof(body));
    sodium_bin2base64(b64, sizeof(b64), body, n,
        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return str_cat("v4.public.", b64);
}

static void
test_truncated_payload(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    char *token;

    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    // Shorter than a signature: refused before any length arithmetic.
    static const size_t lens[] = { 0, 1, 32, 63 };
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        token = zero_body_token(lens[k]);
        assert_rv(verify_rv(&pk, token), BU_EPARSE);
        bu_free(token);
    }
    // Exactly a signature (empty message) parses, and fails as a signature.
    token = zero_body_token(64);
    assert_rv(verify_rv(&pk, token), BU_ESIG);
    bu_free(token);

    // A real token cut short.
    const char *msg = "{\"a\":1}";
    assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) msg, strlen(msg),
                  NULL, 0, NULL, 0, &token),
        BU_OK);
    // 88 characters decode to 66 bytes without spare bits: long enough to
    // parse, but the "signature" is now the wrong bytes.
    assert_true(strlen(token) > 10 + 88);
    token[10 + 88] = '\0';
    assert_rv(verify_rv(&pk, token), BU_ESIG);
    token[20] = '\0';
    assert_rv(verify_rv(&pk, token), BU_EPARSE);
    bu_free(token);
    bu_paseto_key_wipe(&sk);
}

// ---- signatures ----

static void
test_sign_verify_roundtrip(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    char *token;
    uint8_t *m;
    uint8_t *f;
    size_t mlen;
    size_t flen;

    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    assert_int_equal(sk.kind, BU_KEY_V4_SECRET);
    assert_int_equal(pk.kind, BU_KEY_V4_PUBLIC);

    // Empty message, no footer: the message and footer come back as empty
    // NUL-terminated strings.
    assert_rv(bu_paseto_v4_sign(&sk, NULL, 0, NULL, 0, NULL, 0, &token),
        BU_OK);
    assert_null(strchr(token + 10, '.'));
    assert_rv(bu_paseto_v4_verify(&pk, token, NULL, 0, &m, &mlen, &f, &flen),
        BU_OK);
    assert_int_equal(mlen, 0);
    assert_int_equal(m[0], '\0');
    assert_int_equal(flen, 0);
    assert_int_equal(f[0], '\0');
    bu_free(m);
    bu_free(f);
    bu_free(token);

    // Binary message, footer and implicit assertion.
    uint8_t bin[300];
    for (size_t k = 0; k < sizeof(bin); k++) {
        bin[k] = (uint8_t) k;
    }
    assert_rv(bu_paseto_v4_sign(&sk, bin, sizeof(bin), bin, 7, bin + 7, 9,
                  &token),
        BU_OK);
    assert_rv(bu_paseto_v4_verify(&pk, token, bin + 7, 9, &m, &mlen, &f,
                  &flen),
        BU_OK);
    assert_int_equal(mlen, sizeof(bin));
    assert_memory_equal(m, bin, sizeof(bin));
    assert_int_equal(m[mlen], '\0');
    assert_int_equal(flen, 7);
    assert_memory_equal(f, bin, 7);
    bu_free(m);
    bu_free(f);
    // The footer is optional for the caller.
    assert_rv(bu_paseto_v4_verify(&pk, token, bin + 7, 9, &m, &mlen, NULL,
                  NULL),
        BU_OK);
    bu_free(m);
    bu_free(token);
    bu_paseto_key_wipe(&sk);
}

static void
test_tampered(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    const char *msg = "{\"sub\":\"alice\",\"tenant\":\"acme\"}";
    char *token;
    char *other;

    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) msg, strlen(msg),
                  (const uint8_t *) "foot", 4, NULL, 0, &token),
        BU_OK);
    assert_rv(verify_rv(&pk, token), BU_OK);

    // Each character of the body changed to another valid one (the last
    // character is left alone: its spare bits would make it EPARSE).
    char *dot = strchr(token + 10, '.');
    for (char *p = token + 10; p < dot - 1; p++) {
        char saved = *p;
        *p = saved == 'A' ? 'B' : 'A';
        assert_rv(verify_rv(&pk, token), BU_ESIG);
        *p = saved;
    }
    // Another footer.
    assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) msg, strlen(msg),
                  (const uint8_t *) "feet", 4, NULL, 0, &other),
        BU_OK);
    char *swapped = str_cat("", token);
    strcpy(strchr(swapped + 10, '.'), strchr(other + 10, '.'));
    assert_rv(verify_rv(&pk, swapped), BU_ESIG);
    // The footer dropped.
    *strchr(swapped + 10, '.') = '\0';
    assert_rv(verify_rv(&pk, swapped), BU_ESIG);
    bu_free(swapped);
    bu_free(other);
    bu_free(token);
    bu_paseto_key_wipe(&sk);
}

static void
test_wrong_key(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    struct bu_paseto_key sk2;
    struct bu_paseto_key pk2;
    char *token;

    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    assert_rv(bu_paseto_keypair(&sk2, &pk2), BU_OK);
    assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) "m", 1, NULL, 0,
                  NULL, 0, &token),
        BU_OK);
    assert_rv(verify_rv(&pk, token), BU_OK);
    assert_rv(verify_rv(&pk2, token), BU_ESIG);
    bu_free(token);
    bu_paseto_key_wipe(&sk);
    bu_paseto_key_wipe(&sk2);
}

static void
test_key_type_misuse(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    struct bu_paseto_key local;
    struct bu_paseto_key none = { .kind = BU_KEY_NONE };
    char *token = NULL;
    char *out = NULL;
    uint8_t *m = NULL;
    size_t mlen = 0;
    char pid[BU_PASERK_PID_SIZE];

    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    hex_key(VEC_KEY7X, BU_KEY_V4_LOCAL, &local);
    assert_rv(bu_paseto_v4_sign(&sk, (const uint8_t *) "m", 1, NULL, 0,
                  NULL, 0, &token),
        BU_OK);

    // Sign only with a secret key.
    assert_rv(bu_paseto_v4_sign(&pk, (const uint8_t *) "m", 1, NULL, 0,
                  NULL, 0, &out),
        BU_EKEY);
    assert_rv(bu_paseto_v4_sign(&local, (const uint8_t *) "m", 1, NULL, 0,
                  NULL, 0, &out),
        BU_EKEY);
    assert_rv(bu_paseto_v4_sign(&none, (const uint8_t *) "m", 1, NULL, 0,
                  NULL, 0, &out),
        BU_EKEY);
    assert_null(out);
    // Verify only with a public key.
    assert_rv(bu_paseto_v4_verify(&sk, token, NULL, 0, &m, &mlen, NULL,
                  NULL),
        BU_EKEY);
    assert_rv(bu_paseto_v4_verify(&local, token, NULL, 0, &m, &mlen, NULL,
                  NULL),
        BU_EKEY);
    assert_rv(bu_paseto_v4_verify(&none, token, NULL, 0, &m, &mlen, NULL,
                  NULL),
        BU_EKEY);
    assert_null(m);
    // A tag with the wrong length for its kind is no key at all.
    struct bu_paseto_key odd = pk;
    odd.len = 64;
    assert_rv(verify_rv(&odd, token), BU_EKEY);

    // Derivations and ids.
    struct bu_paseto_key derived;
    assert_rv(bu_paseto_public_of(&pk, &derived), BU_EKEY);
    assert_rv(bu_paseto_public_of(&local, &derived), BU_EKEY);
    assert_rv(bu_paserk_pid(&sk, pid), BU_EKEY);
    assert_rv(bu_paserk_pid(&local, pid), BU_EKEY);
    assert_rv(bu_paserk_format(&none, &out), BU_EKEY);

    // Raw bytes: lengths per kind, and a secret whose halves disagree.
    uint8_t bytes[64] = { 0 };
    struct bu_paseto_key k;
    assert_rv(bu_paseto_key_from_bytes(&k, BU_KEY_V4_PUBLIC, bytes, 64),
        BU_EINVAL);
    assert_rv(bu_paseto_key_from_bytes(&k, BU_KEY_V4_LOCAL, bytes, 31),
        BU_EINVAL);
    assert_rv(bu_paseto_key_from_bytes(&k, BU_KEY_V4_SECRET, bytes, 32),
        BU_EINVAL);
    assert_rv(bu_paseto_key_from_bytes(&k, BU_KEY_NONE, bytes, 32),
        BU_EINVAL);
    memcpy(bytes, sk.bytes, 64);
    bytes[40] ^= 1;
    assert_rv(bu_paseto_key_from_bytes(&k, BU_KEY_V4_SECRET, bytes, 64),
        BU_EINVAL);
    sodium_memzero(bytes, sizeof(bytes));

    bu_free(token);
    bu_paseto_key_wipe(&sk);
    bu_paseto_key_wipe(&local);
}

// ---- PASERK ----

static void
test_paserk_roundtrip(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    struct bu_paseto_key local;
    struct bu_paseto_key back;
    char *str;

    // Known strings.
    hex_key(VEC_PUBLIC, BU_KEY_V4_PUBLIC, &pk);
    assert_rv(bu_paserk_format(&pk, &str), BU_OK);
    assert_string_equal(
        str, "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI");
    assert_rv(bu_paserk_parse(str, &back), BU_OK);
    assert_int_equal(back.kind, BU_KEY_V4_PUBLIC);
    assert_int_equal(back.len, 32);
    assert_memory_equal(back.bytes, pk.bytes, 32);
    bu_free(str);

    hex_key(VEC_KEY7X, BU_KEY_V4_LOCAL, &local);
    assert_rv(bu_paserk_format(&local, &str), BU_OK);
    assert_string_equal(
        str, "k4.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8");
    assert_rv(bu_paserk_parse(str, &back), BU_OK);
    assert_int_equal(back.kind, BU_KEY_V4_LOCAL);
    assert_memory_equal(back.bytes, local.bytes, 32);
    sodium_memzero(str, strlen(str));
    bu_free(str);

    // A fresh pair.
    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    assert_rv(bu_paserk_format(&sk, &str), BU_OK);
    assert_int_equal(strlen(str), 10 + 86);
    assert_rv(bu_paserk_parse(str, &back), BU_OK);
    assert_int_equal(back.kind, BU_KEY_V4_SECRET);
    assert_int_equal(back.len, 64);
    assert_memory_equal(back.bytes, sk.bytes, 64);
    sodium_memzero(str, strlen(str));
    bu_free(str);
    assert_rv(bu_paserk_format(&pk, &str), BU_OK);
    assert_rv(bu_paserk_parse(str, &back), BU_OK);
    assert_memory_equal(back.bytes, pk.bytes, 32);
    bu_free(str);

    bu_paseto_key_wipe(&sk);
    bu_paseto_key_wipe(&local);
    bu_paseto_key_wipe(&back);
}

static void
test_paserk_malformed(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    struct bu_paseto_key out;
    char *secret;

    static const char *const bad[] = {
        "",
        "k4.public.",
        "k4.public",
        "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsa",   // 42
        "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaIA", // 44
        "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI=", // pad
        "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaJ",  // bits
        "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsa+",  // '+'
        "k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI ", // space
        " k4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI",
        "K4.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI",
        "k3.public.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI",
        "k4.pid.yh4-bJYjOYAG6CWy0zsfPmpKylxS7uAWrxqVmBN2KAiJ",
        "k4.secret.Hrnbu7wEfAP9cGBOAHHwmH4Wsot1ciXBHwBBXQ4gsaI", // 32 bytes
        "k4.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo",
    };
    out.kind = BU_KEY_NONE;
    out.len = 7;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        if (bu_paserk_parse(bad[k], &out) != BU_EPARSE) {
            fail_msg("accepted \"%s\"", bad[k]);
        }
    }
    assert_rv(bu_paserk_parse(NULL, &out), BU_EPARSE);
    // Nothing was written.
    assert_int_equal(out.kind, BU_KEY_NONE);
    assert_int_equal(out.len, 7);

    // A secret key whose public half is not its seed's.
    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    sk.bytes[63] ^= 0x80;
    char b64[128];
    sodium_bin2base64(b64, sizeof(b64), sk.bytes, 64,
        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    secret = str_cat("k4.secret.", b64);
    assert_rv(bu_paserk_parse(secret, &out), BU_EPARSE);
    sodium_memzero(secret, strlen(secret));
    sodium_memzero(b64, sizeof(b64));
    bu_free(secret);
    bu_paseto_key_wipe(&sk);
}

static void
test_paserk_pid(void **state)
{
    (void) state;
    struct bu_paseto_key pk;
    char pid[BU_PASERK_PID_SIZE];

    hex_key(VEC_PUBLIC, BU_KEY_V4_PUBLIC, &pk);
    assert_rv(bu_paserk_pid(&pk, pid), BU_OK);
    assert_string_equal(pid, VEC_PID);
    assert_int_equal(strlen(pid), BU_PASERK_PID_SIZE - 1);

    // The official PASERK k4.pid vector.
    hex_key(VEC_KEY7X, BU_KEY_V4_PUBLIC, &pk);
    assert_rv(bu_paserk_pid(&pk, pid), BU_OK);
    assert_string_equal(pid, VEC_KEY7X_PID);
}

// ---- faults ----

static void
test_alloc_failures(void **state)
{
    (void) state;
    struct bu_paseto_key sk;
    struct bu_paseto_key pk;
    char *token = NULL;
    uint8_t *m = NULL;
    uint8_t *f = NULL;
    size_t mlen = 0;
    size_t flen = 0;
    int rv;

    assert_rv(bu_paseto_keypair(&sk, &pk), BU_OK);
    // Every allocation in turn fails; each call either succeeds or says
    // BU_ENOMEM, and leaks nothing either way.
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        rv = bu_paseto_v4_sign(&sk, (const uint8_t *) "msg", 3,
            (const uint8_t *) "foot", 4, NULL, 0, &token);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
        assert_null(token);
    }
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        rv = bu_paseto_v4_verify(&pk, token, NULL, 0, &m, &mlen, &f, &flen);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
        assert_null(m);
        assert_null(f);
    }
    assert_string_equal((const char *) m, "msg");
    assert_string_equal((const char *) f, "foot");
    bu_free(m);
    bu_free(f);
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        rv = bu_paseto_v4_footer(token, &f, &flen);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
    }
    bu_free(f);
    char *str = NULL;
    bu_alloc_fail_after(0);
    rv = bu_paserk_format(&sk, &str);
    bu_alloc_fail_after(-1);
    assert_rv(rv, BU_ENOMEM);
    assert_null(str);
    bu_free(token);
    bu_paseto_key_wipe(&sk);
}

int
main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_sign_verify),
        cmocka_unit_test(test_vector_4f1_local_token),
        cmocka_unit_test(test_vector_4f2_local_key),
        cmocka_unit_test(test_vector_4f3_to_4f5),
        cmocka_unit_test(test_b64_strict),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_truncated_payload),
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_key_type_misuse),
        cmocka_unit_test(test_paserk_roundtrip),
        cmocka_unit_test(test_paserk_malformed),
        cmocka_unit_test(test_paserk_pid),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, vectors_setup, vectors_teardown);
}
