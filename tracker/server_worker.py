"""`tracker serve`'s gunicorn worker: gthread, where no thread ever waits for a client.

Gunicorn's gthread worker gives a connection to a thread as soon as its first byte arrives,
and the thread then reads the rest of the request with blocking reads and no deadline. A
client sending one header line a second (slowloris) held a thread for as long as it liked:
16 such sockets took both workers' 8 threads, and the server answered nothing else.

Here a thread reads what has arrived without blocking. When that is not a whole request
(head and body), the connection goes back to the worker's event loop with what it sent so
far, the thread is free at once, and the loop gives the connection to a thread again when
more arrives. An idle or slow socket costs a buffer, never a thread. The head must be
complete within `header_timeout_seconds` of the connection becoming readable, the body
within `body_timeout_seconds` after the head; past that the client gets a 408 and the
connection closes. A whole request is then parsed by gunicorn from the buffer, as before:
a request that arrives at once (nearly all do) takes the same reads as with gthread, plus
a scan of its head (about 5 us). That is what a buffering proxy (nginx, Caddy) does in
front of an application server; README "Deployment" recommends one all the same.

Bodies larger than MAX_BODY_BYTES get a 413 at once, so no body is ever streamed to the
app. A head whose framing this reader cannot trust goes to gunicorn's parser as it is,
which answers 400. When a thread does block (writing an answer, or gunicorn reading a
request this reader handed over as is), a read or a write that makes no progress gives up
after `body_timeout_seconds` (the socket's kernel timeouts; tracker.server turns gunicorn's
sendfile off, which would wait without one): a client that reads nothing of its answer
cannot hold a thread either. And the lingering close after a last answer (reading what the
client still sends, so that a reset does not cut the answer), which gthread does with
blocking reads in its event loop, up to 2 s a connection, is done here without blocking.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

# A head larger than this is refused (431): nginx's default allows 32 kB of headers.
MAX_HEAD_BYTES = 64 * 1024
# The largest body the app takes is 8 MB of cost rows through the API (MAX_COST_BODY in
# tracker/api/views.py); a test checks the app's limits fit under this.
MAX_BODY_BYTES = 16 * 1024 * 1024
# What one read asks for: a head (and what comes with it) 8 kB at a time, as gunicorn does,
# so that pipelined requests behind it, copied once per request, stay small; a body of
# known length as much as is left of it, up to a megabyte; chunks 64 kB at a time.
HEAD_READ_BYTES = 8192
BODY_READ_BYTES = 1024 * 1024
CHUNKED_READ_BYTES = 64 * 1024

_HEAD_END = b"\r\n\r\n"
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+")
# The fields that frame a body, and Expect (a field name ends at its colon: RFC 9112 5.1).
_FRAMING_FIELD = re.compile(rb"\r\n(content-length|transfer-encoding|expect):([^\r\n]*)", re.I)


class Refused(Exception):
    """The request is answered by the reader itself (413, 431) and the connection closed."""

    def __init__(self, status: bytes) -> None:
        super().__init__(status.decode())
        self.status = status


@dataclass
class Framing:
    """How a request's body ends: a length, chunked transfer coding, or no body."""

    length: int = 0
    chunked: bool = False
    expects_continue: bool = False


def read_framing(head: bytes) -> Framing | None:
    """The body framing the head announces; None when the head is not one this reader
    understands (conflicting or malformed framing), for gunicorn's parser to refuse."""
    framing = Framing()
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    for name, value in _FRAMING_FIELD.findall(head):
        name = name.lower()
        if name == b"content-length":
            lengths.add(value.strip())
        elif name == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b","))
        else:
            framing.expects_continue = value.strip().lower() == b"100-continue"
    if codings:
        if lengths or codings[-1] != b"chunked":
            return None
        framing.chunked = True
    elif lengths:
        if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
            return None
        framing.length = int(length)
    if framing.expects_continue:  # HTTP/1.0 has no 100 Continue, a request without body none
        request_line = head[: head.find(b"\r\n")]
        framing.expects_continue = request_line.endswith(b"HTTP/1.1") and bool(
            framing.chunked or framing.length
        )
    return framing


