// SPDX-License-Identifier: MIT
/*
 * Time helpers: wall-clock milliseconds, RFC 3339 conversion (UTC, "Z"
 * form, as PASETO claims use) and "7d"-style durations. Thread-safe.
 */
#ifndef BU_BASE_CLOCK_H
#define BU_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

// bu_now_ms returns the Unix time in milliseconds.
int64_t bu_now_ms(void);

// bu_mono_ms returns a monotonic clock in milliseconds (for timeouts).
int64_t bu_mono_ms(void);

// bu_mono_us and bu_thread_cpu_us return the monotonic clock and the
// calling thread's CPU time in microseconds (for the debug log's account
// of where a call's time went).
int64_t bu_mono_us(void);
int64_t bu_thread_cpu_us(void);

// bu_deadline_after returns the CLOCK_REALTIME time ms milliseconds from
// now, the form pthread_cond_timedwait takes.
struct timespec bu_deadline_after(int64_t ms);

// bu_rfc3339_format writes secs as "YYYY-MM-DDTHH:MM:SSZ" into buf (at
// least 21 bytes). Returns BU_EINVAL when buf is too small.
int bu_rfc3339_format(int64_t secs, char *buf, size_t len);

// bu_rfc3339_parse reads an RFC 3339 §5.6 date-time ("T" and "Z"
// uppercase, optional fraction, "Z" or "+hh:mm"/"-hh:mm" offset) into Unix
// seconds (fractions are dropped). Returns BU_EPARSE on anything else,
// including impossible dates; *secsp is written only on success.
int bu_rfc3339_parse(const char *s, int64_t *secsp);

// bu_duration_parse reads a duration "N" + unit, s m h or d ("90s", "7d"),
// with N decimal digits only, into seconds. Returns BU_OK, or BU_EPARSE
// (nothing written) for any other form or a duration past max_secs.
int bu_duration_parse(const char *s, int64_t max_secs, int64_t *secsp);

#endif // BU_BASE_CLOCK_H
