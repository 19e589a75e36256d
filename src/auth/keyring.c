// SPDX-License-Identifier: MIT
/*
 * The keyring: the public keys that may verify tokens, each stored with its
 * PASERK id so that a lookup by kid is a string compare. A file is parsed
 * completely into a fresh key array before anything changes; only then is
 * the array swapped in under the mutex, so a reload with a bad line leaves
 * the old set in force. A lookup copies the key out under the same mutex,
 * and no lock is held while reading the file.
 */
#include "auth/keyring.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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
    char *path; // set at open, then read-only

    pthread_mutex_t       mtx;
    struct keyring_entry *keys;  // guarded by mtx; owned
    size_t                nkeys; // guarded by mtx

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
    bu_free(kr->path);
    bu_free(kr);
}

int
bu_keyring_reload(struct bu_keyring *kr)
{
    struct keyring_entry *keys;
    size_t                nkeys;

    int rv = keyring_load(kr->path, &keys, &nkeys);
    if (rv != BU_OK) {
        return rv;
    }
    pthread_mutex_lock(&kr->mtx);
    struct keyring_entry *old = kr->keys;
    kr->keys = keys;
    kr->nkeys = nkeys;
    atomic_fetch_add(&kr->generation, 1);
    pthread_mutex_unlock(&kr->mtx);
    bu_free(old);
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
