// SPDX-License-Identifier: MIT
/*
 * The service's access tokens: PASETO v4.public whose claims are a JSON
 * object {"sub","tenant","perms":[...],"iat","exp","jti"} (times in RFC 3339,
 * "Z" form) and whose footer is {"kid":"k4.pid.…"}, the PASERK id of the
 * public key that verifies it. Claims are parsed with jansson only after the
 * signature checks, and fail closed.
 *
 * Thread-safe: no global state; the keyring does its own locking.
 */
#ifndef BU_AUTH_TOKEN_H
#define BU_AUTH_TOKEN_H

#include <stdint.h>

#include "auth/keyring.h"
#include "auth/paseto.h"

// Permission bits carried by "perms".
enum bu_perm {
    BU_PERM_READ = 1u << 0,   // "DataSpace.Read": read jobs and tables
    BU_PERM_MANAGE = 1u << 1, // "DataSpace.Manage": submit, change schema
};

#define BU_TENANT_MAX      63
#define BU_TOKEN_MAX_BYTES 8192
// How far in the future an "iat" may lie (clock skew between hosts).
#define BU_TOKEN_SKEW_SECS 60

struct bu_claims {
    char     sub[128];
    char     tenant[BU_TENANT_MAX + 1];
    char     jti[128];
    uint32_t perms; // bu_perm bits; unknown permission names are ignored
    int64_t  iat;   // Unix seconds
    int64_t  exp;   // Unix seconds
};

// bu_tenant_valid returns 1 when s matches [a-z0-9][a-z0-9_-]{0,62}, the
// only tenant ids that may name anything on disk; 0 otherwise.
int bu_tenant_valid(const char *s);

// bu_perm_parse maps a permission name ("DataSpace.Read") to its bit;
// 0 for an unknown name.
uint32_t bu_perm_parse(const char *name);

// bu_token_issue signs claims with secret, putting the PASERK id of the
// secret's public key in the footer as {"kid":"k4.pid.…"}. claims->perms is
// written as the list of names; iat and exp as RFC 3339. *tokenp is
// NUL-terminated; release with bu_free.
// Returns BU_EKEY (not a v4 secret key), BU_EINVAL (tenant not valid, exp
// before iat), BU_ENOMEM.
int bu_token_issue(const struct bu_paseto_key *secret,
    const struct bu_claims *claims, char **tokenp);

// bu_token_verify checks token (at most BU_TOKEN_MAX_BYTES) at time now
// (Unix seconds): reads the footer's kid (footer bounded in size, a JSON
// object with a string "kid"), picks that key from keyring, verifies the
// signature, then parses and checks the claims: a JSON object, "tenant"
// valid, "perms" an array of strings, "exp" and "iat" RFC 3339 with
// iat <= now + 60 s skew and now < exp, "jti" a string that
// bu_keyring_jti_fault accepts (one a revocation list can name), "sub" a
// string when present; last, that the jti is not on the keyring's
// revocation list. *claimsp is written only on success.
// Returns BU_EAUTH (malformed, unknown kid, bad claims), BU_ESIG (bad
// signature), BU_EEXPIRED, BU_EREVOKED, BU_ENOMEM. Every non-OK result
// means 401.
int bu_token_verify(struct bu_keyring *keyring, const char *token, int64_t now,
    struct bu_claims *claimsp);

#endif // BU_AUTH_TOKEN_H
