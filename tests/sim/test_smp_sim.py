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
from smp.image_management import IMG_MGMT_ERR
from smpclient import SMPClient
from smpclient.exceptions import SMPUploadError
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
from smpclient.requests.os_management import EchoWrite, ResetWrite
from smpclient.transport.serial import SMPSerialTransport

from stamp.sim.smp import SmpBoard
from stamp.sim.smp_slots import SlotError, Slots
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


def test_state_writes_are_refused_as_zephyr_refuses_them(stamp: Stamp, tmp_path: Path) -> None:
    """Zephyr's img_mgmt_set_next_boot_slot, by next boot type (normal, test, revert)."""
    old, new = builds(stamp, tmp_path)
    old_hash, new_hash = bytes.fromhex(old.hash), bytes.fromhex(new.hash)

    def refused(slots: Slots, hash_value: bytes | None, confirm: bool) -> int | None:
        before = slots.states()
        try:
            slots.set_state(hash_value, confirm)
        except SlotError as exc:
            assert slots.states() == before
            return exc.code
        return None

    idle = Slots(old.image, secondary=new.image)
    assert refused(idle, None, False) == IMG_MGMT_ERR.INVALID_HASH
    assert refused(idle, old_hash, False) == IMG_MGMT_ERR.IMAGE_SETTING_TEST_TO_ACTIVE_DENIED
    assert refused(idle, b"\x01" * 32, True) == IMG_MGMT_ERR.HASH_NOT_FOUND
    assert refused(idle, None, True) is None  # confirming the confirmed running image

    permanent = Slots(old.image, secondary=new.image)
    assert refused(permanent, new_hash, True) is None
    assert refused(permanent, new_hash, True) is None  # what the next reset does already
    assert refused(permanent, new_hash, False) == IMG_MGMT_ERR.IMAGE_ALREADY_PENDING
    assert refused(permanent, None, True) == IMG_MGMT_ERR.IMAGE_ALREADY_PENDING
    assert [s.get("permanent") for s in permanent.states()] == [None, True]
    assert "confirmed" not in permanent.states()[1]

    testing = Slots(old.image, secondary=new.image, pending=True)
    assert refused(testing, new_hash, False) is None
    assert refused(testing, new_hash, True) == IMG_MGMT_ERR.IMAGE_ALREADY_PENDING

    reverting = Slots(new.image, confirmed=False, secondary=old.image)
    assert refused(reverting, old_hash, False) == IMG_MGMT_ERR.IMAGE_ALREADY_PENDING
    assert refused(reverting, old_hash, True) is None  # confirmed already in this mode
    assert reverting.states()[0].get("confirmed") is None
    assert refused(reverting, None, True) is None
    assert reverting.states()[0].get("confirmed") is True


def test_slot_1_in_use_is_not_erased(stamp: Stamp, tmp_path: Path) -> None:
    """Zephyr's img_mgmt_slot_in_use (ALLOW_ERASE_PENDING off): a revert image or an image
    marked to run is refused to an erase and to an upload (NO_FREE_SLOT); a stored one is not."""
    old, new = builds(stamp, tmp_path)
    for slots in (
        Slots(new.image, confirmed=False, secondary=old.image),
        Slots(old.image, secondary=new.image, pending=True),
    ):
        with pytest.raises(SlotError) as refused:
            slots.erase_secondary()
        assert refused.value.code == IMG_MGMT_ERR.NO_FREE_SLOT
        assert slots.secondary.image is not None
    stored = Slots(old.image, secondary=new.image)
    stored.erase_secondary()
    assert stored.secondary.image is None
    with smp_board(Slots(old.image, secondary=new.image, pending=True)) as board:

        async def script(client: SMPClient) -> Any:
            async for _ in client.upload(old.path.read_bytes()):
                pass

        with pytest.raises(SMPUploadError, match="NO_FREE_SLOT"):
            drive(board, script)
