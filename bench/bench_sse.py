"""Benchmark: one Particle Cloud event stream carrying events from 10,000 devices.

`stamp sim cloud --devices 10000` runs as its own process; the bench opens
`GET /v1/devices/events` and asks the simulator (POST /_sim/publish) to publish N `stamp`
events round-robin over every device, as fast as the stream takes them. Measured in
this process, in the same run:

- raw bytes: the stream read with httpx's `iter_raw()`, counting frames (the baseline:
  what the simulator and the socket deliver);
- stamp's path: `CloudClient.open_events` → `iter_cloud_events` (its bounded splitter) →
  `heard_from_event` (JSON envelope + report parse), i.e. what `CloudTransport` does
  per event;
- replay: stamp's path over the bytes captured by the raw run, from memory (no socket,
  no simulator: the client's parsing cost alone).

Events per second (median of --runs) and the peak of Python allocations (tracemalloc,
in a separate run so tracing does not slow the timed ones).
Run: .venv/bin/python bench/bench_sse.py [--events N] [--devices N] [--runs N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import machine, update_readme_section

from stamp.device.transport.base import HeardKind
from stamp.device.transport.cloud_api import CloudClient
from stamp.device.transport.cloud_events import Discarded, heard_from_event, iter_cloud_events

README = Path(__file__).resolve().parent / "README.md"
REPORT = json.dumps(
    {"edit": 111, "git": "9f8e7d6c5b4a" + "1" * 28, "dirty": False, "build_id": "ab" * 20},
    separators=(",", ":"),
)
FRAME_END = b"\n\n"


class Sim:
    """`stamp sim cloud` as a child process."""

    def __init__(self, devices: int) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "stamp", "sim", "cloud", "--port", "0"),
                *("--devices", str(devices), "--seed", "1", "--keepalive", "60"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline())
        self.api_url: str = hello["api_url"]
        self.token: str = hello["token"]
        self.devices = len(hello["devices"])
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def publish_soon(self, count: int) -> threading.Thread:
        """Ask for `count` events from a helper thread (the request returns when all are out)."""

        def run() -> None:
            body = {"name": "stamp", "data": REPORT, "count": count}
            httpx.post(f"{self.api_url}/_sim/publish", json=body, headers=self.headers, timeout=600)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def run_raw(sim: Sim, count: int, keep: list[bytes] | None = None) -> float:
    """Seconds to read `count` frames as raw bytes."""
    url = f"{sim.api_url}/v1/devices/events"
    timeout = httpx.Timeout(30.0)
    with httpx.Client(timeout=timeout) as http, http.stream("GET", url, headers=sim.headers) as r:
        chunks = r.iter_raw()
        first = next(chunks)
        assert first.startswith(b":ok"), first  # subscribed: publishing can start
        if keep is not None:
            keep.append(first)
        publisher = sim.publish_soon(count)
        start = time.perf_counter()
        seen = 0
        for chunk in chunks:
            seen += chunk.count(FRAME_END)
            if keep is not None:
                keep.append(chunk)
            if seen >= count:
                break
        elapsed = time.perf_counter() - start
    publisher.join()
    return elapsed


def parse_events(
    responses: Iterator[httpx.Response], count: int, on_connected: Callable[[], None]
) -> tuple[int, set[str]]:
    """stamp's per-event path; returns (reports, distinct devices)."""
    reports = 0
    devices: set[str] = set()
    clock = time.monotonic
    for response in responses:
        on_connected()
        for event in iter_cloud_events(response.iter_raw()):
            if isinstance(event, Discarded):
                continue
            heard = heard_from_event(event, clock())
            if heard.kind is HeardKind.REPORT:
                reports += 1
            if event.coreid:
                devices.add(event.coreid)
            if reports >= count:
                return reports, devices
    return reports, devices


def run_stamp_path(sim: Sim, count: int) -> tuple[float, int]:
    """Seconds for stamp's client path to parse `count` events; distinct devices seen."""
    client = CloudClient(sim.api_url, sim.token, timeout=30.0)
    started: list[float] = []
    publisher: list[threading.Thread] = []

    def connected() -> None:
        publisher.append(sim.publish_soon(count))
        started.append(time.perf_counter())

    try:
        with client.open_events(None, idle_timeout=60.0) as response:
            reports, devices = parse_events(iter([response]), count, connected)
        elapsed = time.perf_counter() - started[0]
    finally:
        for thread in publisher:
            thread.join()
        client.close()
    assert reports == count, reports
    return elapsed, len(devices)


def replay_response(captured: list[bytes]) -> httpx.Response:
    """A streaming response whose body is the captured chunks, as they arrived."""
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(captured)
    )


def run_replay(captured: list[bytes], count: int) -> float:
    start = time.perf_counter()
    reports, _ = parse_events(iter([replay_response(captured)]), count, lambda: None)
    elapsed = time.perf_counter() - start
    assert reports == count, reports
    return elapsed


def peak_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Do not update bench/README.md.")
    args = parser.parse_args()
    count: int = args.events

    sim = Sim(args.devices)
    try:
        raw = [run_raw(sim, count) for _ in range(args.runs)]
        ours = [run_stamp_path(sim, count) for _ in range(args.runs)]
        captured: list[bytes] = []
        run_raw(sim, count, keep=captured)
        replay = [run_replay(captured, count) for _ in range(args.runs)]
        raw_peak = peak_bytes(lambda: run_raw(sim, count))
        ours_peak = peak_bytes(lambda: run_stamp_path(sim, count))
        replay_peak = peak_bytes(lambda: run_replay(captured, count))
        devices_seen = ours[0][1]
    finally:
        sim.close()

    stream_bytes = sum(len(c) for c in captured)
    rows = [
        ("raw bytes (baseline, `iter_raw`)", statistics.median(raw), raw_peak),
        (
            "stamp's path (`open_events` → `iter_cloud_events` → `heard_from_event`)",
            statistics.median(t for t, _ in ours),
            ours_peak,
        ),
        (
            "stamp's path on captured bytes (no socket, no simulator)",
            statistics.median(replay),
            replay_peak,
        ),
    ]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, Python "
        f"{sys.version.split()[0]}; `bench/bench_sse.py`: {count:,} `stamp` events from "
        f"{devices_seen:,} simulated devices on one `GET /v1/devices/events` stream "
        f"({stream_bytes / count:.0f} bytes per event on the wire), simulator in its own "
        f"process; median of {args.runs} runs, peak of Python allocations (tracemalloc) "
        "in a separate run.",
        "",
        "| path | events/s | seconds | peak memory |",
        "|---|---|---|---|",
    ]
    for name, seconds, peak in rows:
        lines.append(
            f"| {name} | {count / seconds:,.0f} | {seconds:.2f} | {peak / 1024:,.0f} KiB |"
        )
    lines += [
        "",
        "The raw baseline is bounded by how fast the simulator publishes, not by the reader. "
        "The peak memory does not grow with the number of events (20,000 events peak the "
        "same): the stream is handled event by event and nothing accumulates. Where the "
        "client's time went in a cProfile of the replay when this was written: ~40% "
        "validating the report JSON (`stamp.device.report_line.report_from_object`, a "
        "per-character hex check), ~20% decoding the JSON envelope, ~17% httpx-sse's line "
        "decoding. "
        "Since issue 10 the stream is split by stamp's own bounded line scanner (httpx-sse "
        "held an unfinished line without limit) and every event is redacted of the token: "
        "51,125 events/s before, 41,141 after, on the same machine.",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        update_readme_section(README, "SSE stream", body)


if __name__ == "__main__":
    main()
