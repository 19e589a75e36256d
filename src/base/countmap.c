// SPDX-License-Identifier: MIT
// Chained hash map of counters under one mutex.
#include "base/countmap.h"

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"

#include <pthread.h>
#include <string.h>

#define COUNTMAP_BUCKETS 1024

struct countmap_entry {
    struct countmap_entry *next;
    int64_t                value;
    char                   key[]; // NUL-terminated
};

struct bu_countmap {
    pthread_mutex_t        mu;
    struct countmap_entry *buckets[COUNTMAP_BUCKETS]; // guarded by mu
};

static uint32_t
countmap_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t) *s) * 16777619u;
    }
    return h % COUNTMAP_BUCKETS;
}

int
bu_countmap_alloc(struct bu_countmap **mapp)
{
    struct bu_countmap *map;
    if (BU_ALLOC_STRUCT(map) == NULL) {
        return BU_ENOMEM;
    }
    if (pthread_mutex_init(&map->mu, NULL) != 0) {
        bu_free(map);
        return BU_ENOMEM;
    }
    *mapp = map;
    return BU_OK;
}

void
bu_countmap_free(struct bu_countmap *map)
{
    if (map == NULL) {
        return;
    }
    for (int i = 0; i < COUNTMAP_BUCKETS; i++) {
        struct countmap_entry *e = map->buckets[i];
        while (e != NULL) {
            struct countmap_entry *next = e->next;
            bu_free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&map->mu);
    bu_free(map);
}

int
bu_countmap_add(struct bu_countmap *map, const char *key, int64_t delta,
    int64_t limit, int64_t *valuep)
{
    uint32_t b = countmap_hash(key);
    int      rv = BU_OK;
    pthread_mutex_lock(&map->mu);
    struct countmap_entry **pp = &map->buckets[b];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0) {
        pp = &(*pp)->next;
    }
    struct countmap_entry *e = *pp;
    int64_t                old = e != NULL ? e->value : 0;
    int64_t                v = old + delta;
    if (v < 0) {
        BU_WARN("counter for %s went below zero", key);
        v = 0;
    }
    if (delta > 0 && limit >= 0 && v > limit) {
        rv = BU_EFULL;
        v = old;
    } else if (e == NULL && v != 0) {
        size_t n = strlen(key) + 1;
        e = bu_alloc(sizeof(*e) + n);
        if (e == NULL) {
            rv = BU_ENOMEM;
            v = old;
        } else {
            memcpy(e->key, key, n);
            e->value = v;
            *pp = e;
        }
    } else if (e != NULL && v == 0) {
        *pp = e->next;
        bu_free(e);
    } else if (e != NULL) {
        e->value = v;
    }
    pthread_mutex_unlock(&map->mu);
    if (rv == BU_OK && valuep != NULL) {
        *valuep = v;
    }
    return rv;
}

int64_t
bu_countmap_get(struct bu_countmap *map, const char *key)
{
    uint32_t b = countmap_hash(key);
    int64_t  v = 0;
    pthread_mutex_lock(&map->mu);
    for (struct countmap_entry *e = map->buckets[b]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            v = e->value;
            break;
        }
    }
    pthread_mutex_unlock(&map->mu);
    return v;
}
