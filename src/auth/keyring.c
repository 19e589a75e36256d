// SPDX-License-Identifier: MIT
/*
 * The keyring: the public keys that may verify tokens, each stored with its
 * PASERK id so that a lookup by kid is a string compare. A file is parsed
 * completely into a fresh key array before anything changes; only then is
 * the array swapped in under the mutex, so a reload with a bad line leaves
 * the old set in force. A lookup copies the key out under the same mutex,
 * and no lock is held while reading the file. The revocation list is a
 * sorted array of strings, swapped in with the keys.
 */
#include "auth/keyring.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"

struct keyring_entry {
    char                 pid[BU_PASERK_PID_SIZE];
    struct bu_paseto_key key;
};

struct bu_keyring {
    char *path;         // set at open, then read-only
    char *revoked_path; // NULL: no list; set before sharing, then read-only
    bool  revoked_seen; // the file existed at the last load (reload thread)

    pthread_mutex_t       mtx;
    struct keyring_entry *keys;     // guarded by mtx; owned
    size_t                nkeys;    // guarded by mtx
    char                **revoked;  // guarded by mtx; sorted; owned
    size_t                nrevoked; // guarded by mtx

    atomic_uint_fast64_t generation; // reloads that took effect
};

// keyring_trim strips surrounding spaces, tabs and line ends from line in
// place and returns its first non-space character.
static char *
keyring_trim(char *line)
{
    size_t n = strlen(line);
    while (n > 0 && strchr(" \t\r\n", line[n - 1]) != NULL) {
        line[--n] = '\0';
    }
    while (*line == ' ' || *line == '\t') {
        line++;
    }
    return line;
}

// keyring_add appends key under its PASERK id to *keysp, skipping a key
// already present. Returns BU_ENOMEM.
static int
keyring_add(struct keyring_entry **keysp, size_t *nkeysp,
    const struct bu_paseto_key *key)
{
    struct keyring_entry e = { .key = *key };
    int                  rv = bu_paserk_pid(key, e.pid);
    if (rv != BU_OK) {
        return rv;
    }
    for (size_t k = 0; k < *nkeysp; k++) {
        if (strcmp((*keysp)[k].pid, e.pid) == 0) {
            return BU_OK;
        }
    }
    struct keyring_entry *keys
        = bu_realloc(*keysp, (*nkeysp + 1) * sizeof(*keys));
    if (keys == NULL) {
        return BU_ENOMEM;
    }
    keys[*nkeysp] = e;
    *keysp = keys;
    *nkeysp += 1;
    return BU_OK;
}

// keyring_load parses path into a new array *keysp of *nkeysp entries
// (release with bu_free). Each bad line is logged with its number; the
// line itself is not, since it may hold a secret key.
static int
keyring_load(const char *path, struct keyring_entry **keysp, size_t *nkeysp)
{
    struct keyring_entry *keys = NULL;
    size_t                nkeys = 0;
    char         *line = NULL; // from getline: released with free, not bu_free
    size_t        cap = 0;
    unsigned long lineno = 0;
    int           rv = BU_OK;

    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        BU_WARN("keyring %s: %s", path, strerror(errno));
        return BU_EIO;
    }
    while (getline(&line, &cap, fp) != -1) {
        lineno++;
        char *s = keyring_trim(line);
        if (*s == '\0' || *s == '#') {
            continue;
        }
        struct bu_paseto_key key;
        const char          *why = "not a k4.public key";
        rv = bu_paserk_parse(s, &key);
        if (rv == BU_OK && key.kind != BU_KEY_V4_PUBLIC) {
            // A secret (or local) key has no business in a verifier's file.
            why = "only k4.public keys belong here";
            bu_paseto_key_wipe(&key);
            rv = BU_EPARSE;
        }
        if (rv == BU_OK && (rv = keyring_add(&keys, &nkeys, &key)) != BU_OK) {
            why = bu_strerror(rv);
        }
        if (rv != BU_OK) {
            BU_WARN("keyring %s line %lu refused: %s", path, lineno, why);
            break;
        }
    }
    // getline also stops on an error (ENOMEM included); a file that was
    // not read to its end must not become a shorter keyring.
    if (rv == BU_OK && (ferror(fp) || !feof(fp))) {
        rv = errno == ENOMEM ? BU_ENOMEM : BU_EIO;
        BU_WARN("keyring %s: %s", path, bu_strerror(rv));
    }
    // The buffer may hold a secret key line that was refused.
    if (line != NULL) {
        sodium_memzero(line, cap);
    }
    free(line);
    fclose(fp);
    if (rv != BU_OK) {
        bu_free(keys);
        return rv;
    }
    *keysp = keys;
    *nkeysp = nkeys;
    return BU_OK;
}

