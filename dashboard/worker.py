"""gunicorn's gthread worker, hardened against slow clients (gunicorn.conf.py's worker_class).

gthread (gunicorn 27) gives a new connection to a pool thread at once: the thread waits up to
5 s for a first byte, then reads the request head and body with blocking reads and no deadline.
So 50 idle connections each hold a thread for 5 s (4 threads: health probes wait ~30 s), and a
client sending one header line every few seconds holds a thread for as long as it likes. The
pool also serves health checks in turn with everything else, so a few heavy dashboard callbacks
leave none free.

This worker changes three things and nothing else:

- The worker's event loop (its main thread, non-blocking, no thread held) reads each request's
  head and, up to BODY_BUFFER bytes, its body before a pool thread sees it, as a buffering proxy
  would. A client gets RETENTION_CLIENT_TIMEOUT seconds for the whole request, counted from
  its first byte (a connection that sends nothing is closed after that long too); a slower one
  is closed. A head over HEAD_BUFFER or a larger or chunked body is handed over as soon as its
  head is read, and the thread's further reads are cut at the same deadline (DeadlineUnreader).
  The request is still parsed by gunicorn's own parser, in the thread, from the buffered bytes.
- `GET /api/v1/health` goes to a small pool of its own, so it never queues behind data requests
  (its work is a few dictionary reads; the GIL is shared, but a waiting thread gets it within
  the 5 ms switch interval).
- gunicorn's own error responses (400 for a malformed request, 414, 431, ...) carry the same
  security headers as the app's (dashboard.security.error_page_headers).

TLS and HTTP/2 prior knowledge (both off here: TLS is the proxy's) keep gthread's own path.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import time
from concurrent import futures
from functools import partial

from gunicorn import http
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

from analytics.config import ServeSettings, setting_from_env
from dashboard import security
from dashboard.api.routes import PREFIX

HEALTH_PATHS = frozenset({f"{PREFIX}/health".encode()})
# The routes that take a table (dashboard.api.lifecycle.UPLOADS): only their bodies get time for
# their size. Any other body is at most RETENTION_MAX_BODY_MB and is due within the client
# timeout, as before: the extra time on every path let anyone hold a thread 47 s on /login.
UPLOAD_PATHS = frozenset({f"{PREFIX}/datasets".encode(), b"/admin/data/datasets"})
HEALTH_THREADS = 2
HEAD_BUFFER = 64 * 1024  # a longer head goes to gunicorn's parser early (its limits answer 431)
BODY_BUFFER = 1024 * 1024  # bodies up to this are read by the loop; the 600 KB callbacks fit
BUFFER_BUDGET = 64 * 1024 * 1024  # at most this much buffered per worker at once
READ_SIZE = 64 * 1024
# A declared body over BODY_BUFFER gets a second per this many bytes on top of the client
# timeout: a 200 MB table over a 1 MB/s link is not cut off, a trickle still is.
MIN_BODY_RATE = 1024 * 1024

_CONTENT_LENGTH = re.compile(rb"\r?\ncontent-length[ \t]*:[ \t]*(\d{1,18})[ \t]*\r?\n", re.I)
_TRANSFER_OR_EXPECT = re.compile(rb"\r?\n(?:transfer-encoding|expect)[ \t]*:", re.I)


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader with an absolute deadline: a read past it is end of input (and
    the socket's reading side is shut, so the connection closes after the response)."""

    deadline = float("inf")

    def chunk(self, size_hint=None):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return self._expired()
        prior = self.sock.gettimeout()
        self.sock.settimeout(remaining if prior is None else min(prior, remaining))
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            if time.monotonic() < self.deadline:
                raise  # the caller's own, shorter timeout (gthread's keep-alive drain)
            return self._expired()
        finally:
            self.sock.settimeout(prior)

    def _expired(self) -> bytes:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)
        return b""


class _Request:
    """What the loop holds of a request while it arrives."""

    __slots__ = ("data", "deadline", "head_end", "want")

    def __init__(self, data: bytes, deadline: float) -> None:
        self.data = bytearray(data)
        self.deadline = deadline
        self.head_end = -1  # index just past the blank line, once seen
        self.want = 0  # bytes of the whole request to buffer, once the head is read


def _head_end(data: bytearray, start: int) -> int:
    """Index just past the blank line ending the head (searched from `start`), or -1."""
    ends = [
        found + len(sep)
        for sep in (b"\r\n\r\n", b"\n\n")
        if (found := data.find(sep, max(0, start - len(sep)))) >= 0
    ]
    return min(ends, default=-1)


def is_health(data: bytes | bytearray) -> bool:
    line = bytes(data[: data.find(b"\n")]) if b"\n" in data else b""
    parts = line.split()
    return (
        len(parts) == 3
        and parts[0] in (b"GET", b"HEAD")
        and parts[1].split(b"?", 1)[0] in HEALTH_PATHS
    )


