"""Synchronous client of bulkupsert.v1.BulkUpsert over nng req/rep."""

import threading
import time
import uuid

from google.protobuf.message import DecodeError

from . import _nng
from .v1 import bulkupsert_pb2 as pb

MAX_REPLY_BYTES = 64 << 20
# The largest request sent (bulkupsertd's default frame limit, which the
# largest valid request fits); a larger one is refused before sending, as
# the server would drop the connection without an answer.
MAX_REQUEST_BYTES = 40 << 20
_SERVICE = "bulkupsert.v1.BulkUpsert/"
_FINAL_STATES = frozenset({
    pb.JOB_STATE_COMPLETED, pb.JOB_STATE_COMPLETED_WITH_ERRORS,
    pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED,
})


class _Unset:
    """The "not provided" cell: the column keeps its value on update."""

    def __repr__(self):
        return "bulkupsert.UNSET"


UNSET = _Unset()


class Error(Exception):
    """A refused or failed call.

    code is the gRPC-style status code (bulkupsert.v1.Code); http_status and
    response_code are the vendor API's (0 when none applies); field_errors is
    a list of (record_index or None, contact_key, column, reason);
    retry_after_ms is set with RESOURCE_EXHAUSTED (code 8). maybe_applied is
    True when the request reached the server and no answer could be read
    (a timeout, a lost connection, a reply that does not decode): the call
    may have taken effect, so resend only with the same idempotency_key.
    """

    def __init__(self, code, message, http_status=0, response_code=0,
                 field_errors=(), retry_after_ms=0, maybe_applied=False):
        self.code = code
        self.maybe_applied = maybe_applied
        self.http_status = http_status
        self.response_code = response_code
        self.message = message
        self.field_errors = list(field_errors)
        self.retry_after_ms = retry_after_ms
        super().__init__(message)

    @property
    def code_name(self):
        """The code's name, e.g. "INVALID_ARGUMENT"."""
        try:
            return pb.Code.Name(self.code)
        except ValueError:
            return str(self.code)

    def __str__(self):
        text = f"{self.code_name}"
        if self.http_status:
            text += f" ({self.http_status})"
        text += f": {self.message}"
        for index, key, column, reason in self.field_errors:
            where = f"record {index}" if index is not None else "request"
            text += f"\n  {where} {key or ''} {column or ''}: {reason}"
        return text

    @classmethod
    def from_status(cls, status):
        """Builds the exception from an RpcResponse status."""
        errors = [(e.record_index if e.HasField("record_index") else None,
                   e.contact_key, e.column, e.reason) for e in status.errors]
        return cls(status.code, status.message, status.http_status,
                   status.response_code, errors, status.retry_after_ms)


def _value(cell):
    """Converts one Python cell to a Value."""
    v = pb.Value()
    if cell is UNSET:
        pass
    elif cell is None:
        v.null_value = pb.NULL_VALUE
    elif isinstance(cell, bool):
        v.bool_value = cell
    elif isinstance(cell, str):
        v.string_value = cell
    else:
        raise TypeError(f"cell must be str, bool, None or UNSET, not "
                        f"{type(cell).__name__}")
    return v


