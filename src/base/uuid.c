// SPDX-License-Identifier: MIT
// UUIDv7 from the clock and getrandom(2).
#include "base/uuid.h"

#include "base/clock.h"
#include "base/err.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int
bu_uuid7(char out[BU_UUID_SIZE])
{
    uint8_t b[16];
    if (getrandom(b + 6, 10, 0) != 10) {
        return BU_EIO;
    }
    uint64_t ms = (uint64_t) bu_now_ms();
    for (int i = 0; i < 6; i++) {
        b[i] = (uint8_t) (ms >> (40 - 8 * i));
    }
    b[6] = (uint8_t) (0x70 | (b[6] & 0x0f)); // version 7
    b[8] = (uint8_t) (0x80 | (b[8] & 0x3f)); // variant 10
    snprintf(out, BU_UUID_SIZE,
        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
        "%02x%02x%02x%02x%02x%02x",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
        b[11], b[12], b[13], b[14], b[15]);
    return BU_OK;
}

int
bu_uuid_valid(const char *s)
{
    if (strlen(s) != 36) {
        return 0;
    }
    for (int i = 0; i < 36; i++) {
        int  dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}
