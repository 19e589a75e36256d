"""End-to-end tests of the Python client against the real bulkupsertd.

Needs BU_DAEMON_PATH and BU_CLI_PATH (the daemon and rpc-cli binaries) and
PYTHONPATH holding the built `bulkupsert` package; CTest sets all three.
"""

import ctypes
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import bulkupsert
from bulkupsert import _nng, pb

DAEMON = os.environ.get("BU_DAEMON_PATH", "build/src/bulkupsertd")
CLI = os.environ.get("BU_CLI_PATH", "build/tools/rpc-cli/rpc-cli")


class ClientTest(unittest.TestCase):
    """One daemon for the whole class, in a temporary directory."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        d = cls.tmp.name
        secret, keyring = os.path.join(d, "secret"), os.path.join(d, "keyring")
        subprocess.run([CLI, "keygen", "--secret", secret, "--keyring", keyring],
                       check=True, capture_output=True)
        cls.token = subprocess.run(
            [CLI, "token", "issue", "--secret", secret, "--tenant", "acme",
             "--perm", "DataSpace.Manage,DataSpace.Read"],
            check=True, capture_output=True, text=True).stdout.strip()
        cls.url = f"ipc://{d}/bu.sock"
        cls.log = open(os.path.join(d, "daemon.log"), "wb")
        cls.addClassCleanup(cls.log.close)
        cls.daemon = subprocess.Popen(
            [DAEMON, "--listen", cls.url, "--data-dir", os.path.join(d, "data"),
             "--keyring", keyring],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(cls._stop_daemon)
        cls.client = bulkupsert.Client(cls.url, cls.token, timeout=5.0)
        cls.addClassCleanup(cls.client.close)
        cls._wait_ready()

    @classmethod
    def _wait_ready(cls):
        """Ready when GetJob with no token answers UNAUTHENTICATED."""
        with bulkupsert.Client(cls.url, "", timeout=0.5) as probe:
            for _ in range(200):
                try:
                    probe.get_job("ready?")
                except bulkupsert.Error as e:
                    if e.code == pb.UNAUTHENTICATED:
                        return
                if cls.daemon.poll() is not None:
                    raise RuntimeError(f"bulkupsertd exited: {cls._log_text()}")
                time.sleep(0.05)
        raise RuntimeError(f"bulkupsertd did not answer: {cls._log_text()}")

    @classmethod
    def _log_text(cls):
        with open(cls.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    @classmethod
    def _stop_daemon(cls):
        if cls.daemon.poll() is None:
            cls.daemon.send_signal(signal.SIGTERM)
            try:
                cls.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                cls.daemon.kill()
                cls.daemon.wait()

    def test_submit_and_wait(self):
        job_id = self.client.submit(
            ["contact_key", "email", "email_permission", "gender"],
            [["py1", "py1@example.com", True, "f"],
             ["py2", bulkupsert.UNSET, False, None]])
        self.assertTrue(job_id)
        job = self.client.wait(job_id, timeout=30)
        self.assertEqual(job.state, pb.JOB_STATE_COMPLETED)
        self.assertEqual(job.counts.total, 2)
        self.assertEqual(job.counts.inserted, 2)

    def test_get_job_records(self):
        job_id = self.client.submit(["contact_key", "name"],
                                    [["rec1", "A"], ["rec2", "B"]])
        self.client.wait(job_id, timeout=30)
        job = self.client.get_job(job_id, records=10)
        self.assertEqual(job.job_id, job_id)
        self.assertEqual([r.contact_key for r in job.records], ["rec1", "rec2"])
        self.assertTrue(all(r.outcome == pb.OUTCOME_INSERTED
                            for r in job.records))

    def test_validation_fails(self):
        with self.assertRaises(bulkupsert.Error) as cm:
            self.client.submit(["contact_key", "email"],
                               [["v1", "v1@example.com"], ["v2", "not-an-email"]])
        e = cm.exception
        self.assertEqual(e.code, pb.INVALID_ARGUMENT)
        self.assertEqual((e.http_status, e.response_code), (400, 11))
        self.assertEqual(len(e.field_errors), 1)
        index, key, column, reason = e.field_errors[0]
        self.assertEqual((index, key, column), (1, "v2", "email"))
        self.assertTrue(reason)

    def test_bad_token(self):
        with bulkupsert.Client(self.url, "v4.public.bogus", timeout=5) as c:
            with self.assertRaises(bulkupsert.Error) as cm:
                c.describe_table()
        self.assertEqual(cm.exception.code, pb.UNAUTHENTICATED)
        self.assertEqual(cm.exception.http_status, 401)

    def test_unknown_job(self):
        with self.assertRaises(bulkupsert.Error) as cm:
            self.client.get_job("no-such-job")
        self.assertEqual(cm.exception.code, pb.NOT_FOUND)
        self.assertEqual(cm.exception.http_status, 404)

    def test_cancel_finished_job(self):
        job_id = self.client.submit(["contact_key"], [["cancel1"]])
        self.client.wait(job_id, timeout=30)
        with self.assertRaises(bulkupsert.Error) as cm:
            self.client.cancel_job(job_id)
        self.assertEqual(cm.exception.code, pb.FAILED_PRECONDITION)

    def test_idempotency(self):
        args = (["contact_key", "name"], [["idem1", "X"]])
        first = self.client.submit(*args, idempotency_key="py-idem-1")
        again = self.client.submit(*args, idempotency_key="py-idem-1")
        self.assertEqual(first, again)

    def test_list_jobs(self):
        ids = [self.client.submit(["contact_key"], [[f"lj{i}"]])
               for i in range(3)]
        for job_id in ids:
            self.client.wait(job_id, timeout=30)
        page = self.client.list_jobs(page_size=2)
        self.assertEqual(len(page.jobs), 2)
        self.assertTrue(page.next_page_token)
        # Newest first, and paging reaches every job once.
        listed = [j.job_id for j in self.client.iter_jobs(page_size=2)]
        self.assertEqual(len(listed), len(set(listed)))
        self.assertEqual(listed[:3], ids[::-1])
        done = self.client.list_jobs(states=[pb.JOB_STATE_COMPLETED],
                                     page_size=1000)
        self.assertTrue(set(ids) <= {j.job_id for j in done.jobs})
        none = self.client.list_jobs(states=[pb.JOB_STATE_QUEUED],
                                     accepted_after_ms=1)
        self.assertEqual(list(none.jobs), [])
        with self.assertRaises(bulkupsert.Error) as cm:
            self.client.list_jobs(page_size=1001)
        self.assertEqual(cm.exception.http_status, 400)
        self.assertIn("page_size", cm.exception.message)

    def test_describe_table(self):
        names = [c.name for c in self.client.describe_table().columns]
        self.assertIn("contact_key", names)

    def test_add_column(self):
        col = self.client.add_column("py_nick", max_length=40)
        self.assertEqual((col.name, col.max_length), ("py_nick", 40))

    def test_unreachable(self):
        url = f"ipc://{self.tmp.name}/nobody.sock"
        with bulkupsert.Client(url, self.token, timeout=0.2) as c:
            with self.assertRaises(bulkupsert.Error) as cm:
                c.describe_table()
        self.assertEqual(cm.exception.code, pb.UNAVAILABLE)
        self.assertIn("not sent", cm.exception.message)
        self.assertFalse(cm.exception.maybe_applied)

    def test_bad_url(self):
        for url in ("bogus://x", "tcp://127.0.0.1"):
            with self.assertRaises(bulkupsert.Error) as cm:
                bulkupsert.Client(url, self.token)
            self.assertEqual(cm.exception.code, pb.INVALID_ARGUMENT)

    def test_oversize_request_not_sent(self):
        big = "x" * 42000
        with self.assertRaises(bulkupsert.Error) as cm:
            self.client.submit(["contact_key", "name"],
                               [[f"big{i}", big] for i in range(1000)])
        self.assertEqual(cm.exception.code, pb.INVALID_ARGUMENT)
        self.assertIn("nothing was sent", cm.exception.message)
        self.assertFalse(cm.exception.maybe_applied)

    def test_long_timeout(self):
        # Past nng's int32 milliseconds: used as the longest wait, not
        # wrapped into a short or negative one.
        with bulkupsert.Client(self.url, self.token, timeout=3e6) as c:
            self.assertTrue(c.describe_table().columns)

    def test_reply_without_status(self):
        url = f"ipc://{self.tmp.name}/fake.sock"
        with _FakeServer(url, [b"", b"\xff\xff\xff"]):
            with bulkupsert.Client(url, self.token, timeout=5) as c:
                for _ in range(2):
                    with self.assertRaises(bulkupsert.Error) as cm:
                        c.get_job("x")
                    self.assertEqual(cm.exception.code, pb.INTERNAL)
                    self.assertTrue(cm.exception.maybe_applied)
                    # Named by the id the server logs, to find it by.
                    self.assertRegex(cm.exception.message,
                                     r"; request id [0-9a-f]{16}\)$")


class _FakeServer:
    """A rep0 socket on url answering each request with the next of
    replies (raw bytes), on a thread; closed on exit."""

    def __init__(self, url, replies):
        lib = _nng._lib
        lib.nng_rep0_open.argtypes = [ctypes.POINTER(_nng._Socket)]
        lib.nng_listen.argtypes = [_nng._Socket, ctypes.c_char_p,
                                   ctypes.c_void_p, ctypes.c_int]
        self.sock = _nng._Socket()
        assert lib.nng_rep0_open(ctypes.byref(self.sock)) == 0
        assert lib.nng_listen(self.sock, url.encode(), None, 0) == 0
        self.replies = replies
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        lib = _nng._lib
        for reply in self.replies:
            buf, size = ctypes.c_void_p(), ctypes.c_size_t()
            if lib.nng_recv(self.sock, ctypes.byref(buf), ctypes.byref(size),
                            _nng.FLAG_ALLOC) != 0:
                return
            lib.nng_free(buf, size)
            lib.nng_send(self.sock, reply, len(reply), 0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(5)  # every reply sent before the socket closes
        _nng._lib.nng_close(self.sock)


if __name__ == "__main__":
    unittest.main()
