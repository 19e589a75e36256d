// SPDX-License-Identifier: MIT
/*
 * Tests of the RFC 3339 helpers that token claims depend on: the "Z" form
 * written by bu_rfc3339_format, and the strict §5.6 reader (uppercase T and
 * Z, real calendar dates, offsets, fractions, nothing trailing), and the
 * deadlines given to pthread_cond_timedwait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/err.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

// Parses s, which must succeed, and returns the seconds.
static int64_t
parse_ok(const char *s)
{
    int64_t secs = -1;
    if (bu_rfc3339_parse(s, &secs) != BU_OK) {
        fail_msg("refused \"%s\"", s);
    }
    return secs;
}

static void
test_format(void **state)
{
    (void) state;
    char buf[32];

    assert_rv(bu_rfc3339_format(0, buf, sizeof(buf)), BU_OK);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_rv(bu_rfc3339_format(INT64_C(1709164800), buf, sizeof(buf)),
        BU_OK);
    assert_string_equal(buf, "2024-02-29T00:00:00Z");
    assert_rv(bu_rfc3339_format(INT64_C(253402300799), buf, sizeof(buf)),
        BU_OK);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    // 21 bytes is the documented minimum.
    assert_rv(bu_rfc3339_format(0, buf, 21), BU_OK);
    assert_rv(bu_rfc3339_format(0, buf, 20), BU_EINVAL);
}

static void
test_roundtrip(void **state)
{
    (void) state;
    static const int64_t times[] = { 0, 951782400, 1640995200, 1709164800,
        1893456000, 4102444799 };
    char buf[32];
    for (size_t k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
        assert_rv(bu_rfc3339_format(times[k], buf, sizeof(buf)), BU_OK);
        assert_int_equal(parse_ok(buf), times[k]);
    }
}

static void
test_leap_days(void **state)
{
    (void) state;
    int64_t secs = 7;

    assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 1709164800);
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), 951782400);
    assert_rv(bu_rfc3339_parse("2023-02-29T00:00:00Z", &secs), BU_EPARSE);
    assert_rv(bu_rfc3339_parse("2100-02-29T00:00:00Z", &secs), BU_EPARSE);
    assert_rv(bu_rfc3339_parse("2024-02-30T00:00:00Z", &secs), BU_EPARSE);
    assert_rv(bu_rfc3339_parse("2024-04-31T00:00:00Z", &secs), BU_EPARSE);
    // Nothing written on failure.
    assert_int_equal(secs, 7);
}

static void
test_offsets(void **state)
{
    (void) state;
    int64_t z = parse_ok("2024-01-01T00:00:00Z");

    // The vectors' form.
    assert_int_equal(parse_ok("2022-01-01T00:00:00+00:00"), 1640995200);
    assert_int_equal(parse_ok("2024-01-01T01:00:00+01:00"), z);
    assert_int_equal(parse_ok("2023-12-31T18:30:00-05:30"), z);
    assert_int_equal(parse_ok("2024-01-01T00:00:00-00:00"), z);
    assert_int_equal(parse_ok("2024-01-01T23:59:00+23:59"), z);
}

static void
test_fractions(void **state)
{
    (void) state;
    int64_t z = parse_ok("2024-01-01T00:00:00Z");
    int64_t secs;

    assert_int_equal(parse_ok("2024-01-01T00:00:00.5Z"), z);
    assert_int_equal(parse_ok("2024-01-01T00:00:00.999999999Z"), z);
    assert_int_equal(parse_ok("2024-01-01T01:00:00.123+01:00"), z);
    assert_rv(bu_rfc3339_parse("2024-01-01T00:00:00.Z", &secs), BU_EPARSE);
    assert_rv(bu_rfc3339_parse("2024-01-01T00:00:00,5Z", &secs), BU_EPARSE);
}

static void
test_refused(void **state)
{
    (void) state;
    static const char *const bad[] = {
        "",
        "2024",
        "2024-01-01",
        "2024-01-01t00:00:00Z",    // lowercase t
        "2024-01-01T00:00:00z",    // lowercase z
        "2024-01-01 00:00:00Z",    // space separator
        "2024-01-01T00:00:00",     // no offset
        "2024-01-01T00:00:00Z ",   // trailing space
        "2024-01-01T00:00:00Zjunk",
        "2024-01-01T00:00:00+01:00x",
        "2024-01-01T00:00:00+0100",
        "2024-01-01T00:00:00+01",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+01:60",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        "2024-1-01T00:00:00Z",
        "+2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00ZZ",
        " 2024-01-01T00:00:00Z",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int64_t secs = 7;
        if (bu_rfc3339_parse(bad[k], &secs) != BU_EPARSE) {
            fail_msg("accepted \"%s\"", bad[k]);
        }
        assert_int_equal(secs, 7);
    }
}


// The microsecond clocks: the monotonic one agrees with bu_mono_ms, and the
// thread's CPU clock moves while the thread works and not while it sleeps.
static void
test_microsecond_clocks(void **state)
{
    (void) state;
    int64_t ms = bu_mono_ms(), us = bu_mono_us();
    assert_true(us / 1000 >= ms && us / 1000 - ms < 1000);
    int64_t cpu0 = bu_thread_cpu_us();
    volatile uint64_t spin = 0;
    while (bu_thread_cpu_us() - cpu0 < 2000) {
        spin++;
    }
    int64_t         cpu1 = bu_thread_cpu_us();
    struct timespec nap = { 0, 20 * 1000000L };
    nanosleep(&nap, NULL);
    assert_true(bu_thread_cpu_us() - cpu1 < 15000); // 20 ms asleep
    assert_true(bu_mono_us() - us >= 20000);
}

// bu_deadline_after: now plus ms on the real-time clock, with the
// nanoseconds carried into the seconds.
static void
test_deadline_after(void **state)
{
    (void) state;
    static const int64_t delays[] = { 0, 1, 999, 1000, 1500, 61999 };
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        int64_t         before = bu_now_ms();
        struct timespec ts = bu_deadline_after(delays[i]);
        int64_t         after = bu_now_ms();
        assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
        int64_t at = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        assert_true(at >= before + delays[i]);
        assert_true(at <= after + delays[i]);
    }
}

static void
test_duration_parse(void **state)
{
    (void) state;
    int64_t secs = -1;
    assert_int_equal(bu_duration_parse("90s", 1000, &secs), BU_OK);
    assert_int_equal(secs, 90);
    assert_int_equal(bu_duration_parse("30m", 86400, &secs), BU_OK);
    assert_int_equal(secs, 1800);
    assert_int_equal(bu_duration_parse("12h", 86400, &secs), BU_OK);
    assert_int_equal(secs, 43200);
    assert_int_equal(bu_duration_parse("7d", 86400 * 7, &secs), BU_OK);
    assert_int_equal(secs, 604800);
    assert_int_equal(bu_duration_parse("0s", 10, &secs), BU_OK);
    assert_int_equal(secs, 0);
    secs = -1;
    static const char *const bad[] = { "", "s", "7", "7x", "-1s", "+1s",
        " 1s", "1 s", "1.5h", "1sd", "8d", "99999999999999999999999d" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bu_duration_parse(bad[i], 7 * 86400, &secs),
            BU_EPARSE);
    }
    assert_int_equal(secs, -1);
}

int
main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_after),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_leap_days),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_fractions),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_microsecond_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