static void
revoked_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bu_free(ids[i]);
    }
    bu_free(ids);
}

static int
revoked_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

const char *
bu_keyring_jti_fault(const char *jti)
{
    if (strncmp(jti, "v4.", 3) == 0 || strncmp(jti, "k4.", 3) == 0) {
        return "a token or key, not a jti (rpc-cli token revoke reads the "
               "jti out of a token)";
    }
    size_t n = strlen(jti);
    if (n == 0 || n > BU_KEYRING_JTI_MAX) {
        return "not 1 to 127 bytes long";
    }
    if (jti[0] == '#') {
        return "starts with '#'";
    }
    for (const unsigned char *p = (const unsigned char *) jti; *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            return "holds a space or a control character (one id a line; "
                   "comments go on lines of their own)";
        }
    }
    return NULL;
}

// revoked_load parses the revocation file at path into a new sorted array
// *idsp of *np ids (release with revoked_free). A missing file is empty.
static int
revoked_load(const char *path, char ***idsp, size_t *np, bool *existsp)
{
    char        **ids = NULL;
    size_t        n = 0, room = 0;
    char         *line = NULL; // from getline: released with free
    size_t        cap = 0;
    unsigned long lineno = 0;
    int           rv = BU_OK;

    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        if (errno == ENOENT) {
            *idsp = NULL;
            *np = 0;
            *existsp = false;
            return BU_OK;
        }
        BU_WARN("revocation list %s: %s", path, strerror(errno));
        return BU_EIO;
    }
    ssize_t got;
    while ((got = getline(&line, &cap, fp)) != -1) {
        lineno++;
        const char *why = NULL;
        if (memchr(line, '\0', (size_t) got) != NULL) {
            why = "holds a NUL byte";
        }
        char *s = keyring_trim(line);
        if (why == NULL && (*s == '\0' || *s == '#')) {
            continue;
        }
        if (why == NULL) {
            why = bu_keyring_jti_fault(s);
        }
        if (why != NULL) {
            BU_WARN(
                "revocation list %s line %lu refused: %s", path, lineno, why);
            rv = BU_EPARSE;
            break;
        }
        if (n == room) {
            room = room == 0 ? 16 : room * 2;
            char **grown = bu_realloc(ids, room * sizeof(*ids));
            if (grown == NULL) {
                rv = BU_ENOMEM;
                break;
            }
            ids = grown;
        }
        if ((ids[n] = bu_strdup(s)) == NULL) {
            rv = BU_ENOMEM;
            break;
        }
        n++;
    }
    if (rv == BU_OK && (ferror(fp) || !feof(fp))) {
        rv = errno == ENOMEM ? BU_ENOMEM : BU_EIO;
        BU_WARN("revocation list %s: %s", path, bu_strerror(rv));
    }
    free(line);
    fclose(fp);
    if (rv != BU_OK) {
        revoked_free(ids, n);
        return rv;
    }
    if (n > 1) {
        qsort(ids, n, sizeof(*ids), revoked_cmp);
    }
    *idsp = ids;
    *np = n;
    *existsp = true;
    return BU_OK;
}

int
bu_keyring_open(struct bu_keyring **krp, const char *path)
{
    struct bu_keyring *kr;
    int                rv;

    if (path == NULL) {
        return BU_EINVAL;
    }
    if (BU_ALLOC_STRUCT(kr) == NULL) {
        return BU_ENOMEM;
    }
    if ((kr->path = bu_strdup(path)) == NULL) {
        bu_free(kr);
        return BU_ENOMEM;
    }
    rv = keyring_load(path, &kr->keys, &kr->nkeys);
    if (rv == BU_OK && pthread_mutex_init(&kr->mtx, NULL) != 0) {
        bu_free(kr->keys);
        rv = BU_ENOMEM;
    }
    if (rv != BU_OK) {
        bu_free(kr->path);
        bu_free(kr);
        return rv;
    }
    *krp = kr;
    return BU_OK;
}

