"""The `@stamp {json}` line protocol: table tests and hostile byte streams."""

from __future__ import annotations

import random

import pytest

from stamp.device.report_line import (
    MAX_LINE,
    LineScanner,
    Report,
    ReportError,
    ReportScanner,
    parse_json_report,
    parse_report_line,
)
from stamp.identity import Identity

GIT = "0123456789abcdef0123456789abcdef01234567"
LINE = f'@stamp {{"edit":111,"git":"{GIT}","dirty":false,"build_id":"ABCDEF12"}}'


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (LINE, Report(Identity(edit=111, git=GIT, dirty=False, build_id="abcdef12"), "serial")),
        (
            LINE + "\r",
            Report(Identity(edit=111, git=GIT, dirty=False, build_id="abcdef12"), "serial"),
        ),
        (
            "[00:01.234] app: " + LINE,
            Report(Identity(edit=111, git=GIT, dirty=False, build_id="abcdef12"), "serial"),
        ),
        ('@stamp {"edit":1}', Report(Identity(edit=1), "serial")),
        ('@stamp {"git":"unknown"}', Report(Identity(git="unknown"), "serial")),
        (
            '@stamp {"edit":2,"fw":"1.2.3","extra":{"a":1}}',
            Report(Identity(edit=2), "serial", extra={"fw": "1.2.3", "extra": {"a": 1}}),
        ),
        ("boot: hello", None),
        ("@stampede", None),
        ("", None),
    ],
)
def test_parse_line(line: str, expected: Report | None) -> None:
    assert parse_report_line(line.encode()) == expected


@pytest.mark.parametrize(
    "line",
    [
        "@stamp ",
        "@stamp {",
        "@stamp []",
        '@stamp {"edit":"111"}',
        '@stamp {"edit":-1}',
        '@stamp {"edit":true}',
        '@stamp {"dirty":"no"}',
        '@stamp {"git":"xyz"}',
        '@stamp {"build_id":12}',
        "@stamp {'edit': 1}",
    ],
)
def test_invalid_reports(line: str) -> None:
    with pytest.raises(ReportError):
        parse_report_line(line.encode())


def test_cloud_json_without_prefix() -> None:
    report = parse_json_report('{"edit":5,"app_hash":"AA"}', "cloud event stamp")
    assert (
        report.identity.edit == 5
        and report.identity.app_hash == "aa"
        and report.source == "cloud event stamp"
    )
    assert report.identity.known() == {"edit": 5, "app_hash": "aa"}


def test_stream_split_at_every_byte() -> None:
    stream = b"noise\r\nmore noise\n" + LINE.encode() + b"\r\ntrailing\n"
    scanner = ReportScanner()
    found = []
    for i in range(len(stream)):
        found += scanner.feed(stream[i : i + 1])
    assert [r.identity.edit for r in found] == [111]
    assert scanner.lines == 4


def test_random_chunking_finds_every_report() -> None:
    rng = random.Random(7)
    parts = []
    for i in range(200):
        parts.append(bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 80))) + b"\n")
        parts.append(f'@stamp {{"edit":{i}}}\n'.encode())
    stream = b"".join(parts)
    scanner = ReportScanner()
    found = []
    pos = 0
    while pos < len(stream):
        step = rng.randrange(1, 300)
        found += scanner.feed(stream[pos : pos + step])
        pos += step
    assert [r.identity.edit for r in found] == list(range(200))


def test_overlong_lines_are_dropped_whole() -> None:
    scanner = ReportScanner()
    too_long = b"@stamp " + b'{"edit":1,"pad":"' + b"x" * MAX_LINE + b'"}\n'
    assert scanner.feed(too_long) == []
    assert scanner.scanner.overlong == 1
    # the next line is parsed normally: the discard ended at the newline
    assert [r.identity.edit for r in scanner.feed(LINE.encode() + b"\n")] == [111]


def test_ten_megabytes_without_newline_stay_bounded() -> None:
    scanner = LineScanner()
    chunk = bytes(range(256)).replace(b"\n", b"") * 256
    fed = 0
    while fed < 10 * 1024 * 1024:
        assert scanner.feed(chunk) == []
        fed += len(chunk)
        assert len(scanner._buf) <= MAX_LINE + 1  # room for the \r of a \r\n ending
    assert scanner.feed(b"\n" + LINE.encode() + b"\n") == [LINE.encode()]


def test_invalid_utf8_and_json_are_ignored_and_counted() -> None:
    scanner = ReportScanner()
    stream = b'\xff\xfe garbage\n@stamp {not json}\n@stamp {"edit":\xff}\n' + LINE.encode() + b"\n"
    assert [r.identity.edit for r in scanner.feed(stream)] == [111]
    assert scanner.invalid == 2


@pytest.mark.parametrize("chunk", [None, 1, 7, 511])
def test_a_512_byte_line_ending_in_crlf_is_accepted(chunk: int | None) -> None:
    """The `\\r` of `\\r\\n` is not counted toward the 512 bytes (issue 10 item 15)."""
    head = b'@stamp {"edit":5,"pad":"'
    line = head + b"x" * (MAX_LINE - len(head) - 2) + b'"}'
    assert len(line) == MAX_LINE
    for ending in (b"\n", b"\r\n"):
        stream = line + ending
        scanner = ReportScanner()
        step = chunk or len(stream)
        found = [r for i in range(0, len(stream), step) for r in scanner.feed(stream[i : i + step])]
        assert [r.identity.edit for r in found] == [5], ending
    longer = ReportScanner()
    assert longer.feed(b"x" + line + b"\r\n") == []  # 513 bytes stay too long
    assert longer.scanner.overlong == 1
