// SPDX-License-Identifier: MIT
/*
 * How `rpc-cli job` renders jobs: the text block and JSON object of one job
 * (shared by get, cancel, list and watch), the per-record results of
 * `job get --records`, times in RFC 3339 (UTC, milliseconds), durations and
 * state names. The JSON is built with jansson; every builder returns NULL
 * when out of memory and leaks nothing.
 */
#include "job_int.h"

#include "base/clock.h"
#include "base/err.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int
job_time_format(int64_t ms, char *buf, size_t len)
{
    char secs[32];

    if (ms <= 0 || bu_rfc3339_format(ms / 1000, secs, sizeof(secs)) != BU_OK) {
        return -1;
    }
    // "...:SSZ" becomes "...:SS.mmmZ".
    size_t n = strlen(secs);
    snprintf(buf, len, "%.*s.%03dZ", (int) (n - 1), secs, (int) (ms % 1000));
    return 0;
}

static const char *
job_outcome_name(int outcome)
{
    static const char         prefix[] = "OUTCOME_";
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &bulkupsert__v1__record_outcome__descriptor, outcome);
    if (v == NULL) {
        return "UNKNOWN";
    }
    if (strncmp(v->name, prefix, sizeof(prefix) - 1) == 0) {
        return v->name + sizeof(prefix) - 1;
    }
    return v->name;
}

// The counts in field order, with their JSON and text names.
struct job_count {
    const char *name;
    uint32_t    value;
};

static size_t
job_counts(const Bulkupsert__V1__Job *job, struct job_count out[7])
{
    static const Bulkupsert__V1__JobCounts none
        = BULKUPSERT__V1__JOB_COUNTS__INIT;
    const Bulkupsert__V1__JobCounts *c
        = job->counts != NULL ? job->counts : &none;
    const struct job_count all[7] = {
        { "total", c->total },
        { "inserted", c->inserted },
        { "updated", c->updated },
        { "unchanged", c->unchanged },
        { "superseded", c->superseded },
        { "not_found", c->not_found },
        { "failed", c->failed },
    };
    memcpy(out, all, sizeof(all));
    return 7;
}

void
job_print_text(const Bulkupsert__V1__Job *job)
{
    const struct {
        const char *name;
        int64_t     ms;
    } times[3] = {
        { "accepted_at", job->accepted_at_ms },
        { "started_at", job->started_at_ms },
        { "finished_at", job->finished_at_ms },
    };
    struct job_count counts[7];
    char             buf[40];

    printf("job_id       %s\n", cli_text(job->job_id));
    const char *state = bulkupsert_job_state_name(job->state);
    const char *sgr = cli_state_sgr(state);
    printf("state        %s%s%s\n", sgr, state,
        sgr[0] != '\0' ? CLI_SGR_RESET : "");
    for (size_t i = 0; i < 3; i++) {
        int set = job_time_format(times[i].ms, buf, sizeof(buf)) == 0;
        printf("%-12s %s\n", times[i].name, set ? buf : "-");
    }
    printf("counts\n");
    size_t n = job_counts(job, counts);
    for (size_t i = 0; i < n; i++) {
        printf("  %-11s %" PRIu32 "\n", counts[i].name, counts[i].value);
    }
    if (job->error != NULL && job->error[0] != '\0') {
        printf("error        %s\n", cli_text(job->error));
    }
}

void
job_print_record_text(const Bulkupsert__V1__RecordResult *r)
{
    printf("record %" PRIu32, r->index);
    if (r->contact_key != NULL) {
        printf(" (key %s)", cli_text(r->contact_key));
    }
    const char *sgr = "";
    if (r->outcome == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_FAILED) {
        sgr = cli_sgr(CLI_SGR_RED);
    } else if (r->outcome
        == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_NOT_FOUND) {
        sgr = cli_sgr(CLI_SGR_YELLOW);
    }
    printf(": %s%s%s", sgr, job_outcome_name(r->outcome),
        sgr[0] != '\0' ? CLI_SGR_RESET : "");
    if (r->outcome == BULKUPSERT__V1__RECORD_OUTCOME__OUTCOME_SUPERSEDED
        && r->has_superseded_by) {
        printf(" by record %" PRIu32, r->superseded_by);
    }
    putchar('\n');
    for (size_t i = 0; i < r->n_errors; i++) {
        const Bulkupsert__V1__FieldError *fe = r->errors[i];
        if (fe->column != NULL) {
            printf("  column %s: %s\n", cli_text(fe->column),
                cli_text(fe->reason));
        } else {
            printf("  %s\n", cli_text(fe->reason));
        }
    }
    for (size_t i = 0; i < r->n_warnings; i++) {
        printf("  warning: %s\n", cli_text(r->warnings[i]));
    }
}

