"""Referrer spam: referrers from a list of known spam hosts, or a subdomain of one.

Two lists count together: the bundled `tracker/data/spam_hosts.txt`, and
`<data_dir>/spam_hosts.txt` when it exists. `tracker spam update` (and the job
`update_spam_list`) writes the latter from setting `spam_list_url`, by default Matomo's
public-domain list (~2,300 hosts, not copied into this repository). A collector stats that
file at most every CHECK_SECONDS and reads a new version then, without a restart.

Hosts are kept lower-case and in ASCII: an internationalised name (`пример.рф`) is stored
and compared in its IDNA form (`xn--e1afmkfd.xn--p1ai`), in lists and referrers alike.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from http.client import HTTPException
from importlib import resources
from pathlib import Path
from time import monotonic
from urllib.parse import urlsplit

from tracker.enrich.source import referrer_host
from tracker.files import FileVersion, file_version

log = logging.getLogger(__name__)

FILE_NAME = "spam_hosts.txt"
CHECK_SECONDS = 30.0
MAX_BYTES = 5 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 30.0
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class SpamListError(Exception):
    """A list could not be loaded; the message, one line, says why."""


def spam_hosts_path(data_dir: str | os.PathLike[str]) -> Path:
    """The data directory's list, written by `tracker spam update`."""
    return Path(data_dir) / FILE_NAME


def normalise_host(text: str) -> str | None:
    """`text` as a lower-case ASCII host name (IDNA for Unicode ones), or None when it is
    not a host name (spaces, a URL, an IP address, a single label...)."""
    host = text.strip().rstrip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return None
    return host if all(_LABEL.fullmatch(label) for label in labels) else None


def parse_hosts(text: str) -> tuple[frozenset[str], list[str]]:
    """The hosts of a list, one a line (blank lines and `#` comments ignored), and the
    lines refused as not host names."""
    hosts: set[str] = set()
    refused: list[str] = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        host = normalise_host(entry)
        if host is None:
            refused.append(entry)
        else:
            hosts.add(host)
    return frozenset(hosts), refused


@lru_cache(maxsize=1)
def bundled_hosts() -> frozenset[str]:
    text = resources.files("tracker").joinpath(f"data/{FILE_NAME}").read_text("utf-8")
    return parse_hosts(text)[0]


def _matcher(hosts: frozenset[str]) -> Callable[[str], bool]:
    """A referrer check on `hosts`, with its own cache: a new list gets a new matcher, so no
    answer of the old list is ever given for the new one."""

    @lru_cache(maxsize=16384)
    def is_spam(referrer: str) -> bool:
        host = referrer_host(referrer)
        if not host:
            return False
        if not host.isascii():
            host = normalise_host(host) or host
        labels = host.split(".")
        return any(".".join(labels[i:]) in hosts for i in range(len(labels) - 1))

    return is_spam


@lru_cache(maxsize=1)
def _bundled_matcher() -> Callable[[str], bool]:
    return _matcher(bundled_hosts())


def is_spam_referrer(referrer: str) -> bool:
    """The referrer's host or a parent domain is on the bundled list (a collector's
    SpamList adds the data directory's)."""
    return _bundled_matcher()(referrer)


class SpamList:
    """The bundled hosts and those of `path` (`<data_dir>/spam_hosts.txt`) when it exists.

    The first referrer checked check_seconds after the last look stats the file (a thread
    finding another one at it goes on with the list in use); a new version is read and its
    matcher replaces the old one whole. A removed file leaves the bundled list; an
    unreadable one is logged and the list in use stays."""

    def __init__(self, path: Path | None = None, check_seconds: float = CHECK_SECONDS) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self.hosts = bundled_hosts()
        self._match = _bundled_matcher()
        self._seen: FileVersion | None = None
        self._next_check = 0.0
        self._checking = threading.Lock()
        self._check()

    def is_spam(self, referrer: str) -> bool:
        if monotonic() >= self._next_check:
            self._refresh()
        return self._match(referrer)

    def _refresh(self) -> None:
        if not self._checking.acquire(blocking=False):
            return
        try:
            self._check()
        finally:
            self._checking.release()

    def _check(self) -> None:
        self._next_check = monotonic() + self.check_seconds
        if self.path is None:
            return
        version = file_version(self.path)
        if version == self._seen:
            return
        self._seen = version
        extra: frozenset[str] = frozenset()
        if version is not None:
            try:
                extra = parse_hosts(self.path.read_text("utf-8"))[0]
            except (OSError, UnicodeDecodeError) as exc:
                log.warning(
                    "referrer spam list %s unreadable (%s); list in use kept", self.path, exc
                )
                return
        hosts = bundled_hosts() | extra
        self.hosts, self._match = hosts, _matcher(hosts)
        log.info("referrer spam list: %d hosts (%d from %s)", len(hosts), len(extra), self.path)


