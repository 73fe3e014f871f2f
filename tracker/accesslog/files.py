"""Log files as streams of lines: plain or gzip-compressed (told by their first bytes, so a
rotated `access.log.2.gz` or a compressed standard input need no flag), `-` for standard
input; and the format of a file recognised from its first lines.

Lines are bytes, read one at a time (any length, constant memory); `text` decodes one as
UTF-8 with undecodable bytes replaced, since servers log whatever bytes a client sent.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from itertools import chain
from pathlib import Path
from typing import IO, cast

from tracker.accesslog.formats import LogFormat, detect

GZIP_MAGIC = b"\x1f\x8b"
DETECT_LINES = 50
HEAD_BYTES = 4096  # how much of a file identifies it (tracker.accesslog.load)
STDIN = "-"


class LogFileError(Exception):
    """A file that cannot be read as a log; the message names it."""


@dataclass
class LogFile:
    name: str
    stream: IO[bytes]  # the log's bytes, decompressed
    size: int | None  # bytes on disk (compressed), None for a pipe
    raw: IO[bytes]  # the bytes on disk, for how far the reading got

    def position(self) -> int:
        """Bytes on disk read so far (compressed bytes of a .gz)."""
        try:
            return self.raw.tell()
        except OSError:
            return 0

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def open_log(name: str) -> LogFile:
    """Open a log file by name (`-`: standard input), decompressing gzip."""
    if name == STDIN:
        stdin = sys.stdin.buffer
        # peek() is needed to tell gzip; a test runner's stdin may be a plain BytesIO.
        raw = stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(stdin)  # type: ignore[type-var]
        size = None
    else:
        path = Path(name)
        try:
            raw = path.open("rb")
        except OSError as exc:
            raise LogFileError(f"{name}: {exc.strerror or exc}") from None
        size = os.fstat(raw.fileno()).st_size
    stream: IO[bytes] = raw
    if raw.peek(2)[:2] == GZIP_MAGIC:
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    shown = "standard input" if name == STDIN else name
    return LogFile(name=shown, stream=stream, size=size, raw=raw)


def text(line: bytes) -> str:
    """A line as text, without its end of line; bytes that are not UTF-8 become U+FFFD."""
    return line.decode("utf-8", "replace").rstrip("\r\n")


def lines_with_head(log: LogFile) -> tuple[list[bytes], Iterator[bytes]]:
    """The first lines (at least HEAD_BYTES bytes and DETECT_LINES non-empty lines, or the
    whole file), to recognise the file and its format, and all the lines."""
    head: list[bytes] = []
    size = non_empty = 0
    try:
        for line in log.stream:
            head.append(line)
            size += len(line)
            non_empty += bool(line.strip())
            if size >= HEAD_BYTES and non_empty >= DETECT_LINES:
                break
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise LogFileError(f"{log.name}: {exc}") from None
    return head, chain(head, _checked(log))


def _checked(log: LogFile) -> Iterator[bytes]:
    try:
        yield from log.stream
    except (OSError, EOFError) as exc:  # a .gz cut short
        raise LogFileError(f"{log.name}: {exc}") from None


def sample(head: list[bytes]) -> list[str]:
    """The non-empty lines of a head, as text, for `detect`."""
    return [text(line) for line in head if line.strip()][:DETECT_LINES]


def recognise(name: str, sample: list[str], zone: tzinfo) -> LogFormat:
    found = detect(sample, zone)
    if found is None:
        raise LogFileError(
            f"{name}: the first lines are not in a format known here (combined, common, "
            "caddy); give --format, or --format nginx --log-format '...' for a custom one"
        )
    return found
