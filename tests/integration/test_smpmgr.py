"""`stamp sim smp` driven by Intercreate's real `smpmgr` CLI (PyPI smpmgr), then `stamp verify`.

smpmgr is a client someone else wrote: what it prints of the simulator's slots, and what its
`upgrade` does to them, check the simulator against more than our own assumptions. Images
are signed by the real imgtool; what the test expects of each slot (hash, version) is read
from the signed files with smpclient's own MCUboot reader, not with stamp's.

smpmgr's `upgrade FILE` uploads, and only with `--slot 1` (or `--confirm`) marks the image
before it resets the device: a Zephyr application then swaps it in for test. Without either
it resets with nothing marked, and MCUboot boots the old image again; both are checked.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from smpclient.mcuboot import IMAGE_TLV, ImageInfo

from stamp.sim.smp_server import SmpServer
from stamp.sim.smp_slots import Slots
from stamp.sim.smp_udp import SmpUdpBoard
from tests.support import Stamp, run_stamp, spawn_stamp
from tests.support.cloud import stop_process
from tests.support.smp import Build, make_build
from tests.support.smpmgr import parse_states, refusal, smpmgr, smpmgr_fails

ZEPHYR_UDP_PORT = 1337
"""The port smpmgr's --ip always uses (Zephyr's CONFIG_MCUMGR_TRANSPORT_UDP default)."""


def flags(slot: dict[str, Any]) -> tuple[str, ...]:
    """The flags that are set on one slot."""
    names = ("active", "confirmed", "pending", "permanent")
    return tuple(name for name in names if slot.get(name) is True)


@dataclass(frozen=True)
class Signed:
    """What smpclient's MCUboot reader finds in a signed image: (version as Zephyr prints it,
    SHA-256 hash TLV)."""

    version: str
    hash: str


def signed(build: Build) -> Signed:
    info = ImageInfo.load_file(str(build.path))
    v = info.header.ver
    version = f"{v.major}.{v.minor}.{v.revision}" + (f".{v.build_num}" if v.build_num else "")
    return Signed(version, info.get_tlv(IMAGE_TLV.SHA256).value.hex())


def slots_of(
    transport: list[str], columns: int = 200
) -> list[tuple[int, str, str, tuple[str, ...]]]:
    """`smpmgr image state-read`: (slot, version, hash, flags) per slot."""
    states = parse_states(smpmgr(transport, "image", "state-read", columns=columns))
    for state in states:
        assert state["image"] == 0 and state["bootable"] is True, state
    return [(s["slot"], s["version"], s["hash"], flags(s)) for s in states]


def expect(slot: int, build: Build, *set_flags: str) -> tuple[int, str, str, tuple[str, ...]]:
    image = signed(build)
    return (slot, image.version, image.hash, set_flags)


def judged(device: str, build: Build, tmp_path: Path, code: int, status: str) -> dict[str, Any]:
    """`stamp verify --device DEVICE --manifest BUILD --json` as a whole process, which
    must exit `code` with `status`; its JSON record."""
    done = run_stamp(
        "verify", "--device", device, "--manifest", str(build.manifest), "--json", cwd=tmp_path
    )
    record: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode, record["status"]) == (code, status), record["message"]
    return record


@contextmanager
def sim_smp(tmp_path: Path, *args: str | Path) -> Iterator[str]:
    """`stamp sim smp ARGS` in its own process; yields its pty's path; stopped afterwards."""
    proc = spawn_stamp("sim", "smp", "--reset-delay", "0.2", *map(str, args), cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"`stamp sim smp` printed nothing; stderr:\n{stop_process(proc)[1]}"
        device = json.loads(line)["device"]
        assert device.startswith("smp:serial:/dev/pts/"), device
        yield device.removeprefix("smp:serial:")
    finally:
        stop_process(proc)
    assert proc.returncode == 0, proc.returncode


@pytest.fixture
def two(stamp: Stamp, tmp_path: Path) -> tuple[Build, Build]:
    """An old (1.0.0) and a new (1.1.0+5) build, each signed by imgtool and manifested."""
    return make_build(stamp, tmp_path, 1, "1.0.0"), make_build(stamp, tmp_path, 2, "1.1.0+5")


# --- image state-read: what smpmgr sees is what the simulator was started with -----------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), [(0, "old", ("active", "confirmed"))]),
        (("--secondary", "new"), [(0, "old", ("active", "confirmed")), (1, "new", ())]),
        (
            ("--secondary", "new", "--pending"),
            [(0, "old", ("active", "confirmed")), (1, "new", ("pending",))],
        ),
        # a test image not yet confirmed: Zephyr reports the image a reset brings back confirmed
        (
            ("--unconfirmed", "--secondary", "new"),
            [(0, "old", ("active",)), (1, "new", ("confirmed",))],
        ),
    ],
    ids=["primary-only", "secondary", "pending", "unconfirmed"],
)
def test_state_read_shows_the_slots_the_simulator_started_with(
    two: tuple[Build, Build],
    tmp_path: Path,
    options: tuple[str, ...],
    expected: list[tuple[int, str, tuple[str, ...]]],
) -> None:
    builds = {"old": two[0], "new": two[1]}
    args = [str(builds[a].path) if a in builds else a for a in options]
    with sim_smp(tmp_path, "--image", two[0].path, *args) as pty:
        seen = slots_of(["--port", pty])
        narrow = slots_of(["--port", pty], columns=60)  # rich wraps the hash: same slots
    assert seen == [expect(slot, builds[name], *f) for slot, name, f in expected]
    assert narrow == seen
    assert {s[1] for s in seen} <= {"1.0.0", "1.1.0.5"}  # Zephyr prints the build number


