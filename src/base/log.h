// SPDX-License-Identifier: MIT
/*
 * Logging to stderr, one line per call, with a UTC timestamp and a level.
 * Log once, where an error is finally handled. Thread-safe (each line is
 * written with one stdio call).
 */
#ifndef BU_BASE_LOG_H
#define BU_BASE_LOG_H

enum bu_log_level {
    BU_LOG_DEBUG,
    BU_LOG_INFO,
    BU_LOG_WARN,
    BU_LOG_ERROR,
};

// bu_log_set_level drops messages below level. Call before threads start.
void bu_log_set_level(enum bu_log_level level);

// bu_log writes one formatted line at level.
void bu_log(enum bu_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define BU_DEBUG(...) bu_log(BU_LOG_DEBUG, __VA_ARGS__)
#define BU_INFO(...)  bu_log(BU_LOG_INFO, __VA_ARGS__)
#define BU_WARN(...)  bu_log(BU_LOG_WARN, __VA_ARGS__)
#define BU_ERROR(...) bu_log(BU_LOG_ERROR, __VA_ARGS__)

#endif // BU_BASE_LOG_H
