// SPDX-License-Identifier: MIT
/*
 * The benchmark's rows: contacts of the standard master_contact columns,
 * made from a number so that the server passes and the bare SQLite loops
 * write exactly the same keys and values. A key is "contact-" and 16 hex
 * digits of a bijective 64-bit mix of (space, id) and the run's salt, so
 * keys are unique, spread evenly over the B-tree whatever order they come
 * in, and new in every run with a new salt. A row's other values come from
 * a hash of its key and a version: version 1 changes every row of version
 * 0 (its gsm at least). About 120 bytes of values a row.
 *
 * Every function is pure or works on caller-owned memory: thread-safe.
 */
#ifndef BU_BENCH_ROWS_H
#define BU_BENCH_ROWS_H

#include <stddef.h>
#include <stdint.h>

// Number of columns a row carries, and their names in order.
#define ROWS_NCOLS 9
extern const char *const rows_columns[ROWS_NCOLS];

// Index of the one boolean column (email_permission) in rows_columns.
#define ROWS_BOOL_COL 5

// Key spaces: the insert/update passes, the mixed pass, pre-filled rows.
enum rows_space {
    ROWS_SPACE_MAIN = 0,
    ROWS_SPACE_MIXED = 1,
    ROWS_SPACE_PREFILL = 2,
};

// One generated row. text[j]/len[j] point into buf (each text is also
// NUL-terminated); for ROWS_BOOL_COL text is NULL and flag holds the value.
struct rows_row {
    const char *text[ROWS_NCOLS];
    size_t      len[ROWS_NCOLS];
    int         flag;
    char        buf[256];
};

// rows_make fills *row with the row of key (space, id) at version.
void rows_make(struct rows_row *row, uint64_t salt, enum rows_space space,
    uint32_t id, unsigned version);

// rows_payload_bytes returns the bytes of values row carries (the boolean
// counts as one byte).
size_t rows_payload_bytes(const struct rows_row *row);

// rows_perm returns a random permutation of 0 .. n-1 drawn from seed, or
// NULL when out of memory. Release with free().
uint32_t *rows_perm(size_t n, uint64_t seed);

// rows_mix is the splitmix64 finaliser: a bijection on 64-bit values.
uint64_t rows_mix(uint64_t x);

#endif // BU_BENCH_ROWS_H
