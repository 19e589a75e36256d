// SPDX-License-Identifier: MIT
// Clocks and RFC 3339 date-times without locale or TZ dependence.
#include "base/clock.h"

#include "base/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

// clock_us reads clock id in microseconds.
static int64_t
clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
bu_now_ms(void)
{
    return clock_us(CLOCK_REALTIME) / 1000;
}

int64_t
bu_mono_ms(void)
{
    return clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t
bu_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t
bu_thread_cpu_us(void)
{
    return clock_us(CLOCK_THREAD_CPUTIME_ID);
}

struct timespec
bu_deadline_after(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t) (ms / 1000);
    ts.tv_nsec += (long) (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil).
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t  era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned) (y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

int
bu_rfc3339_format(int64_t secs, char *buf, size_t len)
{
    time_t    t = (time_t) secs;
    struct tm tm;
    if (len < 21 || gmtime_r(&t, &tm) == NULL) {
        return BU_EINVAL;
    }
    if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return BU_EINVAL;
    }
    return BU_OK;
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int
days_in_month(int y, int m)
{
    static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return dm[m - 1];
}

int
bu_rfc3339_parse(const char *s, int64_t *secsp)
{
    int y, mo, d, h, mi, sec;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo)
        || s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T'
        || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi)
        || s[16] != ':' || !digits(s + 17, 2, &sec)) {
        return BU_EPARSE;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23
        || mi > 59 || sec > 60) {
        return BU_EPARSE;
    }
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return BU_EPARSE;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    int64_t offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om)
            || oh > 23 || om > 59) {
            return BU_EPARSE;
        }
        offset = (int64_t) (oh * 60 + om) * 60;
        if (*p == '-') {
            offset = -offset;
        }
        p += 6;
    } else {
        return BU_EPARSE;
    }
    if (*p != '\0') {
        return BU_EPARSE;
    }
    int64_t days = days_from_civil(y, (unsigned) mo, (unsigned) d);
    *secsp
        = days * 86400 + h * 3600 + mi * 60 + (sec == 60 ? 59 : sec) - offset;
    return BU_OK;
}

int
bu_duration_parse(const char *s, int64_t max_secs, int64_t *secsp)
{
    size_t  len = strlen(s);
    int64_t unit;
    if (len < 2) {
        return BU_EPARSE;
    }
    switch (s[len - 1]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    default:
        return BU_EPARSE;
    }
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n > max_secs / unit) {
            return BU_EPARSE;
        }
        n = n * 10 + (s[i] - '0');
    }
    if (n > max_secs / unit) {
        return BU_EPARSE;
    }
    *secsp = n * unit;
    return BU_OK;
}
