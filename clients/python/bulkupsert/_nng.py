"""Minimal ctypes binding of libnng 1.x: a req0 socket with blocking send/recv.

Only what the client needs is bound. Every failing call raises NngError
carrying nng's error number and its nng_strerror() text.
"""

import ctypes

ETIMEDOUT = 5
FLAG_ALLOC = 1
FLAG_NONBLOCK = 2
DURATION_INFINITE = -1
# nng durations are int32 milliseconds (about 24.8 days at most).
DURATION_MAX_MS = 2**31 - 1

OPT_SENDTIMEO = b"send-timeout"
OPT_RECVTIMEO = b"recv-timeout"
OPT_RECVMAXSZ = b"recv-size-max"
OPT_REQ_RESENDTIME = b"req:resend-time"


class _Socket(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32)]


def _load():
    lib = ctypes.CDLL("libnng.so.1")
    sig = {
        "nng_req0_open": ([ctypes.POINTER(_Socket)], ctypes.c_int),
        "nng_dial": ([_Socket, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int],
                     ctypes.c_int),
        "nng_socket_set_ms": ([_Socket, ctypes.c_char_p, ctypes.c_int32],
                              ctypes.c_int),
        "nng_socket_set_size": ([_Socket, ctypes.c_char_p, ctypes.c_size_t],
                                ctypes.c_int),
        "nng_send": ([_Socket, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int],
                     ctypes.c_int),
        "nng_recv": ([_Socket, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                      ctypes.c_int], ctypes.c_int),
        "nng_free": ([ctypes.c_void_p, ctypes.c_size_t], None),
        "nng_close": ([_Socket], ctypes.c_int),
        "nng_strerror": ([ctypes.c_int], ctypes.c_char_p),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


_lib = _load()


class NngError(Exception):
    """A failed nng call: errno is nng's error number."""

    def __init__(self, errno, what):
        self.errno = errno
        self.strerror = _lib.nng_strerror(errno).decode("utf-8", "replace")
        super().__init__(f"{what}: {self.strerror}")


def _check(rv, what):
    if rv != 0:
        raise NngError(rv, what)


class ReqSocket:
    """A req0 socket dialed (in the background) to one URL.

    The request is never resent by nng: a resent submit could queue a job
    twice.
    """

    def __init__(self, url, max_reply_bytes):
        self._sock = _Socket()
        _check(_lib.nng_req0_open(ctypes.byref(self._sock)), "nng_req0_open")
        try:
            _check(_lib.nng_socket_set_ms(self._sock, OPT_REQ_RESENDTIME,
                                          DURATION_INFINITE), "req:resend-time")
            _check(_lib.nng_socket_set_size(self._sock, OPT_RECVMAXSZ,
                                            max_reply_bytes), "recv-size-max")
            _check(_lib.nng_dial(self._sock, url.encode(), None, FLAG_NONBLOCK),
                   url)
        except NngError:
            _lib.nng_close(self._sock)
            raise
        self._open = True

    def send(self, data, timeout_ms):
        """Sends one request, waiting at most timeout_ms for a connection."""
        _check(_lib.nng_socket_set_ms(self._sock, OPT_SENDTIMEO, timeout_ms),
               "send-timeout")
        _check(_lib.nng_send(self._sock, data, len(data), 0), "send")

    def recv(self, timeout_ms):
        """Returns the reply to the last request, waiting at most timeout_ms."""
        _check(_lib.nng_socket_set_ms(self._sock, OPT_RECVTIMEO, timeout_ms),
               "recv-timeout")
        buf = ctypes.c_void_p()
        size = ctypes.c_size_t()
        _check(_lib.nng_recv(self._sock, ctypes.byref(buf), ctypes.byref(size),
                             FLAG_ALLOC), "recv")
        try:
            return ctypes.string_at(buf, size.value)
        finally:
            _lib.nng_free(buf, size)

    def close(self):
        """Closes the socket; further calls fail. Safe to call twice."""
        if getattr(self, "_open", False):
            self._open = False
            _lib.nng_close(self._sock)
