// SPDX-License-Identifier: MIT
// stderr logger: "2026-01-02T03:04:05.678Z INFO message".
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum bu_log_level log_level = BU_LOG_INFO;

void
bu_log_set_level(enum bu_log_level level)
{
    log_level = level;
}

void
bu_log(enum bu_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    if (level < log_level) {
        return;
    }
    struct timespec ts;
    struct tm       tm;
    char            stamp[32];
    char            msg[1024];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %s %s\n", stamp, ts.tv_nsec / 1000000L,
        names[level], msg);
}