@dataclass(frozen=True)
class Update:
    """What `update` wrote."""

    source: str
    path: Path
    hosts: int
    new: int  # hosts not on the bundled list
    refused: list[str]  # lines that are not host names

    def summary(self) -> str:
        text = (
            f"Loaded {self.hosts:,} spam hosts from {self.source} into {self.path}: "
            f"{self.new:,} new, {self.hosts - self.new:,} already in the bundled list."
        )
        if self.refused:
            shown = ", ".join(repr(line[:60]) for line in self.refused[:3])
            more = ", ..." if len(self.refused) > 3 else ""
            text += f" {len(self.refused):,} lines refused, not host names: {shown}{more}."
        return text


def update(source: str, data_dir: str | os.PathLike[str]) -> Update:
    """Read the list at `source` (an http(s) URL or a file) and write its hosts to
    `<data_dir>/spam_hosts.txt`, atomically. Raises SpamListError, the old file kept."""
    body, content_type = _fetch(source)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SpamListError(f"{source}: not a text file (not UTF-8)") from None
    if content_type == "text/html" or text.lstrip().startswith("<"):
        raise SpamListError(f"{source}: an HTML page, not a list of hosts")
    hosts, refused = parse_hosts(text)
    if not hosts:
        raise SpamListError(f"{source}: no host names in it")
    if len(refused) > len(hosts):
        raise SpamListError(
            f"{source}: mostly not host names ({len(refused):,} lines refused, such as "
            f"{refused[0][:60]!r}, for {len(hosts):,} hosts)"
        )
    path = spam_hosts_path(data_dir)
    try:
        _write(path, hosts, source)
    except OSError as exc:
        raise SpamListError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Update(source, path, len(hosts), len(hosts - bundled_hosts()), refused)


def _fetch(source: str) -> tuple[bytes, str]:
    """The bytes at `source` (at most MAX_BYTES) and their content type ("" for a file)."""
    scheme = urlsplit(source).scheme.lower()
    content_type = ""
    if scheme in ("http", "https"):
        request = urllib.request.Request(source, headers={"User-Agent": "tracker (spam list)"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
                body = response.read(MAX_BYTES + 1)
                content_type = response.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            raise SpamListError(f"{source}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise SpamListError(f"{source}: unreachable ({exc.reason})") from None
        except (OSError, HTTPException, ValueError) as exc:  # a timeout, a cut connection
            raise SpamListError(
                f"{source}: download failed ({exc or type(exc).__name__})"
            ) from None
    elif scheme:
        raise SpamListError(f"{source}: not an http(s) URL or a file")
    else:
        try:
            with open(source, "rb") as fh:
                body = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise SpamListError(f"{source}: {exc.strerror or exc}") from None
    if len(body) > MAX_BYTES:
        raise SpamListError(
            f"{source}: larger than {MAX_BYTES // 1024 // 1024} MB, not a host list"
        )
    return body, content_type


def _write(path: Path, hosts: frozenset[str], source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
            fh.write(f"# Referrer spam hosts from {source}, {now} UTC (tracker spam update).\n")
            fh.write("# Counted with the bundled list; the next update replaces this file.\n")
            fh.writelines(f"{host}\n" for host in sorted(hosts))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
