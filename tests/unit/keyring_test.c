// SPDX-License-Identifier: MIT
/*
 * Tests of the keyring file: comments and blank lines, lookups by PASERK
 * id, refusal of bad lines and secret keys (with the line number logged),
 * and reloads that either swap in the new set or keep the old one whole.
 * A last test reloads while other threads look keys up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>

#include "auth/keyring.h"
#include "auth/paseto.h"
#include "base/alloc.h"
#include "base/err.h"

#define assert_rv(expr, want)                                               \
    do {                                                                    \
        int got_ = (expr);                                                  \
        if (got_ != (want)) {                                               \
            fail_msg("%s: got %s, want %s", #expr, bu_errname(got_),       \
                bu_errname(want));                                          \
        }                                                                   \
    } while (0)

// A key pair with its PASERK strings and id.
struct testkey {
    struct bu_paseto_key secret;
    struct bu_paseto_key pub;
    char *secret_str;
    char *pub_str;
    char pid[BU_PASERK_PID_SIZE];
};

struct fixture {
    char dir[64];
    char path[96];
    struct testkey a;
    struct testkey b;
};

// ---- fixtures ----

static void
testkey_make(struct testkey *k)
{
    assert_rv(bu_paseto_keypair(&k->secret, &k->pub), BU_OK);
    assert_rv(bu_paserk_format(&k->secret, &k->secret_str), BU_OK);
    assert_rv(bu_paserk_format(&k->pub, &k->pub_str), BU_OK);
    assert_rv(bu_paserk_pid(&k->pub, k->pid), BU_OK);
}

static void
testkey_free(struct testkey *k)
{
    if (k->secret_str != NULL) {
        sodium_memzero(k->secret_str, strlen(k->secret_str));
    }
    bu_free(k->secret_str);
    bu_free(k->pub_str);
    bu_paseto_key_wipe(&k->secret);
}

static int
keyring_setup(void **state)
{
    struct fixture *fx = bu_alloc(sizeof(*fx));
    if (fx == NULL) {
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/bu_keyring_test.XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        bu_free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/keys", fx->dir);
    testkey_make(&fx->a);
    testkey_make(&fx->b);
    *state = fx;
    return 0;
}

static int
keyring_teardown(void **state)
{
    struct fixture *fx = *state;
    testkey_free(&fx->a);
    testkey_free(&fx->b);
    unlink(fx->path);
    rmdir(fx->dir);
    bu_free(fx);
    return 0;
}

// ---- helpers ----

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

// write_lines writes the NULL-terminated list of lines to path.
static void
write_lines(const char *path, const char *const *lines)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (; *lines != NULL; lines++) {
        fprintf(fp, "%s\n", *lines);
    }
    assert_int_equal(fclose(fp), 0);
}

static int
has_key(struct bu_keyring *kr, const struct testkey *k)
{
    struct bu_paseto_key key;
    if (bu_keyring_find(kr, k->pid, &key) != BU_OK) {
        return 0;
    }
    assert_int_equal(key.kind, BU_KEY_V4_PUBLIC);
    assert_memory_equal(key.bytes, k->pub.bytes, 32);
    return 1;
}

// Runs the open of path with stderr captured into log (NUL-terminated).
static int
open_logged(struct bu_keyring **krp, const char *path, char *log, size_t size)
{
    char logpath[128];
    snprintf(logpath, sizeof(logpath), "%s.log", path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *fp = fopen(logpath, "w+");
    assert_true(saved >= 0 && fp != NULL);
    dup2(fileno(fp), STDERR_FILENO);
    int rv = bu_keyring_open(krp, path);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(fp);
    size_t n = fread(log, 1, size - 1, fp);
    log[n] = '\0';
    fclose(fp);
    unlink(logpath);
    return rv;
}

// ---- tests ----

static void
test_comments_and_blank_lines(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;
    char text[512];

    snprintf(text, sizeof(text),
        "# issuers trusted by this server\n"
        "\n"
        "   \n"
        "\t# indented comment\n"
        "  %s  \r\n"
        "%s\n"
        "# a trailing comment without a newline",
        fx->a.pub_str, fx->b.pub_str);
    write_file(fx->path, text);
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);
    assert_int_equal(bu_keyring_count(kr), 2);
    assert_true(has_key(kr, &fx->a));
    assert_true(has_key(kr, &fx->b));
    bu_keyring_close(kr);

    // A file of comments only is an empty keyring, which trusts no token.
    write_file(fx->path, "# nothing yet\n\n");
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);
    assert_int_equal(bu_keyring_count(kr), 0);
    assert_false(has_key(kr, &fx->a));
    bu_keyring_close(kr);
    bu_keyring_close(NULL);
}

static void
test_find_by_pid(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;
    struct bu_paseto_key key = { .kind = BU_KEY_NONE, .len = 7 };

    // The same key twice is one entry.
    const char *lines[] = { fx->a.pub_str, fx->a.pub_str, NULL };
    write_lines(fx->path, lines);
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);
    assert_int_equal(bu_keyring_count(kr), 1);
    assert_true(has_key(kr, &fx->a));

    assert_rv(bu_keyring_find(kr, fx->b.pid, &key), BU_ENOENT);
    assert_rv(bu_keyring_find(kr, "", &key), BU_ENOENT);
    assert_rv(bu_keyring_find(kr, NULL, &key), BU_ENOENT);
    assert_rv(bu_keyring_find(kr, fx->a.pub_str, &key), BU_ENOENT);
    // A prefix of the id is not the id.
    char prefix[BU_PASERK_PID_SIZE];
    memcpy(prefix, fx->a.pid, sizeof(prefix));
    prefix[BU_PASERK_PID_SIZE - 2] = '\0';
    assert_rv(bu_keyring_find(kr, prefix, &key), BU_ENOENT);
    assert_int_equal(key.len, 7);
    bu_keyring_close(kr);
}

static void
test_bad_line(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;
    char log[1024];

    const char *lines[] = { "# keys", fx->a.pub_str, "k4.public.garbage",
        NULL };
    write_lines(fx->path, lines);
    assert_rv(open_logged(&kr, fx->path, log, sizeof(log)), BU_EPARSE);
    assert_null(kr);
    // The log names the line.
    assert_non_null(strstr(log, "line 3"));

    assert_rv(bu_keyring_open(&kr, "/nonexistent/bu/keys"), BU_EIO);
    assert_null(kr);
}

static void
test_secret_key_refused(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;
    char log[1024];

    const char *lines[] = { fx->a.pub_str, fx->b.secret_str, NULL };
    write_lines(fx->path, lines);
    assert_rv(open_logged(&kr, fx->path, log, sizeof(log)), BU_EPARSE);
    assert_null(kr);
    assert_non_null(strstr(log, "line 2"));
    // The secret itself never reaches the log.
    assert_null(strstr(log, fx->b.secret_str + 10));

    // Nor is a local key a verifying key.
    const char *local[] = {
        "k4.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8", NULL };
    write_lines(fx->path, local);
    assert_rv(open_logged(&kr, fx->path, log, sizeof(log)), BU_EPARSE);
    assert_null(kr);
    assert_non_null(strstr(log, "line 1"));
}

static void
test_reload_keeps_old_on_error(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;

    const char *first[] = { fx->a.pub_str, NULL };
    write_lines(fx->path, first);
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);

    // b is valid but a later line is not: nothing of the new file is used.
    const char *bad[] = { fx->b.pub_str, "not a key", NULL };
    write_lines(fx->path, bad);
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    assert_int_equal(bu_keyring_count(kr), 1);
    assert_true(has_key(kr, &fx->a));
    assert_false(has_key(kr, &fx->b));

    // A secret key line is refused the same way.
    const char *secret[] = { fx->b.pub_str, fx->a.secret_str, NULL };
    write_lines(fx->path, secret);
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    assert_true(has_key(kr, &fx->a));
    assert_false(has_key(kr, &fx->b));

    // So is a file that has gone.
    assert_int_equal(unlink(fx->path), 0);
    assert_rv(bu_keyring_reload(kr), BU_EIO);
    assert_int_equal(bu_keyring_count(kr), 1);
    assert_true(has_key(kr, &fx->a));
    bu_keyring_close(kr);
}

static void
test_reload_new_key(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;

    const char *first[] = { fx->a.pub_str, NULL };
    write_lines(fx->path, first);
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);
    assert_false(has_key(kr, &fx->b));

    // Rotation: add b, then retire a.
    const char *both[] = { fx->a.pub_str, fx->b.pub_str, NULL };
    write_lines(fx->path, both);
    assert_rv(bu_keyring_reload(kr), BU_OK);
    assert_int_equal(bu_keyring_count(kr), 2);
    assert_true(has_key(kr, &fx->a));
    assert_true(has_key(kr, &fx->b));

    const char *only_b[] = { "# a retired", fx->b.pub_str, NULL };
    write_lines(fx->path, only_b);
    assert_rv(bu_keyring_reload(kr), BU_OK);
    assert_int_equal(bu_keyring_count(kr), 1);
    assert_false(has_key(kr, &fx->a));
    assert_true(has_key(kr, &fx->b));
    bu_keyring_close(kr);
}

struct finder {
    struct bu_keyring *kr;
    const struct testkey *key;
    int misses;
};

static void *
finder_run(void *arg)
{
    struct finder *fd = arg;
    struct bu_paseto_key key;
    for (int k = 0; k < 2000; k++) {
        if (bu_keyring_find(fd->kr, fd->key->pid, &key) != BU_OK ||
            memcmp(key.bytes, fd->key->pub.bytes, 32) != 0) {
            fd->misses++;
        }
    }
    return NULL;
}

static void
test_reload_concurrent_find(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;
    pthread_t th[2];
    struct finder fd[2];

    // a stays in every version of the file, so no lookup of a may miss
    // while the set underneath is replaced.
    const char *v1[] = { fx->a.pub_str, NULL };
    const char *v2[] = { fx->b.pub_str, fx->a.pub_str, NULL };
    write_lines(fx->path, v1);
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);
    for (int k = 0; k < 2; k++) {
        fd[k] = (struct finder) { .kr = kr, .key = &fx->a };
        assert_int_equal(pthread_create(&th[k], NULL, finder_run, &fd[k]), 0);
    }
    for (int k = 0; k < 50; k++) {
        write_lines(fx->path, k % 2 == 0 ? v2 : v1);
        assert_rv(bu_keyring_reload(kr), BU_OK);
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pthread_join(th[k], NULL), 0);
        assert_int_equal(fd[k].misses, 0);
    }
    bu_keyring_close(kr);
}

static void
test_alloc_failures(void **state)
{
    struct fixture *fx = *state;
    struct bu_keyring *kr = NULL;
    int rv;

    const char *lines[] = { fx->a.pub_str, fx->b.pub_str, NULL };
    write_lines(fx->path, lines);
    // Every allocation of open fails in turn (getline's buffer is libc's
    // and is not counted).
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        rv = bu_keyring_open(&kr, fx->path);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
        assert_null(kr);
    }
    assert_int_equal(bu_keyring_count(kr), 2);
    // A reload that runs out of memory keeps the old set.
    const char *one[] = { fx->a.pub_str, NULL };
    write_lines(fx->path, one);
    bu_alloc_fail_after(0);
    rv = bu_keyring_reload(kr);
    bu_alloc_fail_after(-1);
    assert_rv(rv, BU_ENOMEM);
    assert_int_equal(bu_keyring_count(kr), 2);
    assert_rv(bu_keyring_reload(kr), BU_OK);
    assert_int_equal(bu_keyring_count(kr), 1);
    bu_keyring_close(kr);
}

// The revocation list: comments, blanks and spaces; a missing file is an
// empty list; a bad line (a whole token, an over-long id) is refused with
// the old list kept; every allocation failing in turn leaves it whole.
static void
test_revocation_list(void **state)
{
    struct fixture    *fx = *state;
    struct bu_keyring *kr = NULL;
    char               rpath[128];
    char               longid[200];

    const char *lines[] = { fx->a.pub_str, NULL };
    write_lines(fx->path, lines);
    snprintf(rpath, sizeof(rpath), "%s/revoked", fx->dir);
    assert_rv(bu_keyring_open(&kr, fx->path), BU_OK);
    assert_false(bu_keyring_is_revoked(kr, "j-1"));

    unlink(rpath);
    uint64_t gen = bu_keyring_generation(kr);
    assert_rv(bu_keyring_revocations(kr, rpath), BU_OK);
    assert_int_equal(bu_keyring_revoked_count(kr), 0);
    assert_true(bu_keyring_generation(kr) > gen);

    write_file(rpath, "# leaked 2026-11-27\n\tj-2 \n\nj-1\nj-2\nzz\n");
    assert_rv(bu_keyring_reload(kr), BU_OK);
    assert_int_equal(bu_keyring_revoked_count(kr), 4);
    assert_true(bu_keyring_is_revoked(kr, "j-1"));
    assert_true(bu_keyring_is_revoked(kr, "j-2"));
    assert_true(bu_keyring_is_revoked(kr, "zz"));
    assert_false(bu_keyring_is_revoked(kr, "j-3"));
    assert_false(bu_keyring_is_revoked(kr, "# leaked 2026-11-27"));
    assert_false(bu_keyring_is_revoked(kr, NULL));

    // A token pasted instead of its jti, and an id no token can carry.
    write_file(rpath, "j-3\nv4.public.eyJ0ZW5hbnQiOiJhY21lIn0\n");
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    memset(longid, 'x', sizeof(longid) - 1);
    longid[BU_KEYRING_JTI_MAX + 1] = '\0';
    const char *toolong[] = { "j-3", longid, NULL };
    write_lines(rpath, toolong);
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    assert_true(bu_keyring_is_revoked(kr, "j-1"));
    assert_false(bu_keyring_is_revoked(kr, "j-3"));
    longid[BU_KEYRING_JTI_MAX] = '\0';
    write_lines(rpath, toolong);
    assert_rv(bu_keyring_reload(kr), BU_OK);
    assert_true(bu_keyring_is_revoked(kr, longid));
    assert_false(bu_keyring_is_revoked(kr, "j-1"));

    // Lines that could never match a token's jti are refused too: an id
    // with a comment after it, a NUL byte, a control character.
    write_file(rpath, "j-4 # leaked\n");
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    FILE *fp = fopen(rpath, "w");
    assert_non_null(fp);
    fwrite("j-4\0x\n", 1, 6, fp);
    fclose(fp);
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    write_file(rpath, "j\x01-4\n");
    assert_rv(bu_keyring_reload(kr), BU_EPARSE);
    assert_true(bu_keyring_is_revoked(kr, longid));
    assert_false(bu_keyring_is_revoked(kr, "j-4"));

    // A list that is gone is refused (the old one stays); an empty one
    // revokes nothing.
    unlink(rpath);
    assert_rv(bu_keyring_reload(kr), BU_ENOENT);
    assert_true(bu_keyring_is_revoked(kr, longid));
    write_file(rpath, "");
    assert_rv(bu_keyring_reload(kr), BU_OK);
    assert_int_equal(bu_keyring_revoked_count(kr), 0);
    write_file(rpath, "j-3\n");
    assert_rv(bu_keyring_reload(kr), BU_OK);

    // Out of memory at any step of a reload: the old list stays.
    write_file(rpath, "a\nb\nc\n");
    for (long n = 0;; n++) {
        bu_alloc_fail_after(n);
        int rv = bu_keyring_reload(kr);
        bu_alloc_fail_after(-1);
        if (rv == BU_OK) {
            break;
        }
        assert_rv(rv, BU_ENOMEM);
        assert_int_equal(bu_keyring_revoked_count(kr), 1);
        assert_true(bu_keyring_is_revoked(kr, "j-3"));
    }
    assert_int_equal(bu_keyring_revoked_count(kr), 3);
    bu_keyring_close(kr);
    unlink(rpath);
}

// The jti rule the list, the server and rpc-cli share.
static void
test_jti_fault(void **state)
{
    (void) state;
    char longest[BU_KEYRING_JTI_MAX + 2];
    memset(longest, 'x', sizeof(longest) - 1);
    longest[BU_KEYRING_JTI_MAX] = '\0';
    assert_null(bu_keyring_jti_fault("j-1"));
    assert_null(bu_keyring_jti_fault("9d452b87f884d32ef1f0014f503aef54"));
    assert_null(bu_keyring_jti_fault("caf\xc3\xa9"));
    assert_null(bu_keyring_jti_fault(longest));
    longest[BU_KEYRING_JTI_MAX] = 'x';
    longest[BU_KEYRING_JTI_MAX + 1] = '\0';
    const char *bad[] = { "", "#j", "a b", "a\tb", " a", "a\x7f", "a\n",
        "v4.public.x", "k4.pid.x", longest };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bu_keyring_jti_fault(bad[i]) == NULL) {
            fail_msg("accepted jti \"%s\"", bad[i]);
        }
    }
}

int
main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comments_and_blank_lines),
        cmocka_unit_test(test_find_by_pid),
        cmocka_unit_test(test_bad_line),
        cmocka_unit_test(test_secret_key_refused),
        cmocka_unit_test(test_reload_keeps_old_on_error),
        cmocka_unit_test(test_reload_new_key),
        cmocka_unit_test(test_reload_concurrent_find),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_revocation_list),
        cmocka_unit_test(test_jti_fault),
    };
    return cmocka_run_group_tests(tests, keyring_setup, keyring_teardown);
}
