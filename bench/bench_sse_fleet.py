"""Benchmark: 1,000 concurrent event streams on a simulated cloud of 10,000 devices.

`stamp sim cloud --devices 10000` runs as its own process. The bench opens --clients
`GET /v1/devices/events` streams at once (aiohttp's client, one event loop), then asks the
simulator (POST /_sim/publish) for --events `stamp` events round-robin over every device;
each event goes to every stream. Measured: the time until every stream has every event,
as events/s (published) and deliveries/s (events x streams), and the simulator process's
resident memory before the clients, with them connected, and at its peak (VmHWM).
Bounded: loopback only, every wait has a timeout, the child is always stopped.

Run: .venv/bin/python bench/bench_sse_fleet.py [--clients N] [--devices N] [--events N]
     [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, update_readme_section

README = Path(__file__).resolve().parent / "README.md"
REPORT = json.dumps(
    {"edit": 111, "git": "9f8e7d6c5b4a" + "1" * 28, "dirty": False}, separators=(",", ":")
)
FRAME_START = b"\n\nevent: "
WAIT = 600.0


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


async def read_stream(
    session: aiohttp.ClientSession, url: str, want: int, ready: asyncio.Queue[int]
) -> int:
    """Frames seen on one stream until `want` arrived (or the stream ended)."""
    seen, tail = 0, b""
    async with session.get(url) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_any():
            if tail == b"":
                assert chunk.startswith(b":ok"), chunk[:20]
                await ready.put(1)
            data = tail + chunk
            seen += data.count(FRAME_START)
            tail = data[-(len(FRAME_START) - 1) :]
            if seen >= want:
                break
    return seen


async def run(api_url: str, token: str, clients: int, events: int, pid: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:
        ready: asyncio.Queue[int] = asyncio.Queue()
        url = f"{api_url}/v1/devices/events/stamp"
        readers = [asyncio.create_task(read_stream(s, url, events, ready)) for _ in range(clients)]
        for _ in range(clients):
            await asyncio.wait_for(ready.get(), WAIT)
        connected = memory_kib(pid)
        start = time.perf_counter()
        body = {"name": "stamp", "data": REPORT, "count": events}
        async with s.post(f"{api_url}/_sim/publish", json=body) as response:
            assert response.status == 200, await response.text()
        published = time.perf_counter() - start
        seen = await asyncio.wait_for(asyncio.gather(*readers), WAIT)
        elapsed = time.perf_counter() - start
    assert all(n >= events for n in seen), min(seen)
    return {
        "elapsed": elapsed,
        "published": published,
        "rss_connected": connected["VmRSS"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="Do not update bench/README.md.")
    args = parser.parse_args()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "stamp", "sim", "cloud", "--port", "0"),
            *("--devices", str(args.devices), "--seed", "1", "--keepalive", "60"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        hello = json.loads(proc.stdout.readline())
        idle = memory_kib(proc.pid)
        result = asyncio.run(
            run(hello["api_url"], hello["token"], args.clients, args.events, proc.pid)
        )
        peak = memory_kib(proc.pid)["VmHWM"]
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    events, clients = args.events, args.clients
    seconds = result["elapsed"]
    body = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, Python "
            f"{sys.version.split()[0]}; `bench/bench_sse_fleet.py`: `stamp sim cloud "
            f"--devices {args.devices:,}` (aiohttp.web) in its own process, {clients:,} "
            f"concurrent `GET /v1/devices/events/stamp` streams from one aiohttp client "
            f"process, {events:,} `stamp` events published round-robin over the devices, "
            "each to every stream.",
            "",
            "| what | value |",
            "|---|---|",
            f"| every stream had every event after | {seconds:.2f} s |",
            f"| events/s (published, each to {clients:,} streams) | {events / seconds:,.0f} |",
            f"| deliveries/s (events x streams) | {events * clients / seconds:,.0f} |",
            f"| simulator memory, idle with {args.devices:,} devices | "
            f"{idle['VmRSS'] / 1024:,.1f} MiB |",
            f"| with {clients:,} streams open | {result['rss_connected'] / 1024:,.1f} MiB |",
            f"| peak (VmHWM) | {peak / 1024:,.1f} MiB |",
            "",
            "Client and simulator share the machine's 2 cores; the client's parsing is the "
            "lighter side (it only counts frames). tests/sim/test_cloud_load.py runs a "
            "smaller version (100 streams, 2,000 devices) in the suite and checks that every "
            "stream got every event in order.",
        ]
    )
    print(body)
    if not args.no_write:
        update_readme_section(README, "SSE fan-out: 1,000 streams, 10,000 devices", body)


if __name__ == "__main__":
    main()
