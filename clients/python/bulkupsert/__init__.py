"""Python client of bulkupsertd (bulkupsert.v1.BulkUpsert over nng).

    with bulkupsert.Client("tcp://127.0.0.1:7450", token) as c:
        job_id = c.submit(["contact_key", "email"], [["k1", "a@example.com"]])
        job = c.wait(job_id)

The protobuf messages are in bulkupsert.v1.bulkupsert_pb2 (also `pb`).
"""

from .client import UNSET, Client, Error
from .v1 import bulkupsert_pb2 as pb

__all__ = ["Client", "Error", "UNSET", "pb"]
