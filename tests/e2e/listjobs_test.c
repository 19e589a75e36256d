// SPDX-License-Identifier: MIT
/*
 * ListJobs through the real daemon: the caller's tenant's jobs only, newest
 * first, paged without gaps or repeats, filtered by state and by acceptance
 * time, and every bad argument answered 400 with the field at fault.
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/token.h"
#include "harness.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NJOBS 7

static const char *const cols2[] = { "contact_key", "email" };

static struct harness     h;
static bulkupsert_client *acme;
static char              *ids[NJOBS]; // in submission order
static int64_t            accepted[NJOBS];
static int                states[NJOBS];

// submit_job submits one small job; a bad email when with_error.
static char *
submit_job(bulkupsert_client *c, int n, bool with_error)
{
    struct req_builder b;
    req_init(&b, cols2, 2);
    char key[32];
    snprintf(key, sizeof(key), "k%d", n);
    const char *row[] = { key, with_error ? "not-an-email" : "a@b.example" };
    req_row(&b, row);
    b.req.has_fail_on_error = 1;
    b.req.fail_on_error = 0;
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    struct bulkupsert_status                  st = { 0 };
    int code = bulkupsert_submit(c, &b.req, &resp, &st);
    if (code != BULKUPSERT_OK) {
        fail_msg("submit: %s", st.message);
    }
    char *id = strdup(resp->job_id);
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(resp, NULL);
    bulkupsert_status_clear(&st);
    req_fini(&b);
    return id;
}

static int
setup(void **state)
{
    (void) state;
    harness_start(&h, NULL);
    char *tok = harness_token(&h, "acme", BU_PERM_READ | BU_PERM_MANAGE, 600);
    char *other_tok
        = harness_token(&h, "other", BU_PERM_READ | BU_PERM_MANAGE, 600);
    acme = harness_client(&h, tok);
    bulkupsert_client *other = harness_client(&h, other_tok);
    for (int i = 0; i < NJOBS; i++) {
        ids[i] = submit_job(acme, i, i % 3 == 1);
        Bulkupsert__V1__Job *job = harness_wait_job(acme, ids[i]);
        accepted[i] = job->accepted_at_ms;
        states[i] = job->state;
        bulkupsert__v1__job__free_unpacked(job, NULL);
        if (i < 2) {
            free(submit_job(other, i, false));
        }
    }
    bulkupsert_client_close(other);
    free(other_tok);
    free(tok);
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    bulkupsert_client_close(acme);
    for (int i = 0; i < NJOBS; i++) {
        free(ids[i]);
    }
    assert_int_equal(harness_stop(&h), 0);
    return 0;
}

// list calls ListJobs and expects OK.
static Bulkupsert__V1__ListJobsResponse *
list(const Bulkupsert__V1__ListJobsRequest *req)
{
    Bulkupsert__V1__ListJobsResponse *resp = NULL;
    struct bulkupsert_status          st = { 0 };
    int code = bulkupsert_list_jobs(acme, req, &resp, &st);
    if (code != BULKUPSERT_OK) {
        fail_msg("ListJobs: %s (%u): %s", bulkupsert_code_name(code),
            st.http_status, st.message);
    }
    assert_int_equal(st.http_status, 200);
    bulkupsert_status_clear(&st);
    return resp;
}

// list_fail calls ListJobs, expects a 400 naming field.
static void
list_fail(const Bulkupsert__V1__ListJobsRequest *req, const char *field)
{
    Bulkupsert__V1__ListJobsResponse *resp = NULL;
    struct bulkupsert_status          st = { 0 };
    int code = bulkupsert_list_jobs(acme, req, &resp, &st);
    assert_int_equal(code, BULKUPSERT_INVALID_ARGUMENT);
    assert_int_equal(st.http_status, 400);
    assert_null(resp);
    if (strstr(st.message, field) == NULL) {
        fail_msg("message \"%s\" does not name %s", st.message, field);
    }
    bulkupsert_status_clear(&st);
}

static void
test_lists_own_jobs_newest_first(void **state)
{
    (void) state;
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    Bulkupsert__V1__ListJobsResponse *resp = list(&req);
    assert_int_equal(resp->n_jobs, NJOBS);
    assert_null(resp->next_page_token);
    for (int i = 0; i < NJOBS; i++) {
        Bulkupsert__V1__Job *job = resp->jobs[i];
        assert_string_equal(job->job_id, ids[NJOBS - 1 - i]);
        assert_int_equal(job->state, states[NJOBS - 1 - i]);
        assert_int_equal(job->n_records, 0);
        assert_non_null(job->counts);
        assert_int_equal(job->counts->total, 1);
    }
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
}

static void
test_pages_cover_every_job_once(void **state)
{
    (void) state;
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    req.has_page_size = 1;
    req.page_size = 3;
    char token[64] = "";
    int  seen = 0;
    int  pages = 0;
    do {
        req.page_token = token[0] != '\0' ? token : NULL;
        Bulkupsert__V1__ListJobsResponse *resp = list(&req);
        pages++;
        assert_true(resp->n_jobs <= 3);
        for (size_t i = 0; i < resp->n_jobs; i++, seen++) {
            assert_string_equal(resp->jobs[i]->job_id, ids[NJOBS - 1 - seen]);
        }
        if (resp->next_page_token != NULL) {
            assert_int_equal(resp->n_jobs, 3);
            snprintf(token, sizeof(token), "%s", resp->next_page_token);
        } else {
            token[0] = '\0';
        }
        bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
    } while (token[0] != '\0' && pages < 10);
    assert_int_equal(seen, NJOBS);
    assert_int_equal(pages, 3);
}

static void
test_filters_by_state(void **state)
{
    (void) state;
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    Bulkupsert__V1__JobState want[]
        = { BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS };
    req.n_states = 1;
    req.states = want;
    Bulkupsert__V1__ListJobsResponse *resp = list(&req);
    size_t                            expect = 0;
    for (int i = 0; i < NJOBS; i++) {
        expect += states[i] == (int) want[0];
    }
    assert_true(expect > 0);
    assert_int_equal(resp->n_jobs, expect);
    for (size_t i = 0; i < resp->n_jobs; i++) {
        assert_int_equal(resp->jobs[i]->state, want[0]);
    }
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);

    // Two states: the union.
    Bulkupsert__V1__JobState both[]
        = { BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS,
              BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED };
    req.n_states = 2;
    req.states = both;
    resp = list(&req);
    assert_int_equal(resp->n_jobs, NJOBS);
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);

    Bulkupsert__V1__JobState queued[]
        = { BULKUPSERT__V1__JOB_STATE__JOB_STATE_QUEUED };
    req.n_states = 1;
    req.states = queued;
    resp = list(&req);
    assert_int_equal(resp->n_jobs, 0);
    assert_null(resp->next_page_token);
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
}

static void
test_filters_by_time(void **state)
{
    (void) state;
    int64_t cut = accepted[3];
    size_t  at_or_after = 0;
    for (int i = 0; i < NJOBS; i++) {
        at_or_after += accepted[i] >= cut;
    }
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    req.has_accepted_after_ms = 1;
    req.accepted_after_ms = cut;
    Bulkupsert__V1__ListJobsResponse *resp = list(&req);
    assert_int_equal(resp->n_jobs, at_or_after);
    for (size_t i = 0; i < resp->n_jobs; i++) {
        assert_true(resp->jobs[i]->accepted_at_ms >= cut);
    }
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);

    req.has_accepted_after_ms = 0;
    req.has_accepted_before_ms = 1;
    req.accepted_before_ms = cut;
    resp = list(&req);
    assert_int_equal(resp->n_jobs, NJOBS - at_or_after);
    for (size_t i = 0; i < resp->n_jobs; i++) {
        assert_true(resp->jobs[i]->accepted_at_ms < cut);
    }
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
}

static void
test_bad_arguments_name_the_field(void **state)
{
    (void) state;
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    req.has_page_size = 1;
    req.page_size = 1001;
    list_fail(&req, "page_size");

    static const char *const bad_tokens[]
        = { "abc", "0", "-5", "12x", "1e3", "99999999999999999999" };
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
        req = (Bulkupsert__V1__ListJobsRequest)
            BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
        req.page_token = (char *) bad_tokens[i];
        list_fail(&req, "page_token");
    }

    req = (Bulkupsert__V1__ListJobsRequest)
        BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    Bulkupsert__V1__JobState bad[] = { (Bulkupsert__V1__JobState) 99 };
    req.n_states = 1;
    req.states = bad;
    list_fail(&req, "states[0]");

    req = (Bulkupsert__V1__ListJobsRequest)
        BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    req.has_accepted_after_ms = 1;
    req.accepted_after_ms = -1;
    list_fail(&req, "accepted_after_ms");
}

static void
test_needs_a_token_and_read_permission_suffices(void **state)
{
    (void) state;
    Bulkupsert__V1__ListJobsRequest req
        = BULKUPSERT__V1__LIST_JOBS_REQUEST__INIT;
    Bulkupsert__V1__ListJobsResponse *resp = NULL;
    struct bulkupsert_status          st = { 0 };
    bulkupsert_client                *anon = harness_client(&h, NULL);
    assert_int_equal(bulkupsert_list_jobs(anon, &req, &resp, &st),
        BULKUPSERT_UNAUTHENTICATED);
    assert_int_equal(st.http_status, 401);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(anon);

    char              *ro_tok = harness_token(&h, "acme", BU_PERM_READ, 600);
    bulkupsert_client *ro = harness_client(&h, ro_tok);
    assert_int_equal(
        bulkupsert_list_jobs(ro, &req, &resp, &st), BULKUPSERT_OK);
    assert_int_equal(resp->n_jobs, NJOBS);
    bulkupsert__v1__list_jobs_response__free_unpacked(resp, NULL);
    bulkupsert_status_clear(&st);
    bulkupsert_client_close(ro);
    free(ro_tok);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_own_jobs_newest_first),
        cmocka_unit_test(test_pages_cover_every_job_once),
        cmocka_unit_test(test_filters_by_state),
        cmocka_unit_test(test_filters_by_time),
        cmocka_unit_test(test_bad_arguments_name_the_field),
        cmocka_unit_test(test_needs_a_token_and_read_permission_suffices),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