def is_upload(data: bytes | bytearray) -> bool:
    line = bytes(data[: data.find(b"\n")]) if b"\n" in data else b""
    parts = line.split()
    return len(parts) == 3 and parts[0] == b"POST" and parts[1].split(b"?", 1)[0] in UPLOAD_PATHS


class _WithSecurityHeaders:
    """The client socket as gunicorn's handle_error writes its own error response to it: the
    security headers go in after the status line of the first write."""

    def __init__(self, sock, header_lines: bytes) -> None:
        self._sock = sock
        self._lines = header_lines
        self._done = False

    def sendall(self, data, *args):
        if not self._done:
            self._done = True
            end = data.find(b"\r\n")
            if data.startswith(b"HTTP/") and end > 0:
                data = data[: end + 2] + self._lines + data[end + 2 :]
        return self._sock.sendall(data, *args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class RetentionWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.client_timeout = float(setting_from_env(ServeSettings, "client_timeout"))
        self.health_pool = None
        self.arriving: dict[object, _Request] = {}  # TConn -> what has arrived of its request
        self.buffered = 0  # bytes held in self.arriving
        headers = security.error_page_headers()
        self.error_header_lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode(
            "latin-1"
        )

    def init_process(self):
        self.health_pool = futures.ThreadPoolExecutor(
            max_workers=HEALTH_THREADS, thread_name_prefix="health"
        )
        super().init_process()

    # -- reading requests in the loop ------------------------------------------------------

    def _reads_ahead(self, conn) -> bool:
        return not (
            self.cfg.is_ssl
            or conn.is_http2
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        )

    def enqueue_req(self, conn):
        """Called by gthread for a new connection, a kept-alive one that became readable, and
        bytes left over after a response: read the request first, then give it to a thread."""
        if getattr(conn, "buffered_request", False) or not self._reads_ahead(conn):
            conn.buffered_request = False
            pool = self.health_pool if getattr(conn, "health", False) else self.tpool
            future = pool.submit(self.handle, conn)
            future.add_done_callback(
                lambda fut: self.method_queue.defer(self.finish_request, conn, fut)
            )
            return
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.parser.unreader = DeadlineUnreader(conn.sock)
        pending = _Request(conn.parser.unreader.take_buffered(), self._deadline())
        self.arriving[conn] = pending
        self.buffered += len(pending.data)
        conn.sock.setblocking(False)
        if not self._arrived(conn, pending):
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _deadline(self) -> float:
        return time.monotonic() + self.client_timeout

    def _on_readable(self, conn, _sock):
        pending = self.arriving[conn]
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(conn, unregister=True)
            return
        pending.data += data
        self.buffered += len(data)
        if self._arrived(conn, pending):
            self.poller.unregister(conn.sock)

    def _arrived(self, conn, pending: _Request) -> bool:
        """Whether enough of the request is here to hand it to a thread (which is done)."""
        data = pending.data
        if pending.head_end < 0:
            pending.head_end = _head_end(data, len(data) - READ_SIZE)
            if pending.head_end < 0:
                if len(data) < HEAD_BUFFER:
                    return False
                return self._hand_over(conn, pending)  # gunicorn's parser refuses it (431)
            head = bytes(data[: pending.head_end])
            length = _CONTENT_LENGTH.search(head)
            pending.want = pending.head_end
            body = int(length.group(1)) if length else 0
            if _TRANSFER_OR_EXPECT.search(head) or body > BODY_BUFFER:
                # chunked, 100-continue or large: the thread reads it, by the deadline; a large
                # declared body to an upload route (an admin's table) gets time for its size
                if is_upload(head):
                    pending.deadline += body / MIN_BODY_RATE
            elif self.buffered - len(data) + pending.head_end + body <= BUFFER_BUDGET:
                pending.want += body
        if len(data) < pending.want:
            return False
        return self._hand_over(conn, pending)

    def _hand_over(self, conn, pending: _Request) -> bool:
        del self.arriving[conn]
        self.buffered -= len(pending.data)
        conn.parser.unreader.unread(bytes(pending.data))
        conn.parser.unreader.deadline = pending.deadline
        conn.health = is_health(pending.data)
        conn.data_ready = True  # gthread's thread must not wait for a first byte again
        conn.buffered_request = True
        self.enqueue_req(conn)
        return True

    def _drop(self, conn, unregister: bool) -> None:
        pending = self.arriving.pop(conn)
        self.buffered -= len(pending.data)
        if unregister:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """gthread calls this about once a second: also close clients past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        late = [conn for conn, pending in self.arriving.items() if pending.deadline <= now]
        for conn in late:
            self.log.debug("closing a client that sent no whole request in time: %s", conn.client)
            self._drop(conn, unregister=True)

    # -- gunicorn's own error responses ----------------------------------------------------

    def handle_error(self, req, client, addr, exc):
        return super().handle_error(
            req, _WithSecurityHeaders(client, self.error_header_lines), addr, exc
        )
