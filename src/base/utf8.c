// SPDX-License-Identifier: MIT
// Strict UTF-8 decoding (RFC 3629), counting code points.
#include "base/utf8.h"

#include <stdint.h>
#include <string.h>

bool
bu_utf8_count(const char *str, size_t n, size_t *charsp)
{
    const uint8_t *s = (const uint8_t *) str;
    size_t         chars = 0;
    size_t         i = 0;
    while (i < n) {
        // Most text is ASCII: eight bytes at a time while no byte has its
        // high bit set.
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, sizeof(w));
            if ((w & 0x8080808080808080u) != 0) {
                break;
            }
            i += 8;
            chars += 8;
        }
        if (i == n) {
            break;
        }
        uint8_t  c = s[i];
        size_t   len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            chars++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        // Overlong forms, surrogates and values past U+10FFFF.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
            || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
        chars++;
    }
    *charsp = chars;
    return true;
}

void
bu_utf8_trim(char *s)
{
    size_t n = strlen(s);
    // Step back over continuation bytes to the last lead byte, at most 3.
    size_t i = n;
    while (i > 0 && n - i < 4 && ((uint8_t) s[i - 1] & 0xc0) == 0x80) {
        i--;
    }
    if (i == 0) {
        return;
    }
    uint8_t lead = (uint8_t) s[i - 1];
    size_t  need = lead < 0x80   ? 1
         : (lead & 0xe0) == 0xc0 ? 2
         : (lead & 0xf0) == 0xe0 ? 3
         : (lead & 0xf8) == 0xf0 ? 4
                                 : 1;
    if (lead >= 0x80 && n - (i - 1) < need) {
        s[i - 1] = '\0';
    }
}
