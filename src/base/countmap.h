// SPDX-License-Identifier: MIT
/*
 * A thread-safe map from short keys (tenant ids) to counters, for the
 * per-tenant limits: requests in flight, jobs queued. An entry disappears
 * when its counter returns to zero, so the map holds only active tenants.
 * One mutex guards the whole map; every call is short.
 */
#ifndef BU_BASE_COUNTMAP_H
#define BU_BASE_COUNTMAP_H

#include <stdint.h>

struct bu_countmap;

// bu_countmap_alloc makes an empty map. Returns BU_OK or BU_ENOMEM.
int bu_countmap_alloc(struct bu_countmap **mapp);

// bu_countmap_free releases map; NULL is ignored.
void bu_countmap_free(struct bu_countmap *map);

// bu_countmap_add adds delta to key's counter when the result stays within
// [0, limit] (limit < 0: no upper bound) and returns BU_OK with the new
// value in *valuep (may be NULL). Returns BU_EFULL (nothing changed) when
// the result would pass limit, BU_ENOMEM when a new entry cannot be made.
// A result below zero is clamped to zero (a bug elsewhere; logged).
int bu_countmap_add(struct bu_countmap *map, const char *key, int64_t delta,
    int64_t limit, int64_t *valuep);

// bu_countmap_get returns key's counter (0 when absent).
int64_t bu_countmap_get(struct bu_countmap *map, const char *key);

#endif // BU_BASE_COUNTMAP_H