class Client:
    """A connection to bulkupsertd at url (tcp://host:port or ipc://path).

    Every call waits at most `timeout` seconds in total; calls on one Client
    are serialized. Requests are never resent: after a timeout, a submit may
    or may not have been applied (retry it with the same idempotency_key).
    """

    def __init__(self, url, token, timeout=30.0):
        self.url = url
        self.token = token
        self.timeout = timeout
        self._lock = threading.Lock()
        try:
            self._sock = _nng.ReqSocket(url, MAX_REPLY_BYTES)
        except _nng.NngError as e:
            raise Error(pb.INVALID_ARGUMENT,
                        f"{url}: {e.strerror} (tcp://host:port or "
                        f"ipc:///path)") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the connection."""
        with self._lock:
            self._sock.close()

    def _call(self, method, request, reply_type, timeout=None):
        request_id = uuid.uuid4().hex[:16]
        env = pb.RpcRequest(method=_SERVICE + method, token=self.token,
                            payload=request.SerializeToString(),
                            request_id=request_id)
        data = env.SerializeToString()
        if len(data) > MAX_REQUEST_BYTES:
            raise Error(pb.INVALID_ARGUMENT,
                        f"{method}: the request is {len(data)} bytes; the "
                        f"server takes at most {MAX_REQUEST_BYTES} (nothing "
                        f"was sent)")
        seconds = self.timeout if timeout is None else timeout
        timeout_ms = min(_nng.DURATION_MAX_MS, max(1, int(seconds * 1000)))
        with self._lock:
            start = time.monotonic()
            try:
                self._sock.send(data, timeout_ms)
            except _nng.NngError as e:
                raise self._transport_error(e, False, timeout_ms,
                                            request_id) from None
            left = timeout_ms - int((time.monotonic() - start) * 1000)
            try:
                raw = self._sock.recv(max(1, left))
            except _nng.NngError as e:
                raise self._transport_error(e, True, timeout_ms,
                                            request_id) from None
        resp, reply = pb.RpcResponse(), reply_type()
        try:
            resp.ParseFromString(raw)
            if not resp.HasField("status") or not resp.status.HasField("code"):
                raise DecodeError("the reply has no status")
            if resp.status.code == pb.OK:
                reply.ParseFromString(resp.payload)
        except DecodeError as e:
            raise Error(pb.INTERNAL, f"{self.url}: malformed reply to "
                        f"{method}: {e} (the request may have been "
                        f"applied; request id {request_id})",
                        maybe_applied=True) from None
        if resp.status.code != pb.OK:
            raise Error.from_status(resp.status)
        return reply

    def _transport_error(self, err, sent, timeout_ms, request_id):
        # Where the request may have arrived, its id finds it in the
        # server's log (debug level).
        if err.errno == _nng.ETIMEDOUT and sent:
            return Error(pb.DEADLINE_EXCEEDED,
                         f"timed out after {timeout_ms} ms waiting for "
                         f"{self.url} (the request was sent and may have "
                         f"been applied; request id {request_id})",
                         maybe_applied=True)
        if err.errno == _nng.ETIMEDOUT:
            return Error(pb.UNAVAILABLE,
                         f"timed out after {timeout_ms} ms waiting for a "
                         f"connection to {self.url} (the request was not "
                         f"sent; is the server running?)")
        if sent:
            return Error(pb.UNAVAILABLE, f"{self.url}: {err.strerror} before "
                         f"the reply (the request may have been applied; "
                         f"request id {request_id})", maybe_applied=True)
        return Error(pb.UNAVAILABLE, f"{self.url}: {err.strerror} (the "
                     f"request was not sent)")

    def submit(self, columns, rows, fail_on_error=None,
               insert_if_not_exists=None, idempotency_key=None):
        """Queues an upsert of rows (lists aligned with columns) as a job.

        Cells are str, bool, None (NULL) or UNSET (not provided). Unset
        flags take the server's defaults (both true). Returns the job id.
        """
        req = pb.SubmitBulkUpsertRequest(columns=list(columns))
        for row in rows:
            req.contact_datas.add().values.extend(_value(c) for c in row)
        if fail_on_error is not None:
            req.fail_on_error = fail_on_error
        if insert_if_not_exists is not None:
            req.insert_if_not_exists = insert_if_not_exists
        if idempotency_key is not None:
            req.idempotency_key = idempotency_key
        return self._call("SubmitBulkUpsert", req,
                          pb.SubmitBulkUpsertResponse).job_id

    def get_job(self, job_id, records=0, errors_only=False, page_token=None):
        """Returns the Job, with up to `records` per-record results."""
        req = pb.GetJobRequest(job_id=job_id, page_size=records,
                               errors_only=errors_only)
        if page_token:
            req.page_token = page_token
        return self._call("GetJob", req, pb.Job)

    def wait(self, job_id, timeout=60.0, poll=0.05):
        """Polls the job until it is final and returns it.

        Raises Error DEADLINE_EXCEEDED when it is not final within timeout;
        no GetJob call outlasts what is left of it.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.001, deadline - time.monotonic())
            job = self._call("GetJob", pb.GetJobRequest(job_id=job_id),
                             pb.Job, timeout=min(self.timeout, left))
            if job.state in _FINAL_STATES:
                return job
            if time.monotonic() >= deadline:
                raise Error(pb.DEADLINE_EXCEEDED,
                            f"job {job_id} still {pb.JobState.Name(job.state)} "
                            f"after {timeout} s")
            time.sleep(poll)

    def cancel_job(self, job_id):
        """Cancels a QUEUED job and returns it (FAILED_PRECONDITION if not)."""
        return self._call("CancelJob", pb.CancelJobRequest(job_id=job_id),
                          pb.Job)

    def list_jobs(self, states=(), accepted_after_ms=None,
                  accepted_before_ms=None, page_size=0, page_token=None):
        """Returns one ListJobsResponse page: the tenant's jobs, newest
        first. states: JobState values (none: every state). Pass the
        reply's next_page_token back as page_token for the next page; it
        is empty on the last one."""
        req = pb.ListJobsRequest(page_size=page_size, states=list(states))
        if page_token:
            req.page_token = page_token
        if accepted_after_ms is not None:
            req.accepted_after_ms = accepted_after_ms
        if accepted_before_ms is not None:
            req.accepted_before_ms = accepted_before_ms
        return self._call("ListJobs", req, pb.ListJobsResponse)

    def iter_jobs(self, **filters):
        """Yields every job that list_jobs(**filters) pages through."""
        token = None
        while True:
            page = self.list_jobs(page_token=token, **filters)
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def describe_table(self):
        """Returns the DescribeTableResponse (columns, row widths)."""
        return self._call("DescribeTable", pb.DescribeTableRequest(),
                          pb.DescribeTableResponse)

    def add_column(self, name, max_length=None):
        """Adds a custom text column and returns its ColumnInfo."""
        req = pb.AddColumnRequest(name=name)
        if max_length is not None:
            req.max_length = max_length
        return self._call("AddColumn", req, pb.AddColumnResponse).column
