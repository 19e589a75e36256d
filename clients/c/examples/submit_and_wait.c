// SPDX-License-Identifier: MIT
/*
 * The smallest complete use of the C client: submit two contacts to the
 * server at BULKUPSERT_URL with the token in BULKUPSERT_TOKEN (and a call
 * timeout of BULKUPSERT_TIMEOUT_MS, when set), wait for the job to finish,
 * and print its counts. A busy server (429) or one that is not up yet is
 * retried a few times. Builds from the installed library:
 *
 *   cc submit_and_wait.c $(pkg-config --cflags --libs bulkupsert) \
 *      -lnng -lprotobuf-c -o submit_and_wait
 */
#define _POSIX_C_SOURCE 200809L
#include <bulkupsert.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int
main(void)
{
    const char        *url = getenv("BULKUPSERT_URL");
    const char        *token = getenv("BULKUPSERT_TOKEN");
    bulkupsert_client *client = NULL;
    if (bulkupsert_client_open(
            &client, url != NULL ? url : BULKUPSERT_DEFAULT_URL, token)
        != BULKUPSERT_OK) {
        fprintf(stderr, "bad url\n");
        return 2;
    }
    const char *timeout = getenv("BULKUPSERT_TIMEOUT_MS");
    if (timeout != NULL && atoi(timeout) > 0) {
        bulkupsert_client_set_timeout(client, atoi(timeout));
    }
    // Retry what is certainly safe to send again (429, 503, a request that
    // found no connection), up to 3 more times, honouring retry_after_ms.
    struct bulkupsert_retry retry = { .max_retries = 3 };
    bulkupsert_client_set_retry(client, &retry);

    // Two records of (contact_key, email); Values are aligned with columns.
    char *columns[] = { "contact_key", "email" };
    char *cells[2][2]
        = { { "c-1", "ada@example.com" }, { "c-2", "bea@example.com" } };
    Bulkupsert__V1__Value        values[2][2];
    Bulkupsert__V1__Value       *pvalues[2][2];
    Bulkupsert__V1__ContactData  records[2];
    Bulkupsert__V1__ContactData *precords[2];
    for (int r = 0; r < 2; r++) {
        bulkupsert__v1__contact_data__init(&records[r]);
        for (int c = 0; c < 2; c++) {
            bulkupsert__v1__value__init(&values[r][c]);
            values[r][c].kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
            values[r][c].string_value = cells[r][c];
            pvalues[r][c] = &values[r][c];
        }
        records[r].n_values = 2;
        records[r].values = pvalues[r];
        precords[r] = &records[r];
    }
    Bulkupsert__V1__SubmitBulkUpsertRequest req
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_REQUEST__INIT;
    req.n_columns = 2;
    req.columns = columns;
    req.n_contact_datas = 2;
    req.contact_datas = precords;

    struct bulkupsert_status                  st = { 0 };
    Bulkupsert__V1__SubmitBulkUpsertResponse *resp = NULL;
    if (bulkupsert_submit(client, &req, &resp, &st) != BULKUPSERT_OK) {
        fprintf(stderr, "submit: %s (http %u, %u attempts): %s\n",
            bulkupsert_code_name(st.code), st.http_status, st.attempts,
            st.message);
        bulkupsert_status_clear(&st);
        bulkupsert_client_close(client);
        return 1;
    }
    printf("job %s accepted\n", resp->job_id);
    bulkupsert_status_clear(&st);

    Bulkupsert__V1__GetJobRequest get = BULKUPSERT__V1__GET_JOB_REQUEST__INIT;
    get.job_id = resp->job_id;
    Bulkupsert__V1__Job *job = NULL;
    int                  rv = 0;
    for (int i = 0; i < 600; i++) {
        if (bulkupsert_get_job(client, &get, &job, &st) != BULKUPSERT_OK) {
            fprintf(stderr, "get job: %s\n", st.message);
            rv = 1;
            break;
        }
        if (job->state >= BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED) {
            printf("%s: %u inserted, %u updated, %u unchanged, %u failed\n",
                bulkupsert_job_state_name(job->state), job->counts->inserted,
                job->counts->updated, job->counts->unchanged,
                job->counts->failed);
            break;
        }
        bulkupsert__v1__job__free_unpacked(job, NULL);
        job = NULL;
        bulkupsert_status_clear(&st);
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (job != NULL) {
        bulkupsert__v1__job__free_unpacked(job, NULL);
    }
    bulkupsert_status_clear(&st);
    bulkupsert__v1__submit_bulk_upsert_response__free_unpacked(resp, NULL);
    bulkupsert_client_close(client);
    return rv;
}