# --- upgrade: smpmgr uploads, marks, resets; stamp verify says what runs -----------------


def test_upgrade_for_test_then_confirm(two: tuple[Build, Build], tmp_path: Path) -> None:
    old, new = two
    with sim_smp(tmp_path, "--image", old.path) as pty:
        port = ["--port", pty]
        out = smpmgr(port, "upgrade", "--slot", "1", new.path)
        assert "Marking uploaded image for test upgrade... OK" in out
        assert "Upgrade complete." in out

        judged(f"smp:serial:{pty}", new, tmp_path, 1, "unconfirmed")
        assert slots_of(port) == [expect(0, new, "active"), expect(1, old, "confirmed")]

        smpmgr(port, "image", "state-write", "--confirm")  # confirm the running image
        assert slots_of(port) == [expect(0, new, "active", "confirmed"), expect(1, old)]
        judged(f"smp:serial:{pty}", new, tmp_path, 0, "verified")

        smpmgr(port, "os", "reset")  # a confirmed image stays after a reset
        judged(f"smp:serial:{pty}", new, tmp_path, 0, "verified")
        assert slots_of(port) == [expect(0, new, "active", "confirmed"), expect(1, old)]


def test_unconfirmed_upgrade_reverts_at_the_next_reset(
    two: tuple[Build, Build], tmp_path: Path
) -> None:
    old, new = two
    with sim_smp(tmp_path, "--image", old.path) as pty:
        port = ["--port", pty]
        smpmgr(port, "upgrade", "--slot", "1", new.path)
        judged(f"smp:serial:{pty}", new, tmp_path, 1, "unconfirmed")

        smpmgr(port, "os", "reset")  # never confirmed: MCUboot swaps the old image back
        judged(f"smp:serial:{pty}", old, tmp_path, 0, "verified")
        judged(f"smp:serial:{pty}", new, tmp_path, 1, "mismatch")
        assert slots_of(port) == [expect(0, old, "active", "confirmed"), expect(1, new)]


def test_upgrade_confirm_is_permanent(two: tuple[Build, Build], tmp_path: Path) -> None:
    old, new = two
    with sim_smp(tmp_path, "--image", old.path) as pty:
        port = ["--port", pty]
        out = smpmgr(port, "upgrade", "--confirm", new.path)
        assert "Marking uploaded image for permanent upgrade... OK" in out
        judged(f"smp:serial:{pty}", new, tmp_path, 0, "verified")
        assert slots_of(port) == [expect(0, new, "active", "confirmed"), expect(1, old)]


def test_permanent_mark_reads_pending_and_permanent(
    two: tuple[Build, Build], tmp_path: Path
) -> None:
    """smpmgr's step by step: upload, state-write HASH --confirm, state-read. Zephyr's
    img_mgmt reports the marked slot pending and permanent, but not confirmed."""
    old, new = two
    with sim_smp(tmp_path, "--image", old.path) as pty:
        port = ["--port", pty]
        smpmgr(port, "image", "upload", "--slot", "1", new.path)
        assert slots_of(port) == [expect(0, old, "active", "confirmed"), expect(1, new)]
        smpmgr(port, "image", "state-write", signed(new).hash, "--confirm")
        assert slots_of(port) == [
            expect(0, old, "active", "confirmed"),
            expect(1, new, "pending", "permanent"),
        ]
        record = judged(f"smp:serial:{pty}", new, tmp_path, 1, "mismatch")
        assert "not yet running" in record["message"]

        smpmgr(port, "os", "reset")
        judged(f"smp:serial:{pty}", new, tmp_path, 0, "verified")


def test_upgrade_without_a_mark_leaves_the_old_build_running(
    two: tuple[Build, Build], tmp_path: Path
) -> None:
    """`smpmgr upgrade FILE` (slot 0, no --confirm) marks nothing before the reset: on a
    Zephyr application the upload lands in slot 1 and MCUboot boots the old image again."""
    old, new = two
    with sim_smp(tmp_path, "--image", old.path) as pty:
        out = smpmgr(["--port", pty], "upgrade", new.path)
        assert "Upgrade complete." in out
        assert "Marking" not in out
        record = judged(f"smp:serial:{pty}", new, tmp_path, 1, "mismatch")
        assert "slot 1: not running" in record["message"]
        assert slots_of(["--port", pty]) == [
            expect(0, old, "active", "confirmed"),
            expect(1, new),
        ]


