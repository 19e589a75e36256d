// SPDX-License-Identifier: MIT
/*
 * UTF-8 checks. Lengths in the contract count characters (code points), not
 * bytes, and every text must be valid UTF-8 (no overlongs, no surrogates, at
 * most U+10FFFF). Pure functions; thread-safe.
 */
#ifndef BU_BASE_UTF8_H
#define BU_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

// bu_utf8_count returns true when the n bytes at s are valid UTF-8 and then
// stores the number of code points in *charsp; false otherwise (*charsp is
// left alone).
bool bu_utf8_count(const char *s, size_t n, size_t *charsp);

// bu_utf8_trim cuts s (NUL-terminated) before an incomplete UTF-8 sequence
// at its end, as a fixed buffer's truncation can leave one. s must have
// been valid UTF-8 before the cut.
void bu_utf8_trim(char *s);

#endif // BU_BASE_UTF8_H