void
bu_keyring_close(struct bu_keyring *kr)
{
    if (kr == NULL) {
        return;
    }
    pthread_mutex_destroy(&kr->mtx);
    bu_free(kr->keys);
    revoked_free(kr->revoked, kr->nrevoked);
    bu_free(kr->path);
    bu_free(kr->revoked_path);
    bu_free(kr);
}

int
bu_keyring_revocations(struct bu_keyring *kr, const char *path)
{
    char **ids = NULL;
    size_t n = 0;
    char  *copy = NULL;
    bool   exists = false;

    if (path != NULL) {
        if ((copy = bu_strdup(path)) == NULL) {
            return BU_ENOMEM;
        }
        int rv = revoked_load(path, &ids, &n, &exists);
        if (rv != BU_OK) {
            bu_free(copy);
            return rv;
        }
    }
    pthread_mutex_lock(&kr->mtx);
    char **old = kr->revoked;
    size_t nold = kr->nrevoked;
    kr->revoked = ids;
    kr->nrevoked = n;
    atomic_fetch_add(&kr->generation, 1);
    pthread_mutex_unlock(&kr->mtx);
    revoked_free(old, nold);
    bu_free(kr->revoked_path);
    kr->revoked_path = copy;
    kr->revoked_seen = exists;
    return BU_OK;
}

int
bu_keyring_reload(struct bu_keyring *kr)
{
    struct keyring_entry *keys;
    size_t                nkeys;
    char                **ids = NULL;
    size_t                nids = 0;
    bool                  exists = false;

    int rv = keyring_load(kr->path, &keys, &nkeys);
    if (rv != BU_OK) {
        return rv;
    }
    if (kr->revoked_path != NULL
        && (rv = revoked_load(kr->revoked_path, &ids, &nids, &exists))
            != BU_OK) {
        bu_free(keys);
        return rv;
    }
    // A list that was there and is gone is more likely a mistake (a file
    // being replaced, a volume not mounted) than a wish to revoke nothing:
    // revoked tokens must not work again because of it.
    if (kr->revoked_path != NULL && kr->revoked_seen && !exists) {
        BU_WARN("revocation list %s is gone; to revoke nothing, leave it "
                "empty",
            kr->revoked_path);
        bu_free(keys);
        return BU_ENOENT;
    }
    pthread_mutex_lock(&kr->mtx);
    struct keyring_entry *old = kr->keys;
    char                **old_ids = kr->revoked;
    size_t                nold_ids = kr->nrevoked;
    kr->keys = keys;
    kr->nkeys = nkeys;
    kr->revoked = ids;
    kr->nrevoked = nids;
    atomic_fetch_add(&kr->generation, 1);
    pthread_mutex_unlock(&kr->mtx);
    bu_free(old);
    revoked_free(old_ids, nold_ids);
    kr->revoked_seen = exists;
    return BU_OK;
}

uint64_t
bu_keyring_generation(struct bu_keyring *kr)
{
    return (uint64_t) atomic_load(&kr->generation);
}

size_t
bu_keyring_count(struct bu_keyring *kr)
{
    pthread_mutex_lock(&kr->mtx);
    size_t n = kr->nkeys;
    pthread_mutex_unlock(&kr->mtx);
    return n;
}

size_t
bu_keyring_revoked_count(struct bu_keyring *kr)
{
    pthread_mutex_lock(&kr->mtx);
    size_t n = kr->nrevoked;
    pthread_mutex_unlock(&kr->mtx);
    return n;
}

int
bu_keyring_is_revoked(struct bu_keyring *kr, const char *jti)
{
    if (jti == NULL) {
        return 0;
    }
    pthread_mutex_lock(&kr->mtx);
    int found = kr->nrevoked > 0
        && bsearch(&jti, kr->revoked, kr->nrevoked, sizeof(*kr->revoked),
               revoked_cmp)
            != NULL;
    pthread_mutex_unlock(&kr->mtx);
    return found;
}

int
bu_keyring_find(
    struct bu_keyring *kr, const char *kid, struct bu_paseto_key *keyp)
{
    int rv = BU_ENOENT;

    if (kid == NULL) {
        return BU_ENOENT;
    }
    pthread_mutex_lock(&kr->mtx);
    for (size_t k = 0; k < kr->nkeys; k++) {
        if (strcmp(kr->keys[k].pid, kid) == 0) {
            *keyp = kr->keys[k].key;
            rv = BU_OK;
            break;
        }
    }
    pthread_mutex_unlock(&kr->mtx);
    return rv;
}