// Returns a JSON string, or JSON null for NULL.
static json_t *
job_json_string(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
job_json_time(int64_t ms)
{
    char buf[40];
    return job_time_format(ms, buf, sizeof(buf)) == 0 ? json_string(buf)
                                                      : json_null();
}

// Builds the job object. Returns NULL when out of memory. (jansson's
// json_object_set_new takes ownership of the value even when it fails, and
// the object functions accept NULL values by failing, so one check of the
// result at the end is enough.)
json_t *
job_json(const Bulkupsert__V1__Job *job)
{
    struct job_count counts[7];
    json_t          *obj = json_object();
    json_t          *jc = json_object();
    int              bad = obj == NULL || jc == NULL;

    size_t n = job_counts(job, counts);
    for (size_t i = 0; !bad && i < n; i++) {
        bad |= json_object_set_new(
                   jc, counts[i].name, json_integer(counts[i].value))
            != 0;
    }
    if (bad) {
        json_decref(jc);
        json_decref(obj);
        return NULL;
    }
    const char *error
        = job->error != NULL && job->error[0] != '\0' ? job->error : NULL;
    bad |= json_object_set_new(obj, "job_id", job_json_string(job->job_id));
    bad |= json_object_set_new(
        obj, "state", json_string(bulkupsert_job_state_name(job->state)));
    bad |= json_object_set_new(
        obj, "accepted_at", job_json_time(job->accepted_at_ms));
    bad |= json_object_set_new(
        obj, "started_at", job_json_time(job->started_at_ms));
    bad |= json_object_set_new(
        obj, "finished_at", job_json_time(job->finished_at_ms));
    bad |= json_object_set_new(obj, "counts", jc);
    bad |= json_object_set_new(obj, "error", job_json_string(error));
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

json_t *
job_json_record(const Bulkupsert__V1__RecordResult *r)
{
    json_t *obj = json_object();
    json_t *errors = json_array();
    json_t *warnings = json_array();
    int     bad = obj == NULL || errors == NULL || warnings == NULL;

    for (size_t i = 0; !bad && i < r->n_errors; i++) {
        const Bulkupsert__V1__FieldError *fe = r->errors[i];
        json_t                           *e = json_object();
        bad |= e == NULL;
        if (!bad) {
            bad |= json_object_set_new(
                e, "column", job_json_string(fe->column));
            bad |= json_object_set_new(
                e, "reason", job_json_string(fe->reason));
        }
        bad |= json_array_append_new(errors, e) != 0;
    }
    for (size_t i = 0; !bad && i < r->n_warnings; i++) {
        bad |= json_array_append_new(warnings, json_string(r->warnings[i]));
    }
    if (bad) {
        json_decref(warnings);
        json_decref(errors);
        json_decref(obj);
        return NULL;
    }
    bad |= json_object_set_new(obj, "index", json_integer(r->index));
    bad |= json_object_set_new(
        obj, "contact_key", job_json_string(r->contact_key));
    bad |= json_object_set_new(
        obj, "outcome", json_string(job_outcome_name(r->outcome)));
    if (r->has_superseded_by) {
        bad |= json_object_set_new(
            obj, "superseded_by", json_integer(r->superseded_by));
    }
    bad |= json_object_set_new(obj, "errors", errors);
    bad |= json_object_set_new(obj, "warnings", warnings);
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

void
job_duration_format(int64_t ms, char *buf, size_t len)
{
    if (ms < 0) {
        ms = 0;
    }
    int64_t s = ms / 1000;
    if (ms < 1000) {
        snprintf(buf, len, "%" PRId64 "ms", ms);
    } else if (s < 60) {
        // Tenths, truncated: 59.99 s must not print as "60.0s".
        snprintf(buf, len, "%" PRId64 ".%" PRId64 "s", s, ms % 1000 / 100);
    } else if (s < 3600) {
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(
            buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    } else {
        snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400,
            s % 86400 / 3600);
    }
}

int
job_state_final(int state)
{
    switch (state) {
    case BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED:
    case BULKUPSERT__V1__JOB_STATE__JOB_STATE_COMPLETED_WITH_ERRORS:
    case BULKUPSERT__V1__JOB_STATE__JOB_STATE_FAILED:
    case BULKUPSERT__V1__JOB_STATE__JOB_STATE_CANCELLED:
        return 1;
    default:
        return 0;
    }
}

int
job_state_parse(const char *s, size_t len)
{
    // The names come from the generated descriptor, so that a state added
    // to the proto is accepted without touching this file.
    const ProtobufCEnumDescriptor *d = &bulkupsert__v1__job_state__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        int         v = d->values[i].value;
        const char *name = bulkupsert_job_state_name(v);
        if (v == BULKUPSERT__V1__JOB_STATE__JOB_STATE_UNSPECIFIED
            || strlen(name) != len) {
            continue;
        }
        size_t k = 0;
        while (k < len
            && toupper((unsigned char) s[k]) == (unsigned char) name[k]) {
            k++;
        }
        if (k == len) {
            return v;
        }
    }
    return -1;
}
