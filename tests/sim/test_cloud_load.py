"""A small version of bench/bench_sse_fleet.py: many streams, many devices, one cloud.

100 concurrent event streams (aiohttp's client, one event loop) on a simulated cloud of
2,000 devices; 300 events round-robin over the devices must reach every stream, in the
same order on each, and the cloud must keep answering API requests meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.cloud import RunningCloud, cloud_sim, no_thread_leaks

STREAMS = 100
DEVICES = 2000
EVENTS = 300
WAIT = 120.0


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


async def read_stream(
    session: aiohttp.ClientSession, url: str, ready: asyncio.Queue[int]
) -> list[str]:
    """The `n` data of every event on one stream, until EVENTS arrived."""
    seen: list[str] = []
    async with session.get(url) as response:
        assert response.status == 200
        first = await response.content.readline()
        assert first == b":ok\n"
        await ready.put(1)
        async for line in response.content:
            if line.startswith(b"data: "):
                seen.append(json.loads(line[len(b"data: ") :])["coreid"])
                if len(seen) == EVENTS:
                    break
    return seen


async def load(cloud: RunningCloud) -> tuple[list[list[str]], int]:
    headers = {"Authorization": f"Bearer {cloud.token}"}
    timeout = aiohttp.ClientTimeout(total=WAIT)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as s:
        ready: asyncio.Queue[int] = asyncio.Queue()
        url = f"{cloud.api_url}/v1/devices/events/load"
        readers = [asyncio.create_task(read_stream(s, url, ready)) for _ in range(STREAMS)]
        for _ in range(STREAMS):
            await asyncio.wait_for(ready.get(), WAIT)
        body = {"name": "load/n", "data": "x", "count": EVENTS}
        async with s.post(f"{cloud.api_url}/_sim/publish", json=body) as response:
            assert response.status == 200
        async with s.get(f"{cloud.api_url}/v1/devices") as response:
            listed = len(await response.json())
        return list(await asyncio.wait_for(asyncio.gather(*readers), WAIT)), listed


def test_every_stream_gets_every_event_of_a_large_fleet_in_one_order() -> None:
    with cloud_sim(devices=DEVICES) as cloud:
        streams, listed = asyncio.run(load(cloud))
    ids = [d["id"] for d in cloud.devices]
    expected = [ids[n % DEVICES] for n in range(EVENTS)]  # round-robin over the devices
    assert len(streams) == STREAMS
    for seen in streams:
        assert seen == expected
    assert listed == DEVICES
