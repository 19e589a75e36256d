// SPDX-License-Identifier: MIT
/*
 * Tests of the base module: the blocking FIFO (order, whole-backlog takes,
 * close semantics, many producers and consumers), strict UTF-8 counting,
 * UUIDv7 job ids, the error table and the allocator's failure injection.
 * Threads never call cmocka's assertions: they record what they saw and
 * the main thread checks it after joining them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "base/arena.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/queue.h"
#include "base/utf8.h"
#include "base/uuid.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

// ---- queue ----

struct item {
    struct bu_qnode node; // first, so a node pointer is an item pointer
    int producer;
    int seq;
};

static void
test_queue_fifo(void **state)
{
    (void) state;
    struct bu_queue q;
    struct item items[5];

    assert_rv(bu_queue_init(&q), BU_OK);
    assert_int_equal(bu_queue_len(&q), 0);
    for (int i = 0; i < 5; i++) {
        items[i].seq = i;
        assert_rv(bu_queue_put(&q, &items[i].node), BU_OK);
    }
    assert_int_equal(bu_queue_len(&q), 5);
    for (int i = 0; i < 5; i++) {
        struct item *it = (struct item *) bu_queue_get(&q);
        assert_non_null(it);
        assert_int_equal(it->seq, i);
        // A single take hands out the node alone, not the rest of the list.
        assert_null(it->node.next);
        assert_int_equal(bu_queue_len(&q), (size_t) (4 - i));
    }
    bu_queue_fini(&q);
}

static void
test_queue_get_all(void **state)
{
    (void) state;
    struct bu_queue q;
    struct item items[4];

    assert_rv(bu_queue_init(&q), BU_OK);
    for (int i = 0; i < 3; i++) {
        items[i].seq = i;
        assert_rv(bu_queue_put(&q, &items[i].node), BU_OK);
    }
    struct bu_qnode *chain = bu_queue_get_all(&q);
    assert_int_equal(bu_queue_len(&q), 0);
    int n = 0;
    for (struct bu_qnode *p = chain; p != NULL; p = p->next) {
        assert_int_equal(((struct item *) p)->seq, n);
        n++;
    }
    assert_int_equal(n, 3);

    // The queue is usable (and empty) after a whole-backlog take.
    items[3].seq = 3;
    assert_rv(bu_queue_put(&q, &items[3].node), BU_OK);
    chain = bu_queue_get_all(&q);
    assert_ptr_equal(chain, &items[3].node);
    assert_null(chain->next);
    bu_queue_fini(&q);
}

static void
test_queue_close_drains(void **state)
{
    (void) state;
    struct bu_queue q;
    struct item items[3];
    struct item late;

    assert_rv(bu_queue_init(&q), BU_OK);
    for (int i = 0; i < 2; i++) {
        items[i].seq = i;
        assert_rv(bu_queue_put(&q, &items[i].node), BU_OK);
    }
    bu_queue_close(&q);
    // Refused puts leave the node with the caller and the queue unchanged.
    assert_rv(bu_queue_put(&q, &late.node), BU_ECLOSED);
    assert_int_equal(bu_queue_len(&q), 2);
    // What was queued before the close is still handed out, then NULL.
    assert_ptr_equal(bu_queue_get(&q), &items[0].node);
    assert_ptr_equal(bu_queue_get(&q), &items[1].node);
    assert_null(bu_queue_get(&q));
    assert_null(bu_queue_get(&q));
    assert_null(bu_queue_get_all(&q));
    // Closing twice is harmless.
    bu_queue_close(&q);
    assert_null(bu_queue_get(&q));
    bu_queue_fini(&q);

    // get_all drains too.
    assert_rv(bu_queue_init(&q), BU_OK);
    for (int i = 0; i < 3; i++) {
        items[i].seq = i;
        assert_rv(bu_queue_put(&q, &items[i].node), BU_OK);
    }
    bu_queue_close(&q);
    struct bu_qnode *chain = bu_queue_get_all(&q);
    int n = 0;
    for (struct bu_qnode *p = chain; p != NULL; p = p->next) {
        n++;
    }
    assert_int_equal(n, 3);
    assert_null(bu_queue_get_all(&q));
    bu_queue_fini(&q);
}

struct waiter {
    struct bu_queue *q;
    struct bu_qnode *got;
};

static void *
queue_wait_main(void *arg)
{
    struct waiter *w = arg;
    w->got = bu_queue_get(w->q);
    return NULL;
}

static void
test_queue_close_wakes_consumer(void **state)
{
    (void) state;
    struct bu_queue q;
    pthread_t t;
    struct waiter w = { .q = &q, .got = (struct bu_qnode *) &w };

    assert_rv(bu_queue_init(&q), BU_OK);
    assert_int_equal(pthread_create(&t, NULL, queue_wait_main, &w), 0);
    // Whether the consumer is already waiting or not, close must make its
    // get return NULL; join would hang otherwise (and ctest would time out).
    bu_queue_close(&q);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_null(w.got);
    bu_queue_fini(&q);
}

#define PC_PRODUCERS 4
#define PC_CONSUMERS 3
#define PC_ITEMS 5000

struct pc_state {
    struct bu_queue q;
    struct item items[PC_PRODUCERS][PC_ITEMS];
    int put_failed[PC_PRODUCERS]; // each producer writes its own slot
    // Per consumer: how many items it took and whether each producer's
    // items reached it in order.
    int taken[PC_CONSUMERS];
    int last_seq[PC_CONSUMERS][PC_PRODUCERS];
    int out_of_order[PC_CONSUMERS];
    // Written by whichever consumer took the item.
    int seen[PC_PRODUCERS][PC_ITEMS];
};

struct pc_arg {
    struct pc_state *s;
    int index;
};

static void *
pc_producer(void *arg)
{
    struct pc_arg *a = arg;
    for (int i = 0; i < PC_ITEMS; i++) {
        struct item *it = &a->s->items[a->index][i];
        it->producer = a->index;
        it->seq = i;
        if (bu_queue_put(&a->s->q, &it->node) != BU_OK) {
            a->s->put_failed[a->index]++;
        }
    }
    return NULL;
}

static void *
pc_consumer(void *arg)
{
    struct pc_arg *a = arg;
    struct pc_state *s = a->s;
    for (int p = 0; p < PC_PRODUCERS; p++) {
        s->last_seq[a->index][p] = -1;
    }
    // Half the consumers take one node at a time, half the whole backlog.
    for (;;) {
        struct bu_qnode *chain = a->index % 2 == 0
            ? bu_queue_get(&s->q)
            : bu_queue_get_all(&s->q);
        if (chain == NULL) {
            break;
        }
        struct bu_qnode *next;
        for (struct bu_qnode *n = chain; n != NULL; n = next) {
            next = n->next;
            struct item *it = (struct item *) n;
            if (it->seq <= s->last_seq[a->index][it->producer]) {
                s->out_of_order[a->index]++;
            }
            s->last_seq[a->index][it->producer] = it->seq;
            s->seen[it->producer][it->seq]++;
            s->taken[a->index]++;
        }
    }
    return NULL;
}

static void
test_queue_producers_consumers(void **state)
{
    (void) state;
    struct pc_state *s = calloc(1, sizeof(*s));
    pthread_t prod[PC_PRODUCERS], cons[PC_CONSUMERS];
    struct pc_arg pa[PC_PRODUCERS], ca[PC_CONSUMERS];

    assert_non_null(s);
    assert_rv(bu_queue_init(&s->q), BU_OK);
    for (int i = 0; i < PC_CONSUMERS; i++) {
        ca[i] = (struct pc_arg) { .s = s, .index = i };
        assert_int_equal(pthread_create(&cons[i], NULL, pc_consumer, &ca[i]),
            0);
    }
    for (int i = 0; i < PC_PRODUCERS; i++) {
        pa[i] = (struct pc_arg) { .s = s, .index = i };
        assert_int_equal(pthread_create(&prod[i], NULL, pc_producer, &pa[i]),
            0);
    }
    for (int i = 0; i < PC_PRODUCERS; i++) {
        assert_int_equal(pthread_join(prod[i], NULL), 0);
    }
    // Every put happened before the close, so every item must come out.
    bu_queue_close(&s->q);
    for (int i = 0; i < PC_CONSUMERS; i++) {
        assert_int_equal(pthread_join(cons[i], NULL), 0);
    }

    int total = 0;
    for (int i = 0; i < PC_CONSUMERS; i++) {
        total += s->taken[i];
        // A consumer sees each producer's items in the order they were put.
        assert_int_equal(s->out_of_order[i], 0);
    }
    assert_int_equal(total, PC_PRODUCERS * PC_ITEMS);
    for (int p = 0; p < PC_PRODUCERS; p++) {
        assert_int_equal(s->put_failed[p], 0);
        for (int i = 0; i < PC_ITEMS; i++) {
            if (s->seen[p][i] != 1) {
                fail_msg("item %d of producer %d seen %d times", i, p,
                    s->seen[p][i]);
            }
        }
    }
    assert_int_equal(bu_queue_len(&s->q), 0);
    bu_queue_fini(&s->q);
    free(s);
}

// ---- utf8 ----

struct utf8_case {
    const char *name;
    const char *s;
    size_t n;     // bytes (the literal's length, NULs included)
    bool valid;
    size_t chars; // when valid
};

#define U8(name, lit, valid, chars)                                         \
    { name, lit, sizeof(lit) - 1, valid, chars }

static const struct utf8_case utf8_cases[] = {
    U8("empty", "", true, 0),
    U8("ascii", "abc", true, 3),
    U8("embedded NUL is a character", "a\0b", true, 3),
    U8("2-byte e-acute", "\xc3\xa9", true, 1),
    U8("3-byte euro", "\xe2\x82\xac", true, 1),
    U8("4-byte emoji", "\xf0\x9f\x98\x80", true, 1),
    U8("mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", true, 5),
    U8("U+0080, first 2-byte", "\xc2\x80", true, 1),
    U8("U+07FF, last 2-byte", "\xdf\xbf", true, 1),
    U8("U+0800, first 3-byte", "\xe0\xa0\x80", true, 1),
    U8("U+D7FF, before surrogates", "\xed\x9f\xbf", true, 1),
    U8("U+E000, after surrogates", "\xee\x80\x80", true, 1),
    U8("U+FFFF", "\xef\xbf\xbf", true, 1),
    U8("U+10000, first 4-byte", "\xf0\x90\x80\x80", true, 1),
    U8("U+10FFFF, last code point", "\xf4\x8f\xbf\xbf", true, 1),
    // Overlong forms.
    U8("overlong NUL (C0 80)", "\xc0\x80", false, 0),
    U8("overlong slash (C0 AF)", "\xc0\xaf", false, 0),
    U8("overlong U+007F (C1 BF)", "\xc1\xbf", false, 0),
    U8("overlong 3-byte slash", "\xe0\x80\xaf", false, 0),
    U8("overlong 3-byte U+07FF", "\xe0\x9f\xbf", false, 0),
    U8("overlong 4-byte slash", "\xf0\x80\x80\xaf", false, 0),
    U8("overlong 4-byte U+FFFF", "\xf0\x8f\xbf\xbf", false, 0),
    // UTF-16 surrogates.
    U8("surrogate U+D800", "\xed\xa0\x80", false, 0),
    U8("surrogate U+DBFF", "\xed\xaf\xbf", false, 0),
    U8("surrogate U+DC00", "\xed\xb0\x80", false, 0),
    U8("surrogate U+DFFF", "\xed\xbf\xbf", false, 0),
    U8("surrogate pair as CESU-8", "\xed\xa0\xbd\xed\xb8\x80", false, 0),
    // Past U+10FFFF.
    U8("U+110000", "\xf4\x90\x80\x80", false, 0),
    U8("F5 lead", "\xf5\x80\x80\x80", false, 0),
    U8("F7 BF BF BF", "\xf7\xbf\xbf\xbf", false, 0),
    U8("5-byte form", "\xf8\x88\x80\x80\x80", false, 0),
    U8("6-byte form", "\xfc\x84\x80\x80\x80\x80", false, 0),
    U8("FE", "\xfe", false, 0),
    U8("FF", "\xff", false, 0),
    // Truncated and broken sequences.
    U8("truncated 2-byte", "\xc3", false, 0),
    U8("truncated 3-byte", "\xe2\x82", false, 0),
    U8("truncated 4-byte", "\xf0\x9f\x98", false, 0),
    U8("truncated at the end", "abc\xe2\x82", false, 0),
    U8("lone continuation", "\x80", false, 0),
    U8("continuation after ascii", "a\xbf", false, 0),
    U8("bad continuation", "\xc3\x28", false, 0),
    U8("lead then ascii in 3-byte", "\xe2\x28\xa1", false, 0),
    U8("lead then lead", "\xc3\xc3\xa9", false, 0),
};

static void
test_utf8_cases(void **state)
{
    (void) state;
    for (size_t k = 0; k < NELEM(utf8_cases); k++) {
        const struct utf8_case *c = &utf8_cases[k];
        size_t chars = 12345;
        bool ok = bu_utf8_count(c->s, c->n, &chars);
        if (ok != c->valid) {
            fail_msg("%s: bu_utf8_count says %s", c->name,
                ok ? "valid" : "invalid");
        }
        if (c->valid && chars != c->chars) {
            fail_msg("%s: %zu characters, want %zu", c->name, chars,
                c->chars);
        }
        if (!c->valid && chars != 12345) {
            fail_msg("%s: *charsp written on failure", c->name);
        }
    }
}

// Every case again between ASCII runs of 0 to 17 bytes on each side, so
// that each sequence starts, ends and breaks at every offset of the
// eight-byte ASCII steps: the verdict stays, and the runs are counted.
static void
test_utf8_cases_padded(void **state)
{
    (void) state;
    char buf[64];
    for (size_t k = 0; k < NELEM(utf8_cases); k++) {
        const struct utf8_case *c = &utf8_cases[k];
        for (size_t pre = 0; pre < 18; pre++) {
            for (size_t post = 0; post < 18; post++) {
                size_t n = pre + c->n + post;
                assert_true(n <= sizeof(buf));
                memset(buf, 'p', pre);
                memcpy(buf + pre, c->s, c->n);
                memset(buf + pre + c->n, 'q', post);
                size_t chars = 12345;
                bool   ok = bu_utf8_count(buf, n, &chars);
                if (ok != c->valid) {
                    fail_msg("%s (%zu before, %zu after): says %s", c->name,
                        pre, post, ok ? "valid" : "invalid");
                }
                if (c->valid && chars != pre + c->chars + post) {
                    fail_msg("%s (%zu before, %zu after): %zu characters",
                        c->name, pre, post, chars);
                }
            }
        }
    }
}

static void
test_utf8_length_bound(void **state)
{
    (void) state;
    // Only the first n bytes are read: a valid prefix of a longer text is
    // valid, and a cut through a sequence is not.
    const char *s = "\xc3\xa9\xc3\xa9";
    size_t chars = 0;
    assert_true(bu_utf8_count(s, 2, &chars));
    assert_int_equal(chars, 1);
    assert_false(bu_utf8_count(s, 3, &chars));
    assert_true(bu_utf8_count(s, 0, &chars));
    assert_int_equal(chars, 0);
}

// ---- uuid ----

static int
hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

static void
test_uuid7_format(void **state)
{
    (void) state;
    char prev[BU_UUID_SIZE] = "";
    // The clock is only compared with itself around each call, so the
    // check holds however slow the machine is.
    for (int k = 0; k < 200; k++) {
        char id[BU_UUID_SIZE];
        memset(id, 'x', sizeof(id));
        int64_t before = bu_now_ms();
        assert_rv(bu_uuid7(id), BU_OK);
        int64_t after = bu_now_ms();

        assert_int_equal(strlen(id), 36);
        assert_int_equal(bu_uuid_valid(id), 1);
        for (int i = 0; i < 36; i++) {
            bool dash = i == 8 || i == 13 || i == 18 || i == 23;
            if (dash != (id[i] == '-')) {
                fail_msg("%s: bad character at %d", id, i);
            }
        }
        // Version 7 in the high nibble of byte 6; variant 10 in byte 8.
        assert_int_equal(id[14], '7');
        if (strchr("89ab", id[19]) == NULL) {
            fail_msg("%s: variant nibble %c", id, id[19]);
        }
        // The first 48 bits are the creation time in Unix milliseconds.
        int64_t ms = 0;
        for (int i = 0; i < 13; i++) {
            if (i != 8) {
                ms = ms * 16 + hexval(id[i]);
            }
        }
        assert_in_range(ms, before, after);
        // 74 random bits: consecutive ids differ.
        assert_string_not_equal(id, prev);
        memcpy(prev, id, sizeof(prev));
    }
}

static void
test_uuid_valid(void **state)
{
    (void) state;
    assert_int_equal(
        bu_uuid_valid("0190f0e4-7b8a-7c3d-8e9f-0123456789ab"), 1);
    assert_int_equal(
        bu_uuid_valid("00000000-0000-0000-0000-000000000000"), 1);
    // Uppercase hex is not the canonical form the server writes.
    assert_int_equal(
        bu_uuid_valid("0190F0E4-7B8A-7C3D-8E9F-0123456789AB"), 0);
    assert_int_equal(bu_uuid_valid(""), 0);
    assert_int_equal(
        bu_uuid_valid("0190f0e4-7b8a-7c3d-8e9f-0123456789a"), 0);
    assert_int_equal(
        bu_uuid_valid("0190f0e4-7b8a-7c3d-8e9f-0123456789abc"), 0);
    assert_int_equal(
        bu_uuid_valid("0190f0e47b8a-7c3d-8e9f-0123456789abcd"), 0);
    assert_int_equal(
        bu_uuid_valid("0190f0e4-7b8a-7c3d-8e9f_0123456789ab"), 0);
    assert_int_equal(
        bu_uuid_valid("0190f0e4-7b8a-7c3d-8e9f-0123456789ag"), 0);
    assert_int_equal(
        bu_uuid_valid("{190f0e4-7b8a-7c3d-8e9f-0123456789ab"), 0);
    assert_int_equal(
        bu_uuid_valid("../../../../../../../../etc/passwd.db"), 0);
}

// ---- err ----

static void
test_err_table(void **state)
{
    (void) state;
    // Each code's name is its identifier and its text the table's.
#define ERR_CHECK(name, text)                                               \
    assert_string_equal(bu_errname(name), #name);                           \
    assert_string_equal(bu_strerror(name), text);
    BU_ERR_TABLE(ERR_CHECK)
#undef ERR_CHECK

    assert_int_equal(BU_OK, 0);
    for (int a = 0; a < BU_ERR_COUNT; a++) {
        assert_non_null(bu_strerror(a));
        assert_true(strlen(bu_strerror(a)) > 0);
        assert_true(strncmp(bu_errname(a), "BU_", 3) == 0);
        for (int b = a + 1; b < BU_ERR_COUNT; b++) {
            if (strcmp(bu_errname(a), bu_errname(b)) == 0 ||
                strcmp(bu_strerror(a), bu_strerror(b)) == 0) {
                fail_msg("codes %d and %d share a name or text", a, b);
            }
        }
    }
    // Outside the table: fixed fallbacks, never NULL.
    assert_string_equal(bu_strerror(-1), "unknown error");
    assert_string_equal(bu_strerror(BU_ERR_COUNT), "unknown error");
    assert_string_equal(bu_strerror(1 << 20), "unknown error");
    assert_string_equal(bu_errname(-1), "BU_E?");
    assert_string_equal(bu_errname(BU_ERR_COUNT), "BU_E?");
}

// ---- alloc ----

static int
alloc_teardown(void **state)
{
    (void) state;
    bu_alloc_fail_after(-1);
    return 0;
}

static void
test_alloc_zeroed(void **state)
{
    (void) state;
    unsigned char *p = bu_alloc(64);
    assert_non_null(p);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(p[i], 0);
    }
    bu_free(p);
    // Zero bytes still gives a pointer that bu_free takes.
    p = bu_alloc(0);
    assert_non_null(p);
    bu_free(p);
    bu_free(NULL);

    int *v = bu_calloc(16, sizeof(int));
    assert_non_null(v);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(v[i], 0);
    }
    bu_free(v);
    assert_null(bu_calloc(SIZE_MAX / 2, 4));

    char *s = bu_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    bu_free(s);
    s = bu_strdup("hello");
    assert_string_equal(s, "hello");
    bu_free(s);
    assert_null(bu_strdup(NULL));

    char *r = bu_realloc(NULL, 8);
    assert_non_null(r);
    memcpy(r, "1234567", 8);
    r = bu_realloc(r, 4096);
    assert_non_null(r);
    assert_string_equal(r, "1234567");
    bu_free(r);
}

static void
test_alloc_fail_after(void **state)
{
    (void) state;
    void *a, *b, *c;

    // Two more allocations succeed, then every one fails.
    bu_alloc_fail_after(2);
    a = bu_alloc(8);
    b = bu_strdup("x");
    assert_non_null(a);
    assert_non_null(b);
    assert_null(bu_alloc(8));
    assert_null(bu_calloc(2, 8));
    assert_null(bu_strdup("y"));
    assert_null(bu_strndup("y", 1));

    // A failed realloc returns NULL and leaves the block alone.
    memcpy(a, "keep", 5);
    assert_null(bu_realloc(a, 1024));
    assert_string_equal(a, "keep");

    // n = 0: the very next allocation fails.
    bu_alloc_fail_after(0);
    assert_null(bu_alloc(1));

    // Negative turns injection off.
    bu_alloc_fail_after(-1);
    c = bu_alloc(8);
    assert_non_null(c);
    bu_free(a);
    bu_free(b);
    bu_free(c);

    // realloc counts against the budget too.
    bu_alloc_fail_after(1);
    a = bu_realloc(NULL, 8);
    assert_non_null(a);
    assert_null(bu_realloc(a, 16));
    bu_alloc_fail_after(-1);
    bu_free(a);
}

// Failing each allocation of an operation in turn is how fault tests use
// the injector; check the recipe on a three-allocation operation.
static int
three_strdups(char **out)
{
    for (int i = 0; i < 3; i++) {
        out[i] = bu_strdup("abc");
        if (out[i] == NULL) {
            for (int k = 0; k < i; k++) {
                bu_free(out[k]);
                out[k] = NULL;
            }
            return BU_ENOMEM;
        }
    }
    return BU_OK;
}

static void
test_alloc_fail_each_step(void **state)
{
    (void) state;
    char *out[3];
    for (long n = 0; n < 3; n++) {
        bu_alloc_fail_after(n);
        assert_rv(three_strdups(out), BU_ENOMEM);
    }
    bu_alloc_fail_after(3);
    assert_rv(three_strdups(out), BU_OK);
    bu_alloc_fail_after(-1);
    for (int i = 0; i < 3; i++) {
        bu_free(out[i]);
    }
}


// The arena hands out aligned, disjoint memory across blocks, serves
// protobuf-c's unpack, starts a reuse with one block and reports OOM.
// A released block is kept and the next arena, on any thread, takes it
// without asking malloc; blocks over 4 MiB, and more than 16 MiB of them,
// are freed.
static void
test_arena_cache(void **state)
{
    (void) state;
    bu_arena_cache_release();
    struct bu_arena a;
    bu_arena_init(&a, 1u << 20);
    unsigned char *p = bu_arena_alloc(&a, 100);
    assert_non_null(p);
    bu_arena_fini(&a);

    bu_alloc_fail_after(0); // malloc fails from here
    bu_arena_init(&a, 1u << 20);
    unsigned char *q = bu_arena_alloc(&a, 100);
    assert_ptr_equal(q, p); // the same block, from the start
    assert_null(bu_arena_alloc(&a, 1u << 20)); // no second spare
    bu_alloc_fail_after(-1);
    bu_arena_fini(&a);

    // Too large to keep.
    bu_arena_cache_release();
    bu_arena_init(&a, 5u << 20);
    assert_non_null(bu_arena_alloc(&a, 100));
    bu_arena_fini(&a);
    bu_alloc_fail_after(0);
    bu_arena_init(&a, 5u << 20);
    assert_null(bu_arena_alloc(&a, 100));
    bu_alloc_fail_after(-1);
    bu_arena_fini(&a);

    // At most 16 MiB kept: of twenty 1 MiB arenas released, sixteen come
    // back.
    struct bu_arena many[20];
    for (int i = 0; i < 20; i++) {
        bu_arena_init(&many[i], 1u << 20);
        assert_non_null(bu_arena_alloc(&many[i], 1));
    }
    for (int i = 0; i < 20; i++) {
        bu_arena_fini(&many[i]);
    }
    bu_alloc_fail_after(0);
    int reused = 0;
    for (int i = 0; i < 20; i++) {
        bu_arena_init(&many[i], 1u << 20);
        reused += bu_arena_alloc(&many[i], 1) != NULL;
    }
    bu_alloc_fail_after(-1);
    assert_int_equal(reused, 16);
    for (int i = 0; i < 20; i++) {
        bu_arena_fini(&many[i]);
    }
    bu_arena_cache_release();
}

static void
test_arena_blocks_alignment_reuse(void **state)
{
    (void) state;
    struct bu_arena a;
    bu_arena_init(&a, 64);
    unsigned char *prev = NULL;
    for (size_t i = 1; i < 2000; i++) {
        unsigned char *p = bu_arena_alloc(&a, i % 97 + 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t) p % _Alignof(max_align_t), 0);
        memset(p, 0xab, i % 97 + 1); // ASan: in bounds
        assert_true(p != prev);
        prev = p;
    }
    // Larger than any block so far: a block of its own.
    unsigned char *big = bu_arena_alloc(&a, 1u << 20);
    assert_non_null(big);
    memset(big, 1, 1u << 20);
    bu_arena_fini(&a);
    assert_null(a.blocks);
    assert_true(a.next_size >= (1u << 20));

    // protobuf-c unpacks into it; the message is released with the arena.
    Bulkupsert__V1__Value v = BULKUPSERT__V1__VALUE__INIT;
    v.kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
    v.string_value = "hello";
    uint8_t buf[32];
    size_t  n = bulkupsert__v1__value__pack(&v, buf);
    Bulkupsert__V1__Value *u
        = bulkupsert__v1__value__unpack(&a.allocator, n, buf);
    assert_non_null(u);
    assert_string_equal(u->string_value, "hello");
    assert_non_null(a.blocks);
    bu_arena_fini(&a);

    // With no spare blocks kept, a failed malloc is the arena's OOM.
    bu_arena_cache_release();
    bu_arena_init(&a, 0);
    bu_alloc_fail_after(0);
    assert_false(a.oom);
    assert_null(bu_arena_alloc(&a, 10));
    assert_true(a.oom);
    assert_null(bulkupsert__v1__value__unpack(&a.allocator, n, buf));
    bu_alloc_fail_after(-1);
    bu_arena_fini(&a);
    assert_false(a.oom);
    assert_null(bu_arena_alloc(&a, SIZE_MAX - 8)); // overflow
    assert_true(a.oom);
    bu_arena_fini(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_fifo),
        cmocka_unit_test(test_queue_get_all),
        cmocka_unit_test(test_queue_close_drains),
        cmocka_unit_test(test_queue_close_wakes_consumer),
        cmocka_unit_test(test_queue_producers_consumers),
        cmocka_unit_test(test_utf8_cases),
        cmocka_unit_test(test_utf8_cases_padded),
        cmocka_unit_test(test_utf8_length_bound),
        cmocka_unit_test(test_uuid7_format),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_alloc_zeroed),
        cmocka_unit_test(test_arena_blocks_alignment_reuse),
        cmocka_unit_test(test_arena_cache),
        cmocka_unit_test_teardown(test_alloc_fail_after, alloc_teardown),
        cmocka_unit_test_teardown(test_alloc_fail_each_step, alloc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
