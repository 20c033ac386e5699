"""A hostile Particle Cloud on loopback: misbehaves at the byte level, one mode at a time.

An asyncio server (127.0.0.1, a free port) in a thread, written at the socket level on
purpose: an HTTP framework would not send a status line one byte at a time or a body that
never ends. Each mode answers the three requests `stamp verify --device particle:ID` makes
(the device record, the `stamp` variable, the device's event stream) the way issue 10 found
a cloud can break a client. Every connection ends by `MAX_SERVE` seconds at the latest and
`stop()` (the context manager's exit) closes everything.

    with hostile_cloud("slow-status") as cloud:
        env = cloud.env(home)      # PARTICLE_API_URL / PARTICLE_ACCESS_TOKEN / HOME
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEVICE_ID = "0123456789abcdef01234567"
TOKEN = "hostile-token-5b8e2c9a71d04f36"
MAX_SERVE = 120.0
"""No connection is served longer than this."""
DRIP = 1.0
"""Seconds between the bytes of a slow-loris answer."""

Writer = asyncio.StreamWriter
Handler = Callable[["HostileCloud", str, Writer], Awaitable[None]]


def device_record(name: str = "hostile_photon") -> bytes:
    return json.dumps(
        {"id": DEVICE_ID, "name": name, "online": True, "connected": True, "platform_id": 6}
    ).encode()


def http_answer(
    body: bytes, status: str = "200 OK", kind: str = "application/json", extra: str = ""
) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


def sse_event(name: str, envelope: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + envelope + b"\n\n"


def envelope(data: str, *, ttl: str = "60") -> bytes:
    return (
        b'{"data":' + json.dumps(data).encode() + b',"ttl":' + ttl.encode() + b","
        b'"published_at":"2026-01-01T00:00:00.000Z","coreid":"' + DEVICE_ID.encode() + b'"}'
    )


async def _drip(writer: Writer, data: bytes, every: float = DRIP) -> None:
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(every)


async def _flood(writer: Writer, head: bytes, filler: bytes) -> None:
    """`head`, then `filler` as fast as the client takes it, forever."""
    writer.write(head)
    chunk = filler * max(1, 65536 // len(filler))
    while True:
        writer.write(chunk)
        await writer.drain()


async def _quiet_stream(writer: Writer) -> None:
    """An event stream that only sends keep-alives."""
    writer.write(SSE_HEAD)
    while True:
        writer.write(b":ok\n")
        await writer.drain()
        await asyncio.sleep(1.0)


async def _normal(cloud: HostileCloud, path: str, writer: Writer) -> None:
    """The answers of a cloud that behaves: a record, no variable, a quiet stream."""
    if path.endswith("/events"):
        await _quiet_stream(writer)
    elif path.endswith("/stamp"):
        writer.write(http_answer(b'{"error":"Variable not found"}', "404 Not Found"))
    else:
        writer.write(http_answer(device_record(cloud.device_name)))


def _on(predicate: Callable[[str], bool], bad: Handler) -> Handler:
    """`bad` for the requests `predicate` picks, the normal answers otherwise."""

    async def handler(cloud: HostileCloud, path: str, writer: Writer) -> None:
        await (bad if predicate(path) else _normal)(cloud, path, writer)

    return handler


def _record(path: str) -> bool:
    return path.rstrip("/").endswith(DEVICE_ID)


def _events(path: str) -> bool:
    return path.endswith("/events")


def _variable(path: str) -> bool:
    return path.endswith("/stamp")


async def _slow_status(cloud: HostileCloud, path: str, writer: Writer) -> None:
    await _drip(writer, http_answer(device_record()))


async def _slow_headers(cloud: HostileCloud, path: str, writer: Writer) -> None:
    answer = http_answer(device_record())
    writer.write(answer[:17])
    await _drip(writer, answer[17:])


async def _slow_body(cloud: HostileCloud, path: str, writer: Writer) -> None:
    answer = http_answer(device_record())
    head, _, body = answer.partition(b"\r\n\r\n")
    writer.write(head + b"\r\n\r\n")
    await _drip(writer, body)


async def _endless_body(cloud: HostileCloud, path: str, writer: Writer) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        b'{"id":"' + DEVICE_ID.encode() + b'","name":"'
    )
    await _flood(writer, head, b"a")


async def _huge_body(cloud: HostileCloud, path: str, writer: Writer) -> None:
    size = 100 * 1024 * 1024
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
    )
    writer.write(b'{"id":"' + DEVICE_ID.encode() + b'","name":"')
    sent = 0
    chunk = b"a" * 65536
    while sent < size:
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)


async def _endless_sse_line(cloud: HostileCloud, path: str, writer: Writer) -> None:
    await _flood(writer, SSE_HEAD + b"event: stamp\ndata: ", b"x")


async def _endless_data_lines(cloud: HostileCloud, path: str, writer: Writer) -> None:
    await _flood(writer, SSE_HEAD + b"event: stamp\n", b"data: " + b"y" * 200 + b"\n")


async def _slow_sse(cloud: HostileCloud, path: str, writer: Writer) -> None:
    writer.write(SSE_HEAD)
    await _drip(writer, b"event: stamp\ndata: " + b"z" * 10_000, every=DRIP / 4)


def _limited(value: str) -> Handler:
    async def handler(cloud: HostileCloud, path: str, writer: Writer) -> None:
        body = b'{"error":"Too many requests"}'
        writer.write(http_answer(body, "429 Too Many Requests", extra=f"Retry-After: {value}\r\n"))

    return handler


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def _deep_record(cloud: HostileCloud, path: str, writer: Writer) -> None:
    writer.write(http_answer(b'{"id":"' + DEVICE_ID.encode() + b'","name":' + _deep(30_000) + b"}"))


async def _deep_event(cloud: HostileCloud, path: str, writer: Writer) -> None:
    writer.write(SSE_HEAD)
    writer.write(sse_event("stamp", b'{"data":' + _deep(1500) + b"}"))
    writer.write(sse_event("stamp", envelope(_deep(1000).decode())))
    await _quiet_stream_tail(writer)


async def _deep_variable(cloud: HostileCloud, path: str, writer: Writer) -> None:
    writer.write(http_answer(b'{"name":"stamp","result":' + _deep(20_000) + b"}"))


async def _huge_ttl(cloud: HostileCloud, path: str, writer: Writer) -> None:
    writer.write(SSE_HEAD)
    writer.write(sse_event("stamp", envelope(cloud.report, ttl="9" * 5000)))
    writer.write(sse_event("stamp", envelope(cloud.report, ttl='"' + "9" * 5000 + '"')))
    await _quiet_stream_tail(writer)


async def _token_in_event(cloud: HostileCloud, path: str, writer: Writer) -> None:
    writer.write(SSE_HEAD)
    writer.write(sse_event("spark/status", envelope(f"online {TOKEN}")))
    writer.write(sse_event(f"custom/{TOKEN}", envelope(f"the token is {TOKEN}")))
    writer.write(sse_event("stamp", envelope(f'{{"edit":{TOKEN}}}')))
    await _quiet_stream_tail(writer)


async def _quiet_stream_tail(writer: Writer) -> None:
    while True:
        writer.write(b":ok\n")
        await writer.drain()
        await asyncio.sleep(1.0)


MODES: dict[str, Handler] = {
    "slow-status": _on(_record, _slow_status),
    "slow-headers": _on(_record, _slow_headers),
    "slow-body": _on(_record, _slow_body),
    "endless-body": _on(_record, _endless_body),
    "huge-body": _on(_record, _huge_body),
    "slow-stream-status": _on(_events, _slow_status),
    "endless-sse-line": _on(_events, _endless_sse_line),
    "endless-data-lines": _on(_events, _endless_data_lines),
    "slow-sse": _on(_events, _slow_sse),
    "retry-after-0": _limited("0"),
    "retry-after-nan": _limited("nan"),
    "retry-after-negative": _limited("-5"),
    "retry-after-date": _limited("Wed, 21 Oct 2015 07:28:00 GMT"),
    "retry-after-far-date": _limited("Fri, 01 Jan 2100 00:00:00 GMT"),
    "deep-record": _on(_record, _deep_record),
    "deep-event": _on(_events, _deep_event),
    "deep-variable": _on(_variable, _deep_variable),
    "huge-ttl": _on(_events, _huge_ttl),
    "token-in-name": _normal,
    "token-in-event": _on(_events, _token_in_event),
}


@dataclass
class HostileCloud:
    """A running hostile server."""

    mode: str
    report: str = ""
    """The JSON a `stamp` event carries in modes that send one."""
    device_name: str = "hostile_photon"
    port: int = 0
    requests: list[str] = field(default_factory=list)
    """Request lines received, in order."""
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, home: Path) -> dict[str, str]:
        return {"PARTICLE_API_URL": self.api_url, "PARTICLE_ACCESS_TOKEN": TOKEN, "HOME": str(home)}

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._transports.append(writer.transport)
        try:
            async with asyncio.timeout(MAX_SERVE):
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                self.requests.append(line)
                path = line.split(" ")[1] if line.count(" ") >= 2 else "/"
                await MODES[self.mode](self, path.split("?")[0], writer)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs a cancelled
            pass  # connection task as an error)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for transport in self._transports:
            # abort(), not close(): a closing transport waits to flush what a client that
            # stopped reading will never take, and would be left unclosed.
            transport.abort()  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)  # let the aborts' callbacks run before the loop stops
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)


@contextlib.contextmanager
def hostile_cloud(
    mode: str, *, report: str = "", device_name: str = "hostile_photon"
) -> Iterator[HostileCloud]:
    """Serve `mode` on a free loopback port until the block ends."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    cloud = HostileCloud(mode, report=report, device_name=device_name)
    loop = asyncio.new_event_loop()
    cloud._loop = loop
    ready = threading.Event()

    async def start() -> None:
        cloud._server = await asyncio.start_server(cloud._serve, "127.0.0.1", 0)
        cloud.port = cloud._server.sockets[0].getsockname()[1]
        ready.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name=f"hostile-cloud-{mode}", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the hostile cloud did not start")
    try:
        yield cloud
    finally:
        asyncio.run_coroutine_threadsafe(cloud._stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        gc.collect()  # an unclosed transport would warn here, in the test that made it
