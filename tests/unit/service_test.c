// SPDX-License-Identifier: MIT
//
// The service's answer codes: the HTTP status each gRPC code maps to
// (bu_service_http_status), so that every response code of the seed is
// pinned, including 500 for INTERNAL (answered with UnexpectedError 999;
// e2e_contract_test provokes it end to end with a corrupt tenant database).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bulkupsert/v1/bulkupsert.pb-c.h"
#include "rpc/service.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

// method checks that name is a method of the service and returns it.
static const char *
method(const char *name)
{
    assert_non_null(protobuf_c_service_descriptor_get_method_by_name(
        &bulkupsert__v1__bulk_upsert__descriptor, name));
    return name;
}

struct http_case {
    Bulkupsert__V1__Code code;
    const char *method; // NULL: no method resolved (envelope errors)
    unsigned http;
};

static const struct http_case http_cases[] = {
    // 202 only for an accepted submit; other calls answer 200.
    { BULKUPSERT__V1__CODE__OK, "SubmitBulkUpsert", 202 },
    { BULKUPSERT__V1__CODE__OK, "GetJob", 200 },
    { BULKUPSERT__V1__CODE__OK, "DescribeTable", 200 },
    { BULKUPSERT__V1__CODE__OK, "AddColumn", 200 },
    { BULKUPSERT__V1__CODE__OK, "SetImportEnabled", 200 },
    { BULKUPSERT__V1__CODE__OK, "CancelJob", 200 },
    { BULKUPSERT__V1__CODE__OK, NULL, 200 },
    // 400: FieldError 1 and ValidationFails 11.
    { BULKUPSERT__V1__CODE__INVALID_ARGUMENT, "SubmitBulkUpsert", 400 },
    { BULKUPSERT__V1__CODE__INVALID_ARGUMENT, NULL, 400 },
    { BULKUPSERT__V1__CODE__FAILED_PRECONDITION, "AddColumn", 400 },
    { BULKUPSERT__V1__CODE__UNAUTHENTICATED, "SubmitBulkUpsert", 401 },
    { BULKUPSERT__V1__CODE__PERMISSION_DENIED, "SubmitBulkUpsert", 403 },
    { BULKUPSERT__V1__CODE__NOT_FOUND, "GetJob", 404 },
    { BULKUPSERT__V1__CODE__RESOURCE_EXHAUSTED, "SubmitBulkUpsert", 429 },
    // 500 UnexpectedError (999).
    { BULKUPSERT__V1__CODE__INTERNAL, "SubmitBulkUpsert", 500 },
    { BULKUPSERT__V1__CODE__INTERNAL, NULL, 500 },
    { BULKUPSERT__V1__CODE__UNKNOWN, "GetJob", 500 },
    { BULKUPSERT__V1__CODE__DATA_LOSS, "GetJob", 500 },
    { BULKUPSERT__V1__CODE__UNIMPLEMENTED, NULL, 501 },
    { BULKUPSERT__V1__CODE__UNAVAILABLE, "SubmitBulkUpsert", 503 },
};

static void
test_http_status_of_each_code(void **state)
{
    (void) state;
    for (size_t i = 0; i < NELEM(http_cases); i++) {
        const struct http_case *hc = &http_cases[i];
        const char *m = hc->method != NULL ? method(hc->method) : NULL;
        unsigned got = bu_service_http_status((int) hc->code, m);
        if (got != hc->http) {
            fail_msg("code %d, method %s: HTTP %u, want %u", (int) hc->code,
                hc->method != NULL ? hc->method : "(none)", got, hc->http);
        }
    }
}

// A name conflict (AddColumn of a name that exists) is the caller's: 409,
// gRPC's HTTP mapping of ALREADY_EXISTS, not 500.
static void
test_already_exists_is_409(void **state)
{
    (void) state;
    assert_int_equal(bu_service_http_status(
                         BULKUPSERT__V1__CODE__ALREADY_EXISTS,
                         method("AddColumn")),
        409);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_status_of_each_code),
        cmocka_unit_test(test_already_exists_is_409),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