def test_upgrade_that_fails_to_boot_is_a_mismatch(two: tuple[Build, Build], tmp_path: Path) -> None:
    old, new = two
    with sim_smp(tmp_path, "--image", old.path, "--boot-fails", "1") as pty:
        port = ["--port", pty]
        out = smpmgr(port, "upgrade", "--slot", "1", new.path)
        assert "Upgrade complete." in out  # smpmgr cannot know: the device reset after it
        record = judged(f"smp:serial:{pty}", new, tmp_path, 1, "mismatch")
        assert record["reported"]["mcuboot_hash"] == signed(old).hash, record["reported"]
        judged(f"smp:serial:{pty}", old, tmp_path, 0, "verified")
        assert slots_of(port) == [expect(0, old, "active", "confirmed"), expect(1, new)]


def test_state_write_refusals_are_zephyrs(two: tuple[Build, Build], tmp_path: Path) -> None:
    """What Zephyr's img_mgmt refuses (img_mgmt_state_write, img_mgmt_set_next_boot_slot),
    with its error codes, as smpmgr prints them; nothing changes on a refusal."""
    old, new = two
    with sim_smp(tmp_path, "--image", old.path, "--secondary", new.path) as pty:
        port = ["--port", pty]
        before = slots_of(port)
        assert refusal(smpmgr(port, "image", "state-write")) == "INVALID_HASH"  # test, no hash
        running = smpmgr(port, "image", "state-write", signed(old).hash)
        assert refusal(running) == "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED"
        assert refusal(smpmgr(port, "image", "state-write", "01" * 32)) == "HASH_NOT_FOUND"
        assert slots_of(port) == before

        assert refusal(smpmgr(port, "image", "state-write", signed(new).hash)) is None
        assert refusal(smpmgr(port, "image", "state-write", signed(new).hash)) is None  # again
        marked = [expect(0, old, "active", "confirmed"), expect(1, new, "pending")]
        assert slots_of(port) == marked
        confirm = smpmgr(port, "image", "state-write", "--confirm")  # a test is pending
        assert refusal(confirm) == "IMAGE_ALREADY_PENDING"
        assert slots_of(port) == marked


def test_slot_1_in_use_is_neither_erased_nor_overwritten(
    stamp: Stamp, two: tuple[Build, Build], tmp_path: Path
) -> None:
    """Zephyr's img_mgmt_slot_in_use: while the image a revert brings back sits in slot 1,
    `image erase 1` and a new upload are refused (NO_FREE_SLOT) until it is confirmed."""
    old, new = two
    third = make_build(stamp, tmp_path, 3, "2.0.0")
    with sim_smp(tmp_path, "--image", old.path) as pty:
        port = ["--port", pty]
        smpmgr(port, "upgrade", "--slot", "1", new.path)
        judged(f"smp:serial:{pty}", new, tmp_path, 1, "unconfirmed")
        reverting = [expect(0, new, "active"), expect(1, old, "confirmed")]

        assert refusal(smpmgr(port, "image", "erase", "1")) == "NO_FREE_SLOT"
        done = smpmgr_fails(port, "upgrade", "--slot", "1", third.path)
        assert "NO_FREE_SLOT" in done, done
        assert slots_of(port) == reverting

        smpmgr(port, "image", "state-write", "--confirm")
        smpmgr(port, "upgrade", "--slot", "1", third.path)
        judged(f"smp:serial:{pty}", third, tmp_path, 1, "unconfirmed")


# --- UDP: smpmgr --ip always uses port 1337 -----------------------------------------------


@contextmanager
def udp_device(slots: Slots) -> Iterator[SmpUdpBoard]:
    """The simulated device (stamp.sim.smp_udp, as `stamp sim smp --udp` runs it) on port 1337
    of the first free loopback address 127.0.0.N: smpmgr cannot be told another port, and
    127.0.0.1:1337 may be another test's on a shared machine."""
    for n in range(2, 255):
        try:
            board = SmpUdpBoard(SmpServer(slots, reset_delay=0.2), f"127.0.0.{n}", ZEPHYR_UDP_PORT)
        except OSError:
            continue
        break
    else:
        raise AssertionError(f"no loopback address has UDP port {ZEPHYR_UDP_PORT} free")
    board.start()
    try:
        yield board
    finally:
        board.close()


def test_udp_state_read_and_upgrade(two: tuple[Build, Build], tmp_path: Path) -> None:
    old, new = two
    with udp_device(Slots(old.image, secondary=new.image)) as board:
        ip = ["--ip", board.host]
        assert slots_of(ip) == [expect(0, old, "active", "confirmed"), expect(1, new)]
        smpmgr(ip, "upgrade", "--slot", "1", new.path)
        judged(board.device, new, tmp_path, 1, "unconfirmed")
        smpmgr(ip, "image", "state-write", "--confirm")
        judged(board.device, new, tmp_path, 0, "verified")
        assert slots_of(ip) == [expect(0, new, "active", "confirmed"), expect(1, old)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((board.host, ZEPHYR_UDP_PORT))  # the board let its port go
