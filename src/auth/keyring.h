// SPDX-License-Identifier: MIT
/*
 * The server's keyring: the PASERK public keys ("k4.public.…") that may
 * verify tokens, read from a text file with one key a line; blank lines and
 * lines starting with '#' are ignored (so are surrounding spaces). Keys are
 * looked up by their PASERK id (kid). bu_keyring_reload re-reads the file
 * and swaps the key set atomically, so keys rotate without a restart.
 *
 * The keyring also holds the revocation list: the token ids ("jti") that
 * are refused whatever key signed them, read from a second text file with
 * one jti a line (same comment rules). A reload re-reads both files and
 * swaps both sets together; a missing revocation file is an empty list.
 *
 * Thread-safe: lookups and reloads may run from any thread (a mutex guards
 * the key set; a lookup copies the key out).
 */
#ifndef BU_AUTH_KEYRING_H
#define BU_AUTH_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "auth/paseto.h"

struct bu_keyring;

// bu_keyring_open reads path into a new keyring *krp (release with
// bu_keyring_close). Returns BU_EIO (cannot read the file), BU_EPARSE (a line
// that is not a v4 public PASERK: the log names the line number; a secret key
// in the file is refused), BU_ENOMEM.
int bu_keyring_open(struct bu_keyring **krp, const char *path);

// bu_keyring_close releases kr; NULL is ignored.
void bu_keyring_close(struct bu_keyring *kr);

// bu_keyring_jti_fault returns NULL when jti can be revoked, that is, it
// can stand alone on a line of the revocation list: 1 to
// BU_KEYRING_JTI_MAX bytes, no space or control character, not starting
// with '#', and not a token or key ("v4." or "k4."). Otherwise why not.
// Tokens whose jti breaks the rule are refused (bu_token_verify).
#define BU_KEYRING_JTI_MAX 127
const char *bu_keyring_jti_fault(const char *jti);

// bu_keyring_revocations makes kr read its revocation list from path (NULL:
// none) now and at every reload; call it before kr is shared with other
// threads. A missing file is an empty list. A line that is not a jti
// bu_keyring_jti_fault accepts (or holds a NUL byte) is refused
// (BU_EPARSE, the log names the line and why); BU_EIO when the file cannot
// be read; BU_ENOMEM. On an error nothing changes.
int bu_keyring_revocations(struct bu_keyring *kr, const char *path);
// bu_keyring_reload re-reads the file given to open and the revocation
// file. On any error in either the old key set and the old revocation list
// stay in force and the error is returned (as for open); a revocation file
// that existed at the last load and is now missing is such an error
// (BU_ENOENT): an empty file revokes nothing.
int bu_keyring_reload(struct bu_keyring *kr);

// bu_keyring_generation returns how many reloads have taken effect: a
// memo of what the keys verified must be dropped when it changes.
uint64_t bu_keyring_generation(struct bu_keyring *kr);

// bu_keyring_count returns the number of keys now loaded.
size_t bu_keyring_count(struct bu_keyring *kr);

// bu_keyring_revoked_count returns the number of token ids now revoked.
size_t bu_keyring_revoked_count(struct bu_keyring *kr);
// bu_keyring_is_revoked returns 1 when jti is on the revocation list.
int bu_keyring_is_revoked(struct bu_keyring *kr, const char *jti);
// bu_keyring_find copies the public key whose PASERK id is kid into *keyp.
// Returns BU_ENOENT when there is none.
int bu_keyring_find(
    struct bu_keyring *kr, const char *kid, struct bu_paseto_key *keyp);

#endif // BU_AUTH_KEYRING_H
