"""Access-log line formats: one line of text in, one `Request` out, or `LineError`.

- `combined`: Apache's and nginx's default (`%h %l %u %t "%r" %>s %b "%{Referer}i"
  "%{User-agent}i"`), optionally preceded by the virtual host (Apache's `vhost_combined`,
  `%v:%p`, or nginx's `$host`); fields after the user agent are ignored.
- `common`: the same without referrer and user agent (anything after the size is ignored).
- `nginx`: a custom nginx `log_format` string (`nginx_format`), compiled to a regex.
- `caddy`: Caddy's JSON access log, one object per line.

Every format's time carries its UTC offset except Caddy's "wall" and offset-less ISO
times, which are read in the time zone given (`--timezone`). Quoted fields are unescaped
as the servers escape them (`\\"`, `\\\\`, `\\xHH`). A line that is not of its format is a
`LineError` saying what is wrong, never an exception of the parser's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Any

MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# A quoted field: anything but quotes, with backslash escapes (unrolled: no per-character
# alternation, which costs Python's regex engine several times more).
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
_CLF = re.compile(
    r"(?:(\S+) )?(\S+) \S+ \S+ \[([^\]]*)\] "
    rf'"({_QUOTED})" (\d{{3}}) (\S+)(?: "({_QUOTED})" "({_QUOTED})")?'
)
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)")
MINUTES_KEPT = 4096
_minutes: dict[str, int] = {}  # epoch ms of a CLF time's minute, by its text without seconds


class LineError(ValueError):
    """A line that is not of its format; the message says what is wrong."""


class LogFormatError(ValueError):
    """A format that cannot be used (an nginx log_format lacking a needed variable)."""


@dataclass(slots=True)
class Request:
    """One logged request, as the server saw it."""

    ip: str
    timestamp_ms: int
    method: str
    target: str  # path and query, as requested
    status: int
    referrer: str = ""
    user_agent: str | None = None  # None: the format does not log it
    host: str = ""  # the virtual host, when logged
    content_type: str = ""  # the response's, when logged


LineParser = Callable[[str], Request]


@dataclass(frozen=True)
class LogFormat:
    name: str
    parse: LineParser
    logs_user_agent: bool = True


def unescape(value: str) -> str:
    """A quoted field as sent: `\\"` -> `"`, `\\xHH` -> the byte (bytes as UTF-8)."""
    if "\\" not in value:
        return value
    raw = value.encode("utf-8", "surrogateescape")
    raw = _ESCAPE.sub(lambda m: _unescaped(m.group(1)), raw)
    return raw.decode("utf-8", "replace")


def _unescaped(code: bytes) -> bytes:
    if len(code) == 3:
        return bytes((int(code[1:], 16),))
    return {b"n": b"\n", b"t": b"\t"}.get(code, code)


def dash(value: str) -> str:
    """A logged value, "" for the servers' "-" (nothing sent)."""
    return "" if value == "-" else value


def split_request(line: str) -> tuple[str, str]:
    """(method, target) of a request line ("GET /a?b HTTP/1.1"); ("", line) for junk such as
    a TLS handshake sent to a plain-HTTP port (the filter drops it by its method)."""
    parts = line.split(" ")
    if len(parts) in (2, 3) and parts[0].isalpha():
        return parts[0], parts[1]
    return "", line


def strip_port(host: str) -> str:
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not name.endswith(":"):
        return name.removeprefix("[").removesuffix("]")
    return host


@lru_cache(maxsize=4096)
def _day_start(day: str, offset: str) -> int:
    """Epoch seconds of 00:00 of `10/Oct/2000` at UTC offset `-0700` (a log repeats both)."""
    sign = {"+": 1, "-": -1}[offset[0]]
    days = date(int(day[7:11]), MONTHS[day[3:6]], int(day[0:2])).toordinal() - _EPOCH_ORDINAL
    return days * 86_400 - sign * (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60)


def clf_time(text: str) -> int:
    """Epoch ms of `10/Oct/2000:13:55:36 -0700` (Apache's %t, nginx's $time_local)."""
    # A log's lines share their minute with their neighbours: that part is read once.
    minute = _minutes.get(text[:17] + text[20:]) if len(text) == 26 else None
    if minute is not None and text[18:20].isdecimal():
        return minute + int(text[18:20]) * 1000
    try:
        if len(text) != 26 or text[2] != "/" or text[11] != ":" or text[20] != " ":
            raise ValueError
        minute = (_day_start(text[:11], text[21:]) + int(text[12:14]) * 3600) * 1000
        minute += int(text[15:17]) * 60_000
        ms = minute + int(text[18:20]) * 1000
    except (ValueError, KeyError):
        raise LineError(f"time: {text[:40]!r} is not like 10/Oct/2026:13:55:36 +0200") from None
    if len(_minutes) >= MINUTES_KEPT:
        _minutes.clear()
    _minutes[text[:17] + text[20:]] = minute
    return ms


