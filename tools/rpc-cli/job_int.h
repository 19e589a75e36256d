// SPDX-License-Identifier: MIT
/*
 * What the files of `rpc-cli job` share: how a job is rendered (the text
 * block and the JSON object of `job get`, times, durations, the table row
 * of `job list`), state names, and the entry points of the subcommands
 * that live in their own files. Single-threaded, like the rest of rpc-cli.
 */
#ifndef BU_RPC_CLI_JOB_INT_H
#define BU_RPC_CLI_JOB_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cli.h"

// job_time_format writes ms (Unix milliseconds) as
// "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (at least 32 bytes). Returns 0, or
// -1 for an unset (<= 0) or unprintable time.
int job_time_format(int64_t ms, char *buf, size_t len);

// job_duration_format writes ms as a short duration into buf: "850ms",
// "12.3s", "4m05s", "2h03m" or "3d04h" (negative counts as 0).
void job_duration_format(int64_t ms, char *buf, size_t len);

// job_state_final tells whether state (a JobState) is one a job never
// leaves: COMPLETED, COMPLETED_WITH_ERRORS, FAILED or CANCELLED.
int job_state_final(int state);

// job_state_parse reads a state name, case-insensitively and without the
// JOB_STATE_ prefix ("queued", "Completed_With_Errors"), of len bytes at
// s. Returns the JobState, or -1 for anything else (UNSPECIFIED included).
int job_state_parse(const char *s, size_t len);

// job_print_text prints the job as `job get` does: a block of
// "name  value" lines, the state coloured through cli_state_sgr.
void job_print_text(const Bulkupsert__V1__Job *job);

// job_print_record_text prints one per-record result of `job get
// --records`: its index, key and outcome, then its errors and warnings.
void job_print_record_text(const Bulkupsert__V1__RecordResult *r);

// job_json builds the job's JSON object (the keys of `job get --json`).
// Returns a new reference (json_decref), or NULL when out of memory.
json_t *job_json(const Bulkupsert__V1__Job *job);

// job_json_record builds the JSON object of one per-record result (index,
// contact_key, outcome, superseded_by, errors, warnings). Returns a new
// reference, or NULL when out of memory.
json_t *job_json_record(const Bulkupsert__V1__RecordResult *r);

// job_list runs `rpc-cli job list` (argv[0] is "list"); job_watch runs
// `rpc-cli job watch`. Each returns an exit code.
int job_list(int argc, char *argv[], const struct cli_conn *conn);
int job_watch(int argc, char *argv[], const struct cli_conn *conn);

#endif // BU_RPC_CLI_JOB_INT_H
