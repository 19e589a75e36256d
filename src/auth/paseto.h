// SPDX-License-Identifier: MIT
/*
 * PASETO v4.public (Ed25519 via libsodium) and the PASERK key strings that
 * carry its keys. Keys are typed by version and purpose (inv: a key is used
 * only for what its tag says), so a v4.local key can never verify a public
 * token and a public key can never sign.
 *
 * Key strings: "k4.secret.<b64url(64 bytes)>", "k4.public.<b64url(32)>",
 * "k4.local.<b64url(32)>"; a public key's id is its PASERK "k4.pid.…".
 *
 * Every function is pure (no global state) and thread-safe once
 * sodium_init() has run in main. Buffers that held secret keys are wiped with
 * sodium_memzero before release.
 */
#ifndef BU_AUTH_PASETO_H
#define BU_AUTH_PASETO_H

#include <stddef.h>
#include <stdint.h>

enum bu_key_kind {
    BU_KEY_NONE = 0,
    BU_KEY_V4_SECRET, // 64 bytes: seed || public key
    BU_KEY_V4_PUBLIC, // 32 bytes: Ed25519 point
    BU_KEY_V4_LOCAL,  // 32 bytes: symmetric (never valid for v4.public)
};

// A typed key. Plain value type; bu_paseto_key_wipe clears it.
struct bu_paseto_key {
    enum bu_key_kind kind;
    size_t           len;
    uint8_t          bytes[64];
};

// Length of a PASERK id, "k4.pid." plus 44 characters, with the NUL.
#define BU_PASERK_PID_SIZE 52

// bu_paseto_key_wipe zeroes key (sodium_memzero).
void bu_paseto_key_wipe(struct bu_paseto_key *key);

// bu_paseto_key_from_bytes builds a typed key from raw bytes: kind SECRET
// needs 64 bytes, PUBLIC and LOCAL 32. Returns BU_EINVAL on a wrong length,
// or for SECRET when the last 32 bytes are not the seed's public key.
int bu_paseto_key_from_bytes(struct bu_paseto_key *keyp, enum bu_key_kind kind,
    const uint8_t *bytes, size_t len);

// bu_paseto_keypair makes a fresh Ed25519 key pair. Returns BU_OK.
int bu_paseto_keypair(
    struct bu_paseto_key *secretp, struct bu_paseto_key *publicp);

// bu_paseto_public_of derives the public key of a SECRET key.
// Returns BU_EKEY when secret is not a v4 secret key.
int bu_paseto_public_of(
    const struct bu_paseto_key *secret, struct bu_paseto_key *publicp);

// bu_paserk_format writes key as a PASERK string into a new NUL-terminated
// buffer *strp (release with bu_free; secret strings are wiped first by the
// caller with sodium_memzero). Returns BU_EKEY for BU_KEY_NONE, BU_ENOMEM.
int bu_paserk_format(const struct bu_paseto_key *key, char **strp);

// bu_paserk_parse reads a PASERK string ("k4.secret.", "k4.public.",
// "k4.local.") strictly (exact prefix, strict base64url, exact length).
// Returns BU_EPARSE otherwise. *keyp is written only on success.
int bu_paserk_parse(const char *str, struct bu_paseto_key *keyp);

// bu_paserk_pid writes the PASERK id "k4.pid.…" of a PUBLIC key into
// out (at least BU_PASERK_PID_SIZE bytes). Returns BU_EKEY for other kinds.
int bu_paserk_pid(
    const struct bu_paseto_key *pub, char out[BU_PASERK_PID_SIZE]);

// bu_paseto_v4_sign signs message m with a SECRET key, binding footer f
// and implicit assertion i (both may be empty, with NULL pointers), and
// returns the token in *tokenp (NUL-terminated; release with bu_free).
// Returns BU_EKEY for a key that is not a v4 secret key, BU_ENOMEM.
int bu_paseto_v4_sign(const struct bu_paseto_key *secret, const uint8_t *m,
    size_t         mlen,           // message (JSON claims)
    const uint8_t *f, size_t flen, // footer, may be empty
    const uint8_t *i, size_t ilen, // implicit assertion, may be empty
    char **tokenp);                // OUT: token

// bu_paseto_v4_verify checks token against a PUBLIC key and the implicit
// assertion i (empty when NULL). On success returns BU_OK with the message in
// *mp/*mlenp and the token's footer in *fp/*flenp (each NUL-terminated, so
// text can be read directly; release both with bu_free; fp may be NULL when
// the caller does not want the footer; an absent footer gives an empty
// string). Nothing is written on failure.
// Returns BU_EKEY (key is not a v4 public key), BU_EPARSE (header, layout or
// base64url), BU_ESIG (signature), BU_ENOMEM.
int bu_paseto_v4_verify(const struct bu_paseto_key *pub, const char *token,
    const uint8_t *i, size_t ilen, // implicit assertion, may be empty
    uint8_t **mp, size_t *mlenp,   // OUT: message
    uint8_t **fp, size_t *flenp);  // OUT: footer (optional)

// bu_paseto_v4_footer decodes the footer of a v4.public token without
// verifying anything: the bytes are untrusted until verify succeeds and may
// only be used to pick a key. *fp is NUL-terminated (release with bu_free);
// an absent footer gives *fp = NULL, *flenp = 0 and BU_OK.
// Returns BU_EPARSE, BU_ENOMEM.
int bu_paseto_v4_footer(const char *token, uint8_t **fp, size_t *flenp);

// bu_paseto_v4_message_unverified decodes the message of a v4.public token
// without verifying its signature: for a tool reading a token it already
// holds (to revoke it), never for a decision to trust it. *mp is
// NUL-terminated (release with bu_free). Returns BU_EPARSE, BU_ENOMEM.
int bu_paseto_v4_message_unverified(
    const char *token, uint8_t **mp, size_t *mlenp);

#endif // BU_AUTH_PASETO_H
