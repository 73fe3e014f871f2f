"""Slow clients (slowloris): `tracker serve` reads each request whole before a thread takes
it (tracker.server_worker), so sockets trickling a head or a body hold no thread, and are
closed (408) once past the header or body timeout."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEFAULT_USER_AGENT
from tests.served import event_body
from tests.test_ingest_durability import Server
from tests.waiting import connections_accepted, wait_until
from tracker.api.views import MAX_COST_BODY
from tracker.config import Settings
from tracker.server_worker import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    Framing,
    Incoming,
    Refused,
    read_framing,
)
from tracker.web.spend import MAX_PAGE_BYTES

# Short, as the tests wait them out (their slow clients until closed, threads until their
# writes give up), yet five times what the requests sent in pieces take at most (a head in
# two pieces, a body in three).
HEADER_SECONDS = 2
BODY_SECONDS = 3
PIECE_SECONDS = 0.2  # between the pieces of a request
# Far below what the faults cost (2 s per silent connection in the event loop: 64 s for
# SLOW_SOCKETS; threads held until the clients' timeouts, or forever), far above what a
# healthy server takes on a loaded shared machine (up to 10 s seen at load 10).
ANSWER_SECONDS = 30.0
# A server whose timeouts no answer outlasts: while its slow clients are all still open, the
# only way to answer another client is to hold no thread for them.
PATIENT_SECONDS = 120
THREADS = 16  # of both workers together
SLOW_SOCKETS = 2 * THREADS  # of each kind


# --- the reader, byte by byte -----------------------------------------------------------


def read_all(*pieces: bytes) -> Incoming:
    incoming = Incoming(deadline=0.0)
    for piece in pieces:
        incoming.feed(piece)
        incoming.scan(BODY_SECONDS)
    return incoming


def test_framing_is_read_from_the_head() -> None:
    assert read_framing(b"GET / HTTP/1.1\r\nHost: a") == Framing()
    assert read_framing(b"POST / HTTP/1.1\r\nContent-Length: 12") == Framing(length=12)
    assert read_framing(b"POST / HTTP/1.1\r\ntransfer-encoding: chunked") == Framing(chunked=True)
    expect = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue"
    assert read_framing(expect) == Framing(length=3, expects_continue=True)
    # HTTP/1.0 has no 100 Continue; neither has a request without a body.
    assert not read_framing(expect.replace(b"1.1", b"1.0")).expects_continue  # type: ignore[union-attr]
    assert not read_framing(b"GET / HTTP/1.1\r\nExpect: 100-continue").expects_continue  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4",
        b"POST / HTTP/1.1\r\nContent-Length: -3",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip",
    ],
)
def test_framing_the_reader_cannot_trust_goes_to_gunicorns_parser(head: bytes) -> None:
    assert read_framing(head) is None
    assert read_all(head + b"\r\n\r\n").complete  # handed over as is: gunicorn answers 400


def test_a_request_is_complete_only_with_its_whole_body() -> None:
    head = b"POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
    assert not read_all(head[:10]).complete
    assert not read_all(head[:10], head[10:]).complete
    assert not read_all(head, b"abcd").complete
    incoming = read_all(head[:-1], b"\n", b"ab", b"cde", b"GET / HTTP/1.1\r\n")
    assert incoming.complete
    assert bytes(incoming.data) == head + b"abcdeGET / HTTP/1.1\r\n"  # the next one kept
    assert read_all(b"GET / HTTP/1.1\r\n\r\n").complete
    assert read_all(b"\r\nGET / HTTP/1.1\r\n\r\n").data == b"GET / HTTP/1.1\r\n\r\n"


def test_a_chunked_body_is_complete_at_its_last_chunk() -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert not read_all(head, b"5\r\nab").complete
    assert not read_all(head, b"5\r\nabcde\r\n").complete
    assert not read_all(head, b"5;x=y\r\nabcde\r\n0\r\n").complete
    assert read_all(head, b"5;x=y\r\nabcde\r\n", b"0\r\n\r\n").complete
    assert not read_all(head, b"5\r\nabcde\r\n0\r\nTrailer: x\r\n").complete
    assert read_all(head, b"5\r\nabcde\r\n0\r\nTrailer: x\r\n\r\n").complete
    # A chunk holding what looks like the last chunk is data, not the end.
    assert not read_all(head, b"7\r\n0\r\n\r\nx", b"\r\n").complete
    assert read_all(head, b"zz\r\n").complete  # malformed: gunicorn's parser answers 400


def test_too_large_heads_and_bodies_are_refused_without_waiting_for_them() -> None:
    with pytest.raises(Refused, match="413"):
        read_all(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))
    with pytest.raises(Refused, match="413"):
        read_all(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY_BYTES + 1)
        )
    with pytest.raises(Refused, match="431"):
        read_all(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEAD_BYTES // 6))


def test_the_apps_largest_bodies_fit_under_the_readers_limit() -> None:
    multipart = 64 * 1024  # a form's other fields and boundaries around the CSV file
    assert max(MAX_COST_BODY, MAX_PAGE_BYTES + multipart, Settings().max_body_bytes) < (
        MAX_BODY_BYTES
    )


def test_expect_100_continue_is_answered_once_by_the_reader() -> None:
    incoming = Incoming(deadline=0.0)
    incoming.feed(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n")
    assert incoming.scan(BODY_SECONDS) == b"HTTP/1.1 100 Continue\r\n\r\n"
    incoming.feed(b"ok")
    assert incoming.scan(BODY_SECONDS) is None
    assert incoming.complete
    assert bytes(incoming.data) == b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"


# --- a real `tracker serve` ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("slow"),
        sqlite_template,
        header_timeout_seconds=HEADER_SECONDS,
        body_timeout_seconds=BODY_SECONDS,
    )
    yield srv
    srv.stop()


@pytest.fixture
def patient_server(tmp_path: Path, sqlite_template: Path) -> Iterator[Server]:
    srv = Server(
        tmp_path,
        sqlite_template,
        header_timeout_seconds=PATIENT_SECONDS,
        body_timeout_seconds=PATIENT_SECONDS,
    )
    yield srv
    srv.stop()


def raw_request(server: Server, *pieces: bytes, pause: float = 0.0) -> bytes:
    """Send `pieces` (waiting `pause` between them) on one connection; all it answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def beacon_head(length: int, *extra: bytes) -> bytes:
    lines = [
        b"POST /api/event HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: text/plain",
        b"User-Agent: " + DEFAULT_USER_AGENT.encode(),
        b"Content-Length: %d" % length,
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class SlowClients:
    """Sockets sending a header line (or a body byte) every half second, from one thread,
    until the server closes them. Each kind's socket records when it was closed and what
    the server answered."""

    def __init__(self, server: Server, count: int) -> None:
        self.sockets: dict[socket.socket, bytes] = {}  # -> what it trickles
        self.closed: dict[socket.socket, tuple[float, bytes]] = {}
        self.started = time.monotonic()
        body = event_body("/slow")
        for _ in range(count):
            head = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            head.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.sockets[head] = b"X-Slow: yes\r\n"
            slow_body = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            slow_body.sendall(beacon_head(len(body)) + body[:1])
            self.sockets[slow_body] = b" "
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(0.5) and len(self.closed) < len(self.sockets):
            for sock, piece in self.sockets.items():
                if sock not in self.closed:
                    try:
                        sock.sendall(piece)
                    except OSError:
                        self._closed(sock)

    def _closed(self, sock: socket.socket) -> None:
        answer = b""
        try:
            sock.settimeout(1)
            while data := sock.recv(4096):
                answer += data
        except OSError:
            pass  # reset: the server closed with our bytes unread
        self.closed[sock] = (time.monotonic() - self.started, answer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def timed(call: object) -> tuple[float, object]:
    start = time.monotonic()
    result = call()  # type: ignore[operator]
    return time.monotonic() - start, result


def healthz(server: Server) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=60) as r:
        return int(r.status)


@pytest.mark.slow
def test_slow_clients_hold_no_thread(patient_server: Server) -> None:
    """Twice as many slow sockets of each kind as the server has threads, none closed by
    the server before the other clients are answered: they held no thread."""
    slow = SlowClients(patient_server, SLOW_SOCKETS)
    try:
        wait_until(
            lambda: connections_accepted(patient_server.port) >= len(slow.sockets),
            "every slow socket accepted",
        )
        assert healthz(patient_server) == 200
        assert patient_server.post("/while-slow") == 202
        assert not slow.closed, "answered only once slow sockets were closed"
    finally:
        slow.close()
    assert_stored(patient_server, "/while-slow")


@pytest.mark.slow
def test_slow_clients_are_closed_after_their_timeout(server: Server) -> None:
    slow = SlowClients(server, SLOW_SOCKETS)
    try:
        # Every slow socket accepted and trickling (one closed already was accepted too).
        wait_until(
            lambda: slow.closed or connections_accepted(server.port) >= len(slow.sockets),
            "every slow socket accepted",
        )
        deadline = time.monotonic() + HEADER_SECONDS + BODY_SECONDS + 30
        while len(slow.closed) < len(slow.sockets) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(slow.closed) == len(slow.sockets), "slow sockets left open"
        for at, answer in slow.closed.values():
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
            assert at >= HEADER_SECONDS - 1  # not before their time
        answers = [answer for _, answer in slow.closed.values()]
        assert any(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    finally:
        slow.close()


def assert_stored(server: Server, *paths: str) -> None:
    """Every 202 is stored (by the spool writer, within a few seconds)."""
    deadline = time.monotonic() + 30
    while not set(paths) <= server.stored_paths() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(paths) <= server.stored_paths()


@pytest.mark.slow
def test_clients_that_never_close_do_not_stall_the_event_loop(server: Server) -> None:
    """After a last answer the server reads what the client still sends until it closes;
    gthread did so with blocking reads in its event loop, 2 s a connection."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(SLOW_SOCKETS)]
    try:
        for sock in silent:
            sock.sendall(request)  # and neither read the answer nor close
        time.sleep(0.5)
        seconds, status = timed(lambda: healthz(server))
        assert status == 200 and seconds < ANSWER_SECONDS
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.slow
def test_clients_that_do_not_read_their_answers_do_not_hold_threads_for_ever(
    server: Server,
) -> None:
    """Pipelined requests for a stylesheet (megabytes of answers, more than the socket
    buffers hold) and nothing read: a thread writing to such a client gives up once a write
    makes no progress for the body timeout. One such client for each thread of both
    workers. Such a thread was seen held about three timeouts (17 s with 5 s, on a quiet
    machine), not one: likely the kernel taking a few bytes now and then, each write that
    progresses restarting the timeout. Bounded, not by one timeout."""
    request = b"GET /assets/app.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    readers = []
    for _ in range(THREADS):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        sock.send(request * 1000)  # as much as the server takes before its thread blocks
        readers.append(sock)
    try:
        time.sleep(BODY_SECONDS + 2)  # every thread's write has given up
        seconds, status = timed(lambda: healthz(server))
        assert status == 200 and seconds < ANSWER_SECONDS
    finally:
        for sock in readers:
            sock.close()


@pytest.mark.slow
def test_requests_arriving_in_pieces_within_the_timeouts_are_served(server: Server) -> None:
    body = event_body("/pieces")
    head = beacon_head(len(body))
    answer = raw_request(server, head[:20], head[20:], body[:5], body[5:], pause=PIECE_SECONDS)
    assert answer.startswith(b"HTTP/1.1 202 ")

    chunked = beacon_head(0).replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    body = event_body("/chunked")
    chunks = [b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])]
    answer = raw_request(server, chunked, *chunks, b"0\r\n\r\n", pause=PIECE_SECONDS)
    assert answer.startswith(b"HTTP/1.1 202 ")
    assert_stored(server, "/pieces", "/chunked")


@pytest.mark.slow
def test_keep_alive_pipelining_and_expect_100_continue(server: Server) -> None:
    get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    close = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer = raw_request(server, get + get[:10], get[10:] + close, pause=PIECE_SECONDS)
    assert answer.count(b"HTTP/1.1 200 ") == 3

    body = event_body("/continue")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(beacon_head(len(body), b"Expect: 100-continue", b"Connection: close"))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before the body
        sock.sendall(body)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 202 ")
    assert b"100 Continue" not in answer  # once, not again from gunicorn
    assert_stored(server, "/continue")


@pytest.mark.slow
def test_a_body_over_the_limit_is_refused_at_once(server: Server) -> None:
    head = beacon_head(MAX_BODY_BYTES + 1)
    seconds, answer = timed(lambda: raw_request(server, head))
    assert answer.startswith(b"HTTP/1.1 413 ")  # type: ignore[union-attr]
    assert seconds < ANSWER_SECONDS
