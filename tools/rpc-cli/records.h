// SPDX-License-Identifier: MIT
/*
 * Reads contact records from a CSV file (RFC 4180, header row first) or an
 * NDJSON file (one JSON object a line) and cuts them into
 * SubmitBulkUpsertRequest messages of at most N records, streaming: memory
 * holds one chunk, not the file. Each record remembers the input line it
 * came from, so that server errors about record I can name the line.
 *
 * Limits: a record over RECORDS_MAX_RECORD bytes or a value over
 * RECORDS_MAX_VALUE bytes is bad input (BU_EPARSE). Memory holds one block
 * of input, one record and the rows of one chunk, whatever the file.
 *
 * Value mapping. CSV: every field is a string_value; an empty unquoted
 * field is "not provided" (a Value with nothing set), while a quoted empty
 * field ("") is the empty string. NDJSON: the columns of a chunk are the
 * union of its objects' keys in first-seen order; strings become
 * string_value, true/false bool_value, null null_value, numbers the
 * string_value of their decimal text; a missing key is "not provided".
 *
 * One reader belongs to one thread.
 */
#ifndef BU_RPC_CLI_RECORDS_H
#define BU_RPC_CLI_RECORDS_H

#include <stddef.h>

#include "bulkupsert/v1/bulkupsert.pb-c.h"

enum records_format {
    RECORDS_CSV,
    RECORDS_NDJSON,
};

// Most records one request may carry (the server's limit).
#define RECORDS_MAX_PER_REQUEST 1000

// The largest record the reader accepts, in bytes of input: a CSV record
// (all its lines) or an NDJSON line. Longer is bad input, most often an
// unclosed quote that would otherwise swallow the rest of the file.
#define RECORDS_MAX_RECORD (1024 * 1024)

// The longest value the reader accepts, in bytes. A column holds at most
// 4000 characters (16000 bytes of UTF-8), so a longer value could never be
// accepted; refusing it as bad input keeps requests far below the server's
// frame limit, which a resent request would otherwise hit again and again.
#define RECORDS_MAX_VALUE (64 * 1024)

// The largest request the reader hands out, in packed bytes. bulkupsertd
// drops frames over 40 MiB; a row holds at most 8000 characters, so 1000
// valid rows always fit, and a chunk past this bound holds rows the server
// would refuse anyway. Such a chunk is bad input naming its lines.
#define RECORDS_MAX_REQUEST_BYTES (40u * 1024u * 1024u - 64u * 1024u)

// One chunk of input: a request holding columns and records, and the input
// line of each record.
struct records_chunk {
    // Built from malloc'd parts; release the whole chunk with
    // records_chunk_free, which frees it with its __free_unpacked.
    Bulkupsert__V1__SubmitBulkUpsertRequest *request;
    long  *lines;    // lines[i]: line where record i starts (1-based)
    size_t nrecords; // == request->n_contact_datas
};

struct records;

// records_format_of_path picks the format from path's extension: ".ndjson"
// and ".jsonl" mean NDJSON, anything else (".csv", "-") CSV.
enum records_format records_format_of_path(const char *path);

// records_open opens path ("-" is standard input) for reading in format.
// Returns BU_OK with *recp (release with records_close), BU_EIO (the file
// cannot be opened, or is a directory; err holds "PATH: reason") or
// BU_ENOMEM.
int records_open(struct records **recp, const char *path,
    enum records_format format, char *err, size_t errlen);

// records_close closes the file (not standard input) and frees rec; NULL
// is ignored.
void records_close(struct records *rec);

// records_next reads up to max (1 to RECORDS_MAX_PER_REQUEST) further
// records. Returns BU_OK with a chunk in *chunkp, or with *chunkp = NULL at
// the end of the input; BU_EPARSE when the input is malformed (records_error
// says "FILE:LINE: what is wrong"; the reader must not be used again);
// BU_EIO on a read error; BU_ENOMEM. Blocks on reading the file.
int records_next(
    struct records *rec, size_t max, struct records_chunk **chunkp);

// records_offset returns how many bytes of the input the reader has
// consumed: the chunks handed out, plus the rows of a chunk being gathered.
long long records_offset(const struct records *rec);

// records_error returns the message of the last failure ("" if none). The
// text belongs to rec.
const char *records_error(const struct records *rec);

// records_chunk_free releases chunk and its request; NULL is ignored.
void records_chunk_free(struct records_chunk *chunk);

#endif // BU_RPC_CLI_RECORDS_H
