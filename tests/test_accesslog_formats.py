"""Access-log lines in, requests out: each format, its edges, detection, files."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tracker.accesslog.files import (
    LogFileError,
    lines_with_head,
    open_log,
    recognise,
    sample,
    text,
)
from tracker.accesslog.formats import (
    _CLF,
    COMBINED,
    COMMON,
    LineError,
    LogFormatError,
    Request,
    _split_combined,
    caddy_parser,
    clf_time,
    detect,
    named_format,
    nginx_format,
    parse_combined,
    parse_common,
)

UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)
PARIS = ZoneInfo("Europe/Paris")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'203.0.113.9 - - [10/Oct/2026:13:55:36 -0700] "GET /a?utm_source=x HTTP/1.1" 200 2326 '
            f'"https://www.google.com/" "{UA}"',
            Request(
                "203.0.113.9",
                ms("2026-10-10T20:55:36+00:00"),
                "GET",
                "/a?utm_source=x",
                200,
                "https://www.google.com/",
                UA,
            ),
        ),
        (  # IPv6, a user, "-" size, referrer and user agent
            '2001:db8::7 - frank [01/Jan/2026:00:00:01 +0000] "HEAD / HTTP/1.0" 304 - "-" "-"',
            Request("2001:db8::7", ms("2026-01-01T00:00:01+00:00"), "HEAD", "/", 304, "", ""),
        ),
        (  # Apache's vhost_combined: host:port first
            'example.com:443 198.51.100.1 - - [01/Jan/2026:00:00:01 +0100] "GET /x HTTP/2.0" 200 '
            f'5 "-" "{UA}" extra fields',
            Request(
                "198.51.100.1",
                ms("2025-12-31T23:00:01+00:00"),
                "GET",
                "/x",
                200,
                "",
                UA,
                host="example.com",
            ),
        ),
        (  # escaped quotes and a non-ASCII byte as Apache escapes them
            '198.51.100.1 - - [01/Jan/2026:00:00:01 +0000] "GET /caf\\xc3\\xa9 HTTP/1.1" 200 5 '
            '"-" "Mozilla/5.0 \\"Fancy\\" \\\\ Browser"',
            Request(
                "198.51.100.1",
                ms("2026-01-01T00:00:01+00:00"),
                "GET",
                "/café",
                200,
                "",
                'Mozilla/5.0 "Fancy" \\ Browser',
            ),
        ),
        (  # junk on a plain-HTTP port: a line, not a request
            '198.51.100.1 - - [01/Jan/2026:00:00:01 +0000] "\\x16\\x03\\x01" 400 0 "-" "-"',
            Request(
                "198.51.100.1", ms("2026-01-01T00:00:01+00:00"), "", "\x16\x03\x01", 400, "", ""
            ),
        ),
    ],
)
def test_combined(line: str, expected: Request) -> None:
    assert parse_combined(line) == expected


def test_common_has_no_user_agent() -> None:
    line = '198.51.100.1 - - [01/Jan/2026:00:00:01 +0000] "GET /x HTTP/1.1" 200 5'
    assert parse_common(line) == Request(
        "198.51.100.1", ms("2026-01-01T00:00:01+00:00"), "GET", "/x", 200, "", None
    )
    with pytest.raises(LineError, match="common-format line"):
        parse_combined(line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "not a combined or common log line"),
        ("garbage in, garbage out", "not a combined or common log line"),
        (
            '1.2.3.4 - - [32/Foo/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "-"',
            "time: '32/Foo/2026:00:00:01 +0000' is not like",
        ),
        ('1.2.3.4 - - [01/Jan/2026:00:00:01] "GET / HTTP/1.1" 200 5 "-" "-"', "time:"),
    ],
)
def test_malformed_combined(line: str, message: str) -> None:
    with pytest.raises(LineError, match=re.escape(message)):
        parse_combined(line)


@pytest.mark.parametrize(
    "line",
    [
        f'203.0.113.9 - - [10/Oct/2026:13:55:36 -0700] "GET /a HTTP/1.1" 200 23 "-" "{UA}"',
        f'h:80 203.0.113.9 - - [10/Oct/2026:13:55:36 -0700] "GET /a HTTP/1.1" 200 2 "-" "{UA}" "x"',
        'a b c [d [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "-"',  # a "[" in a name
        'a b c[ d [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "-"',
        'a b c d e [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "-"',  # a name too many
        'a\tb - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "-"',  # a tab
        'a - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 2²00 5 "-" "-"',  # not a digit
        'a - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-""-"',
        'a - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200  5 "-" "-"',
        'a - - [10/Oct"2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "-"',
        'a - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "\\"',
    ],
)
def test_combined_plain_split_reads_what_the_pattern_reads(line: str) -> None:
    """Plain lines are split without the regex: the same fields, or left to the regex."""
    match = _CLF.match(line)
    assert _split_combined(line) in (None, match.groups() if match else None)


def test_clf_times_sharing_a_minute() -> None:
    for moment in ("10/Oct/2026:13:55:36 -0700", "10/Oct/2026:13:55:07 -0700"):
        expected = ms(f"2026-10-10T13:55:{moment[18:20]}-07:00")
        assert clf_time(moment) == expected
        assert clf_time(moment.replace("-0700", "+0100")) == expected - 8 * 3_600_000
    with pytest.raises(LineError):
        clf_time("10/Oct/2026:13:55:xx -0700")


NGINX_MAIN = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" "$http_x_forwarded_for"'
)


def test_nginx_format_prefers_the_forwarded_address() -> None:
    parse = nginx_format(NGINX_MAIN).parse
    line = (
        '10.0.0.2 - - [10/Oct/2026:13:55:36 +0200] "GET /p HTTP/1.1" 200 5 "-" '
        '"Moz\\x22illa" "198.51.100.7, 10.0.0.1"'
    )
    assert parse(line) == Request(
        "198.51.100.7", ms("2026-10-10T11:55:36+00:00"), "GET", "/p", 200, "", 'Moz"illa'
    )
    direct = line.replace('"198.51.100.7, 10.0.0.1"', '"-"')
    assert parse(direct).ip == "10.0.0.2"


def test_nginx_format_with_its_own_fields() -> None:
    fmt = nginx_format(
        "$host $time_iso8601 $request_method $request_uri $status "
        '$sent_http_content_type $remote_addr "$http_user_agent" $request_time',
        PARIS,
    )
    line = f'example.com 2026-03-29T02:30:00+02:00 GET /a?b=1 200 text/css 2001:db8::1 "{UA}" 0.01'
    assert fmt.parse(line) == Request(
        "2001:db8::1",
        ms("2026-03-29T00:30:00+00:00"),
        "GET",
        "/a?b=1",
        200,
        "",
        UA,
        host="example.com",
        content_type="text/css",
    )
    assert fmt.logs_user_agent


def test_nginx_format_epoch_times_and_no_user_agent() -> None:
    fmt = nginx_format("$msec $remote_addr $request $status")
    assert not fmt.logs_user_agent
    with pytest.raises(LineError, match="not a line of the given nginx log_format"):
        fmt.parse("nonsense")
    with pytest.raises(LineError, match="time: 'soon' is not seconds"):
        fmt.parse("soon 1.2.3.4 GET 200")


@pytest.mark.parametrize(
    ("log_format", "missing"),
    [
        ("$time_local $request $status", r"an address \(\$remote_addr\)"),
        ("$remote_addr $request_method $status", "a time .*, a request"),
        ('$remote_addr [$time_local] "$request"', r"a status \(\$status\)"),
    ],
)
def test_nginx_format_names_what_it_lacks(log_format: str, missing: str) -> None:
    with pytest.raises(LogFormatError, match=f"log format: needs {missing}"):
        nginx_format(log_format)


def caddy_line(ts: object = 1_767_225_601.5, **request: object) -> str:
    return json.dumps(
        {
            "level": "info",
            "ts": ts,
            "logger": "http.log.access",
            "request": {
                "client_ip": "2001:db8::9",
                "method": "GET",
                "host": "example.com:8443",
                "uri": "/docs?utm_source=x",
                "headers": {"User-Agent": [UA], "Referer": ["https://duckduckgo.com/"]},
                **request,
            },
            "status": 200,
            "resp_headers": {"Content-Type": ["text/html; charset=utf-8"]},
        }
    )


def test_caddy() -> None:
    parse = caddy_parser(UTC)
    assert parse(caddy_line()) == Request(
        "2001:db8::9",
        1_767_225_601_500,
        "GET",
        "/docs?utm_source=x",
        200,
        "https://duckduckgo.com/",
        UA,
        host="example.com",
        content_type="text/html; charset=utf-8",
    )
    older = caddy_line(client_ip=None, remote_addr="[2001:db8::5]:51234")
    assert parse(older).ip == "2001:db8::5"
    with pytest.raises(LineError, match="not a JSON object"):
        parse("{")
    with pytest.raises(LineError, match="no request object"):
        parse('{"msg": "tls handshake"}')


def test_caddy_times_without_offset_are_local_across_dst() -> None:
    parse = caddy_parser(PARIS)
    # Paris leaves summer time at 03:00 on 2026-10-25: 02:59 +02:00 then 02:00 +01:00 (fold).
    summer = parse(caddy_line("2026/10/24 23:30:00.000"))
    assert summer.timestamp_ms == ms("2026-10-24T21:30:00+00:00")
    winter = parse(caddy_line("2026-10-25T23:30:00"))
    assert winter.timestamp_ms == ms("2026-10-25T22:30:00+00:00")
    with_offset = caddy_parser(PARIS)(caddy_line("2026-10-25T23:30:00Z"))
    assert with_offset.timestamp_ms == ms("2026-10-25T23:30:00+00:00")


def test_named_formats() -> None:
    assert named_format("combined", UTC) is COMBINED
    assert named_format("common", UTC) is COMMON
    with pytest.raises(LogFormatError, match="--format nginx needs --log-format"):
        named_format("nginx", UTC)


COMBINED_LINE = f'198.51.100.1 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "{UA}"'
COMMON_LINE = '198.51.100.1 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5'


@pytest.mark.parametrize(
    ("sample", "name"),
    [
        ([COMBINED_LINE] * 3 + ["junk"], "combined"),
        ([COMMON_LINE] * 3, "common"),
        ([caddy_line()] * 2, "caddy"),
        (["junk", "junk", COMBINED_LINE], None),
    ],
)
def test_detect(sample: list[str], name: str | None) -> None:
    found = detect(sample, UTC)
    assert (found.name if found else None) == name


def test_files_plain_gzip_long_lines_and_bad_bytes(tmp_path: Path) -> None:
    long_agent = UA + " x" * 6000  # a line of over 12 KB
    content = (
        COMBINED_LINE.encode()
        + b"\n"
        + COMBINED_LINE.replace(UA, long_agent).encode()
        + b"\r\n"
        + COMBINED_LINE.replace("GET / ", "GET /caf\xe9 ").encode("latin-1")
        + b"\n"
    )
    plain, packed = tmp_path / "access.log", tmp_path / "access.log.2.gz"
    plain.write_bytes(content)
    packed.write_bytes(gzip.compress(content))
    for path in (plain, packed):
        log = open_log(str(path))
        head, lines = lines_with_head(log)
        assert recognise(log.name, sample(head), UTC) is COMBINED
        requests = [parse_combined(text(line)) for line in lines]
        assert log.size == path.stat().st_size
        assert log.position() == path.stat().st_size
        log.close()
        assert [r.user_agent for r in requests] == [UA, long_agent, UA]
        assert requests[2].target == "/caf\ufffd"


def test_files_errors(tmp_path: Path) -> None:
    with pytest.raises(LogFileError, match="missing.log: No such file"):
        open_log(str(tmp_path / "missing.log"))
    path = tmp_path / "notes.txt"
    path.write_text("dear diary\n")
    log = open_log(str(path))
    head, _ = lines_with_head(log)
    with pytest.raises(LogFileError, match="notes.txt: the first lines are not in a format"):
        recognise(log.name, sample(head), UTC)
    log.close()