def iso_time(text: str, zone: tzinfo) -> int:
    """Epoch ms of an ISO 8601 time; one without an offset is local time in `zone`."""
    try:
        moment = datetime.fromisoformat(text.replace("/", "-", 2))
    except ValueError:
        raise LineError(f"time: {text[:40]!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)


def epoch_time(text: str) -> int:
    """Epoch ms of seconds since 1970 (`1700000000.123`, nginx's $msec)."""
    try:
        return int(float(text) * 1000)
    except ValueError:
        raise LineError(f"time: {text[:40]!r} is not seconds since 1970") from None


def _status(text: str) -> int:
    if len(text) != 3 or not text.isdigit():
        raise LineError(f"status: {text[:20]!r} is not an HTTP status")
    return int(text)


def _clf(line: str, *, with_agent: bool) -> Request:
    fields = _split_combined(line) if with_agent else None
    if fields is None:
        match = _CLF.match(line)
        if match is None:
            raise LineError("not a combined or common log line")
        fields = match.groups()
    host, ip, time, request, status, _size, referrer, agent = fields
    if with_agent and agent is None:
        raise LineError("no referrer and user agent (a common-format line)")
    method, target = split_request(unescape(request))
    return Request(
        ip=ip,
        timestamp_ms=clf_time(time),
        method=method,
        target=target,
        status=int(status),
        referrer=dash(unescape(referrer)) if with_agent else "",
        user_agent=dash(unescape(agent)) if with_agent else None,
        host=strip_port(host) if host else "",
    )


def _split_combined(line: str) -> tuple[str | Any, ...] | None:
    """The fields `_CLF` would match in a plain combined line, found with `str.split` (several
    times cheaper than the regex); None for anything less plain (escaped quotes, missing or
    odd fields), which the regex then reads or refuses."""
    if "\\" in line:
        return None
    parts = line.split('"', 6)
    if len(parts) < 7 or parts[4] != " " or not parts[0].endswith("] "):
        return None
    head, bracket, time = parts[0][:-2].partition(" [")
    names = head.split(" ")
    if not bracket or "]" in time or "[" in time or not head.isprintable():
        return None
    middle = parts[2].split(" ")
    if len(middle) != 4 or middle[0] or middle[3] or len(middle[1]) != 3:
        return None
    status, size = middle[1], middle[2]
    if not status.isdecimal() or not size.isprintable() or not size:
        return None
    if not 3 <= len(names) <= 4 or not all(names):
        return None
    host = names[0] if len(names) == 4 else None
    return host, names[-3], time, parts[1], status, size, parts[3], parts[5]


def parse_combined(line: str) -> Request:
    fields = _split_combined(line)
    if fields is None:
        return _clf(line, with_agent=True)
    # A plain line has no backslash, so no field has anything to unescape; and one call
    # fewer per field counts at 100,000 lines a second.
    host, ip, time, request, status, _size, referrer, agent = fields
    method, target = split_request(request)
    return Request(
        ip,
        clf_time(time),
        method,
        target,
        int(status),
        "" if referrer == "-" else referrer,
        "" if agent == "-" else agent,
        strip_port(host) if host else "",
    )


def parse_common(line: str) -> Request:
    return _clf(line, with_agent=False)


def _first(headers: Any, name: str) -> str:
    values = headers.get(name) if isinstance(headers, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return ""


def caddy_parser(zone: tzinfo) -> LineParser:
    """Caddy's JSON access log (`log { format json }`), times in `zone` when they have no
    offset (`time_format wall` or an ISO layout without zone)."""

    def parse(line: str) -> Request:
        try:
            entry = json.loads(line)
        except ValueError:
            raise LineError("not a JSON object") from None
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise LineError("no request object (not a Caddy access log line)")
        ip = request.get("client_ip") or request.get("remote_ip")
        if not ip:
            ip = strip_port(str(request.get("remote_addr", "")))
        ts = entry.get("ts")
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            timestamp_ms = int(ts * 1000)
        elif isinstance(ts, str):
            timestamp_ms = iso_time(ts, zone)
        else:
            raise LineError("ts: missing")
        status = entry.get("status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise LineError("status: missing")
        headers = request.get("headers")
        return Request(
            ip=str(ip),
            timestamp_ms=timestamp_ms,
            method=str(request.get("method", "")),
            target=str(request.get("uri", "")),
            status=status,
            referrer=_first(headers, "Referer"),
            user_agent=_first(headers, "User-Agent"),
            host=strip_port(str(request.get("host", ""))),
            content_type=_first(entry.get("resp_headers"), "Content-Type"),
        )

    return parse


# nginx variables and what each gives; others in a log_format are matched and ignored.
_ADDRESS = ("http_x_forwarded_for", "remote_addr")  # the first logged wins
_HOSTS = ("host", "http_host", "server_name")
_TIMES = ("time_local", "time_iso8601", "msec")
_REQUESTS = ("request", "request_method+request_uri", "request_method+uri")
_NEEDED = (
    ("an address ($remote_addr)", _ADDRESS),
    ("a time ($time_local, $time_iso8601 or $msec)", _TIMES),
    ("a request ($request, or $request_method and $request_uri)", _REQUESTS),
    ("a status ($status)", ("status",)),
)
_NGINX_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def nginx_format(log_format: str, zone: tzinfo = UTC) -> LogFormat:
    """A parser for lines written by nginx's `log_format` with this text (the part in
    quotes: `'$remote_addr - $remote_user [$time_local] "$request" ...'`).

    Each variable matches up to the character that follows it in the format (escaped
    quotes allowed inside quotes). The client is the first address of
    `$http_x_forwarded_for` when logged and sent, else `$remote_addr`."""
    pattern, names = _nginx_pattern(log_format)
    missing = [
        need
        for need, options in _NEEDED
        if not any(set(option.split("+")) <= names for option in options)
    ]
    if missing:
        raise LogFormatError(f"log format: needs {', '.join(missing)}")
    regex = re.compile(pattern)
    build = _nginx_builder(names, zone)

    def parse(line: str) -> Request:
        match = regex.match(line)
        if match is None:
            raise LineError("not a line of the given nginx log_format")
        return build(match.groupdict())

    return LogFormat("nginx", parse, logs_user_agent="http_user_agent" in names)


def _nginx_pattern(log_format: str) -> tuple[str, set[str]]:
    pieces: list[str] = []
    names: set[str] = set()
    matches = list(_NGINX_VARIABLE.finditer(log_format))
    position = 0
    for i, match in enumerate(matches):
        pieces.append(re.escape(log_format[position : match.start()]))
        name = match.group(1) or match.group(2)
        end = match.end()
        following = matches[i + 1].start() if i + 1 < len(matches) else len(log_format)
        literal = log_format[end:following]
        quoted = log_format[match.start() - 1 : match.start()] == '"' and literal[:1] == '"'
        if quoted:
            value = _QUOTED
        elif literal:
            value = f"[^{re.escape(literal[0])}]*"
        else:
            value = ".*"
        if name in names:
            pieces.append(f"(?:{value})")
        else:
            pieces.append(f"(?P<{name}>{value})")
            names.add(name)
        position = end
    pieces.append(re.escape(log_format[position:]))
    return "".join(pieces), names


def _nginx_builder(names: set[str], zone: tzinfo) -> Callable[[dict[str, str]], Request]:
    host_name = next((n for n in _HOSTS if n in names), None)
    time_name = next(n for n in _TIMES if n in names)
    read_time: Callable[[str], int] = {
        "time_local": clf_time,
        "time_iso8601": lambda text: iso_time(text, zone),
        "msec": epoch_time,
    }[time_name]
    with_agent = "http_user_agent" in names

    def build(values: dict[str, str]) -> Request:
        forwarded = dash(values.get("http_x_forwarded_for", "-"))
        ip = forwarded.split(",")[0].strip() if forwarded else values.get("remote_addr", "")
        if not ip:
            raise LineError("no client address")
        if "request" in values:
            method, target = split_request(unescape(values["request"]))
        else:
            method = values["request_method"]
            target = values.get("request_uri") or _with_args(values)
        return Request(
            ip=ip,
            timestamp_ms=read_time(values[time_name]),
            method=method,
            target=unescape(target),
            status=_status(values["status"]),
            referrer=dash(unescape(values.get("http_referer", "-"))),
            user_agent=dash(unescape(values["http_user_agent"])) if with_agent else None,
            host=strip_port(dash(values[host_name])) if host_name else "",
            content_type=dash(values.get("sent_http_content_type", "-")),
        )

    return build


def _with_args(values: dict[str, str]) -> str:
    args = dash(values.get("args") or values.get("query_string") or "-")
    return values["uri"] + ("?" + args if args else "")


COMBINED = LogFormat("combined", parse_combined)
COMMON = LogFormat("common", parse_common, logs_user_agent=False)
NAMES = ("auto", "combined", "common", "nginx", "caddy")


def named_format(name: str, zone: tzinfo, log_format: str | None = None) -> LogFormat:
    """The format called `name` (one of NAMES but "auto"); `nginx` takes its log_format."""
    if name == "nginx":
        if not log_format:
            raise LogFormatError("--format nginx needs --log-format, nginx's log_format text")
        return nginx_format(log_format, zone)
    if name == "caddy":
        return LogFormat("caddy", caddy_parser(zone))
    return {"combined": COMBINED, "common": COMMON}[name]


def detect(lines: list[str], zone: tzinfo) -> LogFormat | None:
    """The format most of these (first, non-empty) lines are in, or None."""
    candidates = [COMBINED, COMMON, LogFormat("caddy", caddy_parser(zone))]
    best, best_count = None, 0
    for candidate in candidates:
        count = sum(1 for line in lines if _parses(candidate.parse, line))
        if count > best_count:
            best, best_count = candidate, count
    return best if best_count * 2 > len(lines) else None


def _parses(parse: LineParser, line: str) -> bool:
    try:
        parse(line)
    except LineError:
        return False
    return True