@dataclass
class Incoming:
    """What a connection has sent of its next request so far."""

    deadline: float  # monotonic; the head's, then the body's
    data: bytearray = field(default_factory=bytearray)
    searched: int = 0  # the head's end is not before this offset
    head_end: int = 0  # offset past the head's blank line, once it arrived
    framing: Framing | None = None
    chunk_at: int = 0  # chunked: offset of the next chunk's size line
    complete: bool = False

    def feed(self, data: bytes) -> None:
        self.data += data

    def wanted(self) -> int:
        """How many bytes the next read asks for (never past a body of known length)."""
        if not self.head_end or self.framing is None:
            return HEAD_READ_BYTES
        if self.framing.chunked:
            return CHUNKED_READ_BYTES
        left = self.head_end + self.framing.length - len(self.data)
        return max(1, min(left, BODY_READ_BYTES))

    def scan(self, body_seconds: float) -> bytes | None:
        """Advance over what arrived; the bytes to answer `100 Continue` with, if any.
        Raises Refused for a head or body over the limits."""
        if not self.head_end:
            self._scan_head(body_seconds)
            if not self.head_end:
                return None
            if self._expects_continue():
                return b"HTTP/1.1 100 Continue\r\n\r\n"
        if self.framing is not None and not self.complete:
            self._scan_body()
        return None

    def _scan_head(self, body_seconds: float) -> None:
        if self.data[:1] in (b"\r", b"\n"):  # empty lines before a request line are ignored
            del self.data[: len(self.data) - len(self.data.lstrip(b"\r\n"))]
        end = self.data.find(_HEAD_END, self.searched)
        if end < 0:
            if len(self.data) > MAX_HEAD_BYTES:
                raise Refused(b"431 Request Header Fields Too Large")
            self.searched = max(0, len(self.data) - len(_HEAD_END) + 1)  # not again
            return
        self.head_end = self.chunk_at = end + len(_HEAD_END)
        self.deadline = time.monotonic() + body_seconds
        self.framing = read_framing(bytes(self.data[:end]))
        if self.framing is None:
            self.complete = True
        elif self.framing.length > MAX_BODY_BYTES:
            raise Refused(b"413 Content Too Large")

    def _expects_continue(self) -> bool:
        """Answered here, since gunicorn would answer it only once the body is in; the
        Expect line is dropped so that gunicorn does not answer it a second time."""
        if self.framing is None or not self.framing.expects_continue:
            return False
        lines = bytes(self.data[: self.head_end]).split(b"\r\n")
        head = b"\r\n".join(line for line in lines if not line.lower().startswith(b"expect:"))
        self.data[: self.head_end] = head
        self.head_end = self.chunk_at = len(head)
        return len(self.data) == self.head_end  # nothing of the body sent yet

    def _scan_body(self) -> None:
        assert self.framing is not None
        if not self.framing.chunked:
            self.complete = len(self.data) >= self.head_end + self.framing.length
            return
        while not self.complete:
            line_end = self.data.find(b"\r\n", self.chunk_at)
            if line_end < 0:
                break
            size_text = bytes(self.data[self.chunk_at : line_end]).split(b";")[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                self.complete = True  # gunicorn's parser answers 400
                break
            size = int(size_text, 16)
            if size == 0:
                self.complete = self._trailers_end(line_end + 2)
                break
            if self.chunk_at + size - self.head_end > MAX_BODY_BYTES:
                raise Refused(b"413 Content Too Large")
            if len(self.data) < line_end + 2 + size + 2:
                break
            self.chunk_at = line_end + 2 + size + 2
        if not self.complete and len(self.data) - self.head_end > MAX_BODY_BYTES + MAX_HEAD_BYTES:
            raise Refused(b"413 Content Too Large")

    def _trailers_end(self, at: int) -> bool:
        if self.data[at : at + 2] == b"\r\n":
            return True
        return self.data.find(_HEAD_END, at) >= 0


class BufferedConn(TConn):  # type: ignore[misc]
    """A gthread connection with what it sent of its next request so far."""

    def __init__(self, *args: Any, linger: Callable[[BufferedConn], None]) -> None:
        super().__init__(*args)
        self.incoming: Incoming | None = None  # being read
        self.received = b""  # read whole, for gunicorn's parser
        self.linger = linger

    def init(self) -> None:
        super().init()  # makes the parser (once per connection)
        if self.received:
            self.parser.unreader.unread(self.received)
            self.received = b""

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.linger(self)
        else:
            super().close()


class BufferedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with requests read without blocking and handled once whole."""

    def init_process(self) -> None:
        settings = self.app.settings  # tracker.server.TrackerServer's
        self.header_seconds = float(settings.header_timeout_seconds)
        self.body_seconds = float(settings.body_timeout_seconds)
        # struct timeval: a blocking read or write gives up after it (EAGAIN)
        self.io_timeout = struct.pack("ll", settings.body_timeout_seconds, 0)
        self.waiting: set[BufferedConn] = set()  # for more of a request, in the poller
        self.lingering: dict[socket.socket, float] = {}  # closing: the deadline
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        # The kernel's timeouts, set once: a socket timeout of Python's would poll before
        # every read and write of every request (about 8% more CPU per request, measured).
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            client.setsockopt(socket.SOL_SOCKET, option, self.io_timeout)
        name = listener.getsockname()
        self.enqueue_req(BufferedConn(self.cfg, client, address, name, linger=self._linger))

    # --- in a thread ---------------------------------------------------------------------

    def handle(self, conn: BufferedConn) -> Any:
        if self.cfg.is_ssl:  # not configured by tracker serve: gthread's way, unguarded
            return super().handle(conn)
        try:
            if not self._read(conn):
                return _WAIT
        except Refused as refused:
            _answer(conn.sock, refused.status)
            return False
        except OSError:  # the client is gone
            return False
        return super().handle(conn)  # parses from the buffer, answers

    def _read(self, conn: BufferedConn) -> bool:
        """Read what arrived; True once the request is whole, False when it is not yet."""
        incoming = conn.incoming
        if incoming is None:
            incoming = conn.incoming = Incoming(time.monotonic() + self.header_seconds)
            if conn.parser is not None:  # a request pipelined behind the last one
                incoming.feed(conn.parser.unreader.take_buffered())
        if conn.sock.gettimeout() != 0.0:  # (setblocking costs a system call)
            conn.sock.setblocking(False)
        while True:
            reply = incoming.scan(self.body_seconds)
            if reply:
                conn.sock.send(reply)
            if incoming.complete:
                break
            try:
                data = conn.sock.recv(incoming.wanted())
            except BlockingIOError:
                # Checked here too: a client sending many small pieces is rarely waiting
                # when the event loop looks at the time.
                if time.monotonic() > incoming.deadline:
                    raise Refused(b"408 Request Timeout") from None
                return False
            if not data:
                raise ConnectionResetError("closed before the end of its request")
            incoming.feed(data)
        conn.incoming = None
        conn.received = bytes(incoming.data)
        conn.data_ready = True  # gthread would otherwise wait for the socket to be readable
        return True

    # --- in the event loop -----------------------------------------------------------------

    def finish_request(self, conn: BufferedConn, fs: Any) -> None:
        if not fs.cancelled() and fs.exception() is None and fs.result() is _WAIT:
            self.waiting.add(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._more, conn))
        else:
            super().finish_request(conn, fs)

    def _more(self, conn: BufferedConn, _sock: socket.socket) -> None:
        """More of a request arrived: a thread reads it."""
        self.poller.unregister(conn.sock)
        self.waiting.discard(conn)
        self.enqueue_req(conn)

    def murder_pending(self) -> None:
        """Run by the event loop about once a second: also close what is past its time."""
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.waiting):
            incoming = conn.incoming
            if incoming is None or incoming.deadline > now:
                continue
            self.poller.unregister(conn.sock)
            self.waiting.discard(conn)
            self.nr_conns -= 1
            # A connection that sent nothing is closed without an answer, as an expired
            # keep-alive connection is.
            if incoming.data.strip():
                _answer(conn.sock, b"408 Request Timeout")
            conn.close()
        for sock in [s for s, deadline in self.lingering.items() if deadline <= now]:
            self._closed(sock)

    def _linger(self, conn: BufferedConn) -> None:
        """Close after an answer without cutting it: stop sending, then read (and drop)
        what the client still sends until it closes too, or for LINGER_SECONDS at most."""
        sock = conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        self.lingering[sock] = time.monotonic() + LINGER_SECONDS
        self.poller.register(sock, selectors.EVENT_READ, self._drain)

    def _drain(self, sock: socket.socket) -> None:
        try:
            if sock.recv(CHUNKED_READ_BYTES):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._closed(sock)

    def _closed(self, sock: socket.socket) -> None:
        del self.lingering[sock]
        self.poller.unregister(sock)
        sock.close()


_WAIT = object()  # handle's verdict: the request is not whole yet
LINGER_SECONDS = 2.0  # gunicorn's


def _answer(sock: socket.socket, status: bytes) -> None:
    """A last answer without a body, as far as the socket takes it without waiting."""
    answer = b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" % status
    try:
        sock.setblocking(False)
        sock.send(answer)
    except OSError:
        pass
