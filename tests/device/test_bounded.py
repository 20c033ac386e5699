"""The bounded-read helpers: Retry-After, backoff, JSON from outside, the capped event
stream and the one redaction helper (issue 10 items 3-6)."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from stamp.device.transport.bounded import (
    MIN_RETRY_WAIT,
    BadJSON,
    backoff,
    decode_json,
    retry_after,
)
from stamp.device.transport.cloud_events import (
    MAX_EVENT,
    CloudEvent,
    Discarded,
    iter_cloud_events,
    parse_cloud_event,
)
from stamp.redact import RedactingStream, add_secret, redact


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        ("2.5", 2.5),
        ("-5", 0.0),
        ("nan", None),
        ("inf", None),
        ("-inf", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert retry_after(header) == expected


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=90)
    seconds = retry_after(format_datetime(later, usegmt=True))
    assert seconds is not None and 85 <= seconds <= 91


def test_backoff_is_floored_exponential_jittered_and_capped() -> None:
    rng = random.Random(1)
    waits = [backoff(0.0, attempt, cap=30.0, rng=rng) for attempt in range(8)]
    assert all(w >= MIN_RETRY_WAIT for w in waits)
    assert waits[0] < waits[2] < waits[4]
    assert all(w <= 30.0 * 1.25 for w in waits)
    assert backoff(None, 0, cap=30.0, rng=rng) >= 2.0
    assert len({backoff(5.0, 0, cap=30.0, rng=rng) for _ in range(10)}) > 1  # jitter


@pytest.mark.parametrize(
    "data",
    [b"[" * 100_000 + b"]" * 100_000, b'{"ttl": ' + b"9" * 5000 + b"}", b"\xff\xfe", b"{", b""],
)
def test_outside_json_fails_one_way(data: bytes) -> None:
    with pytest.raises(BadJSON):
        decode_json(data)


def _events(stream: bytes, step: int = 7) -> list[CloudEvent | Discarded]:
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
    return list(iter_cloud_events(chunks))


def test_event_stream_parsing() -> None:
    stream = (
        b':ok\n\nevent: spark/status\ndata: {"data":"online","ttl":60}\n\n'
        b'event: stamp\r\ndata: {"data":"a",\r\ndata: "ttl":"61"}\r\n\r\n'
        b"data: no name\n\n"
    )
    events = _events(stream)
    assert events == [
        CloudEvent(name="spark/status", data="online", ttl=60),
        CloudEvent(name="stamp", data="a", ttl=61),
    ]


def test_an_endless_line_is_discarded_once_without_growing() -> None:
    def endless() -> Iterator[bytes]:
        yield b"event: stamp\ndata: "
        for _ in range(2000):  # 16 MB without a newline
            yield b"x" * 8192

    events = list(iter_cloud_events(endless()))
    assert events == [Discarded("stamp")]


def test_endless_data_lines_are_discarded_then_the_next_event_is_heard() -> None:
    stream = b"event: stamp\n" + (b"data: " + b"y" * 100 + b"\n") * (MAX_EVENT // 50)
    stream += b'\nevent: next\ndata: {"data":"ok"}\n\n'
    assert _events(stream, 4096) == [Discarded("stamp"), CloudEvent(name="next", data="ok")]


@pytest.mark.parametrize(
    "payload",
    [
        '{"data":' + "[" * 1500 + "]" * 1500 + "}",
        '{"data":"x","ttl":' + "9" * 5000 + "}",
        '{"data":"x","ttl":"' + "9" * 5000 + '"}',
        '{"data":"x","ttl":true}',
        '{"data":"x","ttl":-1}',
    ],
)
def test_hostile_envelopes_parse_without_error(payload: str) -> None:
    event = parse_cloud_event("stamp", payload)
    assert event.ttl is None


def test_redaction_everywhere() -> None:
    secret = "redact-me-7d1f0a9c3b"
    add_secret(secret)
    add_secret("short")  # too short to be a token: never masked
    assert redact(f"name {secret}!") == "name …!"
    assert redact("x?access_token=abc&y=1") == "x?access_token=…&y=1"
    assert redact("short stays") == "short stays"
    out = io.StringIO()
    stream = RedactingStream(out)
    stream.write(f"device {secret} online\n")
    assert out.getvalue() == "device … online\n"
    assert not hasattr(stream, "buffer")  # click cannot write around it
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]
    assert parse_cloud_event(f"x/{secret}", f'{{"data":"{secret}"}}') == CloudEvent(
        name="x/…", data="…"
    )
