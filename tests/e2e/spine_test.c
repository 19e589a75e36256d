// SPDX-License-Identifier: MIT
/*
 * End to end through the real daemon and the C client: submitted records
 * land in the tenant's master_contact, GetJob reports them, and the
 * authentication and authorisation answers are the contract's (401, 403
 * with ResponseCode 10, 404 for unknown and foreign jobs).
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALLP (BU_PERM_READ | BU_PERM_MANAGE)

static const char *const cols3[] = { "contact_key", "email", "name" };

// submit_ok submits b and returns the job id (caller frees).
static char *
submit_ok(bulkupsert_client *c, struct req_builder *b)
{
    struct bulkupsert_status st = { 0 };
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    int code = bulkupsert_submit(c, &b->req, &resp, &st);
    if (code != BULKUPSERT_OK) {
        fail_msg("submit: %s (%u): %s", bulkupsert_code_name(code),
            st.http_status, st.message);
    }
    assert_int_equal(st.http_status, 202);
    assert_non_null(resp->job_id);
    assert_int_equal(strlen(resp->job_id), 36);
    char *id = strdup(resp->job_id);
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(resp, NULL);
    bulkupsert_status_clear(&st);
    return id;
}

// submit_fail submits b expecting an error; returns the status (clear it).
static struct bulkupsert_status
submit_fail(bulkupsert_client *c, struct req_builder *b)
{
    struct bulkupsert_status st = { 0 };
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    int code = bulkupsert_submit(c, &b->req, &resp, &st);
    assert_int_not_equal(code, BULKUPSERT_OK);
    assert_null(resp);
    assert_non_null(st.message);
    return st;
}

static void
test_submit_lands_and_getjob_reports(void **state)
{
    (void) state;
    struct harness h;
    harness_start(&h, NULL);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);

    struct req_builder b;
    req_init(&b, cols3, 3);
    char key[32], mail[64];
    for (int i = 0; i < 250; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        snprintf(mail, sizeof(mail), "User%d@Example.com", i);
        const char *row[] = { key, mail, "Ada" };
        req_row(&b, row);
    }
    char *id = submit_ok(c, &b);
    Bulkupsert__V1__Job *job = harness_wait_job(c, id);
    assert_int_equal(job->state, BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED);
    assert_string_equal(job->job_id, id);
    assert_int_equal(job->counts->total, 250);
    assert_int_equal(job->counts->inserted, 250);
    assert_int_equal(job->counts->failed, 0);
    assert_true(job->accepted_at_ms > 0);
    assert_true(job->finished_at_ms >= job->accepted_at_ms);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    assert_int_equal(harness_count(&h, "acme",
                         "SELECT count(*) FROM master_contact"), 250);
    char buf[128];
    assert_int_equal(harness_text(&h, "acme",
                         "SELECT email FROM master_contact"
                         " WHERE contact_key = 'k0007'", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "user7@example.com"); // stored lowercased
    // Defaults of columns the request did not carry.
    assert_int_equal(harness_text(&h, "acme",
                         "SELECT contact_status FROM master_contact"
                         " WHERE contact_key = 'k0007'", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "A");
    assert_int_equal(harness_count(&h, "acme",
                         "SELECT email_permission FROM master_contact"
                         " WHERE contact_key = 'k0007'"), 1);

    // The same records again change nothing; changed ones are updated.
    free(id);
    id = submit_ok(c, &b);
    job = harness_wait_job(c, id);
    assert_int_equal(job->counts->unchanged, 250);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    req_fini(&b);

    req_init(&b, cols3, 3);
    const char *r1[] = { "k0001", "new@example.com", "Bea" };
    const char *r2[] = { "k0002", NULL, "Cid" }; // email not provided
    const char *r3[] = { "k0001", "newer@example.com", "Bea" }; // wins
    const char *r4[] = { "fresh", "f@example.com", "Dee" };
    req_row(&b, r1);
    req_row(&b, r2);
    req_row(&b, r3);
    req_row(&b, r4);
    free(id);
    id = submit_ok(c, &b);
    job = harness_wait_job(c, id);
    assert_int_equal(job->counts->total, 4);
    assert_int_equal(job->counts->superseded, 1);
    assert_int_equal(job->counts->updated, 2);
    assert_int_equal(job->counts->inserted, 1);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    assert_int_equal(harness_text(&h, "acme",
                         "SELECT email || '/' || name FROM master_contact"
                         " WHERE contact_key = 'k0001'", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "newer@example.com/Bea");
    assert_int_equal(harness_text(&h, "acme",
                         "SELECT email || '/' || name FROM master_contact"
                         " WHERE contact_key = 'k0002'", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "user2@example.com/Cid"); // email kept

    // Per-record results, paged.
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = id;
    gr.has_page_size = 1;
    gr.page_size = 3;
    struct bulkupsert_status st = { 0 };
    assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st), 0);
    bulkupsert_status_clear(&st);
    assert_int_equal(job->n_records, 3);
    assert_int_equal(job->records[0]->outcome,
        BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_SUPERSEDED);
    assert_int_equal(job->records[0]->superseded_by, 2);
    assert_string_equal(job->records[0]->contact_key, "k0001");
    assert_int_equal(job->records[1]->outcome,
        BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_UPDATED);
    assert_non_null(job->next_page_token);
    gr.page_token = job->next_page_token;
    Bulkupsert__V1__Job *job2 = NULL;
    assert_int_equal(bulkupsert_get_job(c, &gr, &job2, &st), 0);
    bulkupsert_status_clear(&st);
    assert_int_equal(job2->n_records, 1);
    assert_int_equal(job2->records[0]->index, 3);
    assert_int_equal(job2->records[0]->outcome,
        BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_INSERTED);
    assert_null(job2->next_page_token);
    bulkupsert__v1__job__free_unpacked(job2, NULL);
    bulkupsert__v1__job__free_unpacked(job, NULL);

    req_fini(&b);
    free(id);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_auth_401_403_404(void **state)
{
    (void) state;
    struct harness h;
    harness_start(&h, NULL);
    struct req_builder b;
    req_init(&b, cols3, 3);
    const char *row[] = { "x1", "x@example.com", "X" };
    req_row(&b, row);

    // 401: no token, garbage, expired.
    const char *bad[] = { NULL, "v4.public.garbage", "not-a-token" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bulkupsert_client *c = harness_client(&h, bad[i]);
        struct bulkupsert_status st = submit_fail(c, &b);
        assert_int_equal(st.code, BULKUPSERT_UNAUTHENTICATED);
        assert_int_equal(st.http_status, 401);
        bulkupsert_status_clear(&st);
        bulkupsert_client_close(c);
    }
    char *expired = harness_token(&h, "acme", ALLP, -60);
    bulkupsert_client *c = harness_client(&h, expired);
    struct bulkupsert_status st = submit_fail(c, &b);
    assert_int_equal(st.http_status, 401);
    assert_non_null(strstr(st.message, "expired"));
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);
    free(expired);

    // A token signed by a key the keyring does not hold: 401.
    struct harness other;
    memcpy(&other, &h, sizeof(other));
    snprintf(other.secret, sizeof(other.secret), "%s/other.key", h.dir);
    {
        struct bu_paseto_key sk, pk;
        char *s = NULL;
        assert_int_equal(bu_paseto_keypair(&sk, &pk), 0);
        assert_int_equal(bu_paserk_format(&sk, &s), 0);
        FILE *f = fopen(other.secret, "w");
        fprintf(f, "%s\n", s);
        fclose(f);
        free(s);
    }
    char *foreign = harness_token(&other, "acme", ALLP, 3600);
    c = harness_client(&h, foreign);
    st = submit_fail(c, &b);
    assert_int_equal(st.http_status, 401);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);
    free(foreign);

    // 403: read-only token submits (Forbidden, ResponseCode 10).
    char *ro = harness_token(&h, "acme", BU_PERM_READ, 3600);
    c = harness_client(&h, ro);
    st = submit_fail(c, &b);
    assert_int_equal(st.code, BULKUPSERT_PERMISSION_DENIED);
    assert_int_equal(st.http_status, 403);
    assert_int_equal(st.response_code, 10);
    assert_non_null(strstr(st.message, "DataSpace.Manage"));
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);

    // A manage-only token may submit but not read jobs.
    char *wo = harness_token(&h, "acme", BU_PERM_MANAGE, 3600);
    c = harness_client(&h, wo);
    char *id = submit_ok(c, &b);
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = id;
    Bulkupsert__V1__Job *job = NULL;
    assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st),
        BULKUPSERT_PERMISSION_DENIED);
    assert_int_equal(st.response_code, 10);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);

    // The owner reads it; another tenant gets 404, as for an unknown id.
    c = harness_client(&h, ro);
    job = harness_wait_job(c, id);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    gr.job_id = "01234567-89ab-7def-8123-456789abcdef";
    assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st),
        BULKUPSERT_NOT_FOUND);
    assert_int_equal(st.http_status, 404);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);
    char *other_tenant = harness_token(&h, "globex", ALLP, 3600);
    c = harness_client(&h, other_tenant);
    gr.job_id = id;
    assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st),
        BULKUPSERT_NOT_FOUND);
    assert_int_equal(st.http_status, 404);
    assert_null(job);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(c);

    free(other_tenant);
    free(id);
    free(wo);
    free(ro);
    req_fini(&b);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_validation_400(void **state)
{
    (void) state;
    struct harness h;
    harness_start(&h, NULL);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);

    // Shape: contact_key missing from columns -> FieldError (1).
    const char *nokey[] = { "email", "name" };
    struct req_builder b;
    req_init(&b, nokey, 2);
    const char *r[] = { "a@example.com", "A" };
    req_row(&b, r);
    struct bulkupsert_status st = submit_fail(c, &b);
    assert_int_equal(st.code, BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(st.http_status, 400);
    assert_int_equal(st.response_code, 1);
    assert_true(st.nerrors >= 1);
    assert_string_equal(st.errors[0].column, "contact_key");
    bulkupsert_status_clear(&st);
    req_fini(&b);

    // Values: a bad email fails the whole request (ValidationFails, 11)...
    req_init(&b, cols3, 3);
    const char *ok[] = { "v1", "v1@example.com", "V" };
    const char *bad[] = { "v2", "not-an-email", "V" };
    req_row(&b, ok);
    req_row(&b, bad);
    st = submit_fail(c, &b);
    assert_int_equal(st.http_status, 400);
    assert_int_equal(st.response_code, 11);
    assert_int_equal(st.nerrors, 1);
    assert_int_equal(st.errors[0].record_index, 1);
    assert_string_equal(st.errors[0].contact_key, "v2");
    assert_string_equal(st.errors[0].column, "email");
    bulkupsert_status_clear(&st);
    assert_int_equal(harness_count(&h, "acme",
                         "SELECT count(*) FROM master_contact"), -1);

    // ...unless fail_on_error is false: the valid record is applied.
    b.req.has_fail_on_error = 1;
    b.req.fail_on_error = 0;
    char *id = submit_ok(c, &b);
    Bulkupsert__V1__Job *job = harness_wait_job(c, id);
    assert_int_equal(job->state,
        BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS);
    assert_int_equal(job->counts->inserted, 1);
    assert_int_equal(job->counts->failed, 1);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    assert_int_equal(harness_count(&h, "acme",
                         "SELECT count(*) FROM master_contact"), 1);

    free(id);
    req_fini(&b);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_idempotency_and_restart(void **state)
{
    (void) state;
    struct harness h;
    harness_start(&h, NULL);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    struct req_builder b;
    req_init(&b, cols3, 3);
    const char *row[] = { "i1", "i1@example.com", "I" };
    req_row(&b, row);
    b.req.idempotency_key = "batch-42";
    char *id1 = submit_ok(c, &b);
    char *id2 = submit_ok(c, &b);
    assert_string_equal(id1, id2);

    // A stopped and restarted server still knows the job and its results.
    Bulkupsert__V1__Job *job = harness_wait_job(c, id1);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    bulkupsert_client_close(c);
    assert_int_equal(harness_signal(&h, SIGTERM), 0);
    harness_restart(&h, NULL);
    c = harness_client(&h, tok);
    job = harness_wait_job(c, id1);
    assert_int_equal(job->counts->inserted, 1);
    bulkupsert__v1__job__free_unpacked(job, NULL);
    char *id3 = submit_ok(c, &b);
    assert_string_equal(id1, id3);

    free(id1);
    free(id2);
    free(id3);
    req_fini(&b);
    bulkupsert_client_close(c);
    free(tok);
    assert_int_equal(harness_stop(&h), 0);
}

static void
test_keyring_reload_on_sighup(void **state)
{
    (void) state;
    struct harness h;
    harness_start(&h, NULL);
    // A new key, not yet in the keyring.
    struct bu_paseto_key sk, pk;
    char *s = NULL, *p = NULL;
    assert_int_equal(bu_paseto_keypair(&sk, &pk), 0);
    assert_int_equal(bu_paserk_format(&sk, &s), 0);
    assert_int_equal(bu_paserk_format(&pk, &p), 0);
    char oldsecret[300];
    snprintf(oldsecret, sizeof(oldsecret), "%s", h.secret);
    snprintf(h.secret, sizeof(h.secret), "%s/new.key", h.dir);
    FILE *f = fopen(h.secret, "w");
    fprintf(f, "%s\n", s);
    fclose(f);
    char *tok = harness_token(&h, "acme", ALLP, 3600);
    bulkupsert_client *c = harness_client(&h, tok);
    Bulkupsert__V1__GetJobRequest gr = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    gr.job_id = "01234567-89ab-7def-8123-456789abcdef";
    Bulkupsert__V1__Job *job = NULL;
    struct bulkupsert_status st = { 0 };
    assert_int_equal(bulkupsert_get_job(c, &gr, &job, &st),
        BULKUPSERT_UNAUTHENTICATED);
    bulkupsert_status_clear(&st);

    f = fopen(h.keyring, "a");
    fprintf(f, "%s\n", p);
    fclose(f);
    harness_signal(&h, SIGHUP);
    int code = BULKUPSERT_UNAUTHENTICATED;
    for (int i = 0; i < 100 && code == BULKUPSERT_UNAUTHENTICATED; i++) {
        code = bulkupsert_get_job(c, &gr, &job, &st);
        bulkupsert_status_clear(&st);
        if (code == BULKUPSERT_UNAUTHENTICATED) {
            struct timespec ts = { 0, 50000000L };
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(code, BULKUPSERT_NOT_FOUND); // authenticated now
    free(s);
    free(p);
    free(tok);
    bulkupsert_client_close(c);
    assert_int_equal(harness_stop(&h), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_lands_and_getjob_reports),
        cmocka_unit_test(test_auth_401_403_404),
        cmocka_unit_test(test_validation_400),
        cmocka_unit_test(test_idempotency_and_restart),
        cmocka_unit_test(test_keyring_reload_on_sighup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
