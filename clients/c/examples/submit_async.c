// SPDX-License-Identifier: MIT
/*
 * The asynchronous C client, as a program with its own event loop would
 * use it: eight submits go out at once from one thread, each done callback
 * (on an nng thread) only records its outcome and wakes the loop, and the
 * loop prints the results as they come. Server and token as in
 * submit_and_wait.c (BULKUPSERT_URL, BULKUPSERT_TOKEN,
 * BULKUPSERT_TIMEOUT_MS). Builds from the installed library:
 *
 *   cc submit_async.c $(pkg-config --cflags --libs bulkupsert) \
 *      -lnng -lprotobuf-c -lpthread -o submit_async
 */
#define _POSIX_C_SOURCE 200809L
#include <bulkupsert.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NSUBMITS 8

// The loop's inbox: completed calls, under mtx.
static pthread_mutex_t  mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   cv = PTHREAD_COND_INITIALIZER;
static bulkupsert_call *done_calls[NSUBMITS];
static int              ndone;

// Runs on an nng thread: must not block, so it only hands the call over.
static void
on_done(bulkupsert_call *call, void *arg)
{
    (void) arg;
    pthread_mutex_lock(&mtx);
    done_calls[ndone++] = call;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mtx);
}

int
main(void)
{
    const char        *url = getenv("BULKUPSERT_URL");
    const char        *timeout = getenv("BULKUPSERT_TIMEOUT_MS");
    bulkupsert_client *client = NULL;
    if (bulkupsert_client_open(&client,
            url != NULL ? url : BULKUPSERT_DEFAULT_URL,
            getenv("BULKUPSERT_TOKEN"))
        != BULKUPSERT_OK) {
        fprintf(stderr, "bad url\n");
        return 2;
    }
    if (timeout != NULL && atoi(timeout) > 0) {
        bulkupsert_client_set_timeout(client, atoi(timeout));
    }
    struct bulkupsert_retry retry = { .max_retries = 5 };
    bulkupsert_client_set_retry(client, &retry);

    // One record per submit: contact_key "async-N". The request is packed
    // when the call starts, so these may be reused at once.
    char                        *columns[] = { "contact_key" };
    char                         key[32];
    Bulkupsert__V1__Value        value = BULKUPSERT__V1__VALUE__INIT;
    Bulkupsert__V1__Value       *pvalue = &value;
    Bulkupsert__V1__ContactData  record = BULKUPSERT__V1__CONTACT_DATA__INIT;
    Bulkupsert__V1__ContactData *precord = &record;
    value.kind_case = BULKUPSERT__V1__VALUE__KIND_STRING_VALUE;
    value.string_value = key;
    record.n_values = 1;
    record.values = &pvalue;
    Bulkupsert__V1__SubmitBulkUpsertRequest req
        = BULKUPSERT__V1__SUBMIT_BULK_UPSERT_REQUEST__INIT;
    req.n_columns = 1;
    req.columns = columns;
    req.n_contact_datas = 1;
    req.contact_datas = &precord;

    int started = 0;
    for (int i = 0; i < NSUBMITS; i++) {
        bulkupsert_call *call;
        snprintf(key, sizeof(key), "async-%d", i);
        if (bulkupsert_submit_async(client, &req, on_done, NULL, &call)
            == BULKUPSERT_OK) {
            started++;
        }
    }

    // The event loop: wait for completions, handle each on this thread.
    int failed = 0;
    for (int handled = 0; handled < started; handled++) {
        pthread_mutex_lock(&mtx);
        while (ndone <= handled) {
            pthread_cond_wait(&cv, &mtx);
        }
        bulkupsert_call *call = done_calls[handled];
        pthread_mutex_unlock(&mtx);

        ProtobufCMessage        *reply = NULL;
        struct bulkupsert_status st;
        if (bulkupsert_call_result(call, &reply, &st) == BULKUPSERT_OK) {
            printf("job %s accepted (%u attempts)\n",
                ((Bulkupsert__V1__SubmitBulkUpsertResponse *) reply)->job_id,
                st.attempts);
            protobuf_c_message_free_unpacked(reply, NULL);
        } else {
            fprintf(stderr, "submit: %s: %s\n", bulkupsert_code_name(st.code),
                st.message);
            failed = 1;
        }
        bulkupsert_status_clear(&st);
        bulkupsert_call_free(call);
    }
    bulkupsert_client_close(client);
    return failed;
}
