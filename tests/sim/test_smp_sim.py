"""`stamp sim smp` driven by the real smpclient: state, upload, test, confirm, reset, revert."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
from smpclient.requests.os_management import EchoWrite, ResetWrite
from smpclient.transport.serial import SMPSerialTransport

from stamp.sim.smp import SmpBoard
from stamp.sim.smp_slots import Slots
from tests.support import Stamp, spawn_stamp
from tests.support.smp import Build, make_build, smp_board


def drive(board: SmpBoard, script: Callable[[SMPClient], Awaitable[Any]]) -> Any:
    """Run `script` against the board with the real smpclient over its pty."""

    async def main() -> Any:
        client = SMPClient(SMPSerialTransport(), board.path)
        await client.connect()
        try:
            return await script(client)
        finally:
            await client.disconnect()

    return asyncio.run(main())


def flags(images: Any) -> list[tuple[int, str, bool, bool, bool]]:
    """(slot, hash, active, pending, confirmed) per slot."""
    return [
        (i.slot, bytes(i.hash).hex(), bool(i.active), bool(i.pending), bool(i.confirmed))
        for i in images
    ]


async def states(client: SMPClient) -> Any:
    response = await client.request(ImageStatesRead())
    assert success(response), response
    return response.images


async def after_reset(client: SMPClient) -> Any:
    """Reset, then read the state once the device answers again."""
    assert success(await client.request(ResetWrite()))
    for _ in range(100):
        try:
            response = await client.request(ImageStatesRead(), timeout_s=0.5)
            assert success(response), response
            return response.images
        except TimeoutError:
            continue
    raise AssertionError("the device did not come back")


def builds(stamp: Stamp, tmp_path: Path) -> tuple[Build, Build]:
    return make_build(stamp, tmp_path, 1, "1.0.0"), make_build(stamp, tmp_path, 2, "1.1.0")


def test_upload_test_reset_confirm(stamp: Stamp, tmp_path: Path) -> None:
    old, new = builds(stamp, tmp_path)
    with smp_board(Slots(old.image)) as board:

        async def script(client: SMPClient) -> list[Any]:
            seen = [flags(await states(client))]
            async for _ in client.upload(new.path.read_bytes()):
                pass
            seen.append(flags(await states(client)))
            test = await client.request(ImageStatesWrite(hash=bytes.fromhex(new.hash)))
            assert success(test)
            seen.append(flags(test.images))
            seen.append(flags(await after_reset(client)))
            confirm = await client.request(ImageStatesWrite(confirm=True))
            assert success(confirm)
            seen.append(flags(confirm.images))
            seen.append(flags(await after_reset(client)))
            return seen

        seen = drive(board, script)
    assert seen[0] == [(0, old.hash, True, False, True)]
    assert seen[1] == [(0, old.hash, True, False, True), (1, new.hash, False, False, False)]
    assert seen[2][1] == (1, new.hash, False, True, False)  # pending: not yet running
    # Running unconfirmed; Zephyr reports the image a revert would restore as confirmed.
    assert seen[3] == [(0, new.hash, True, False, False), (1, old.hash, False, False, True)]
    assert seen[4][0] == (0, new.hash, True, False, True)
    assert seen[5][0] == (0, new.hash, True, False, True)  # confirmed: it stays


def test_unconfirmed_image_reverts_at_the_next_reset(stamp: Stamp, tmp_path: Path) -> None:
    old, new = builds(stamp, tmp_path)
    with smp_board(Slots(new.image, confirmed=False, secondary=old.image)) as board:
        before = drive(board, states)
        after = drive(board, after_reset)
    assert flags(before)[0] == (0, new.hash, True, False, False)
    assert flags(after)[0] == (0, old.hash, True, False, True)
    assert board.slots.history == ["revert"]


def test_an_image_that_fails_to_boot_is_reverted(stamp: Stamp, tmp_path: Path) -> None:
    old, new = builds(stamp, tmp_path)
    with smp_board(Slots(old.image, secondary=new.image, pending=True, boot_fails=1)) as board:
        after = drive(board, after_reset)
    assert flags(after)[0] == (0, old.hash, True, False, True)
    assert board.slots.history == ["failed boot, reverted"]


def test_refusals_are_smp_errors(stamp: Stamp, tmp_path: Path) -> None:
    old, _new = builds(stamp, tmp_path)
    with smp_board(Slots(old.image)) as board:

        async def script(client: SMPClient) -> tuple[Any, Any]:
            unknown = await client.request(ImageStatesWrite(hash=b"\x01" * 32))
            echo = await client.request(EchoWrite(d="hello"))
            return unknown, echo

        unknown, echo = drive(board, script)
    assert error(unknown)
    assert success(echo) and echo.r == "hello"


@pytest.mark.parametrize(
    ("extra", "prefix"), [((), "smp:serial:/dev/pts/"), (("--udp", "0"), "smp:udp:127.0.0.1:")]
)
def test_sim_smp_command_prints_its_device(
    stamp: Stamp, tmp_path: Path, extra: tuple[str, ...], prefix: str
) -> None:
    old, _new = builds(stamp, tmp_path)
    proc = spawn_stamp("sim", "smp", "--image", str(old.path), *extra, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["device"].startswith(prefix)
        code, out, err = stamp(
            "verify", "--device", first["device"], "--manifest", old.manifest, "--json"
        )
        assert code == 0, err
        assert json.loads(out)["status"] == "verified"
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0
