"""`stamp verify --device smp:serial:…` against `stamp sim smp`, heard through smpclient."""

from __future__ import annotations

from pathlib import Path

import pytest

from stamp.sim.smp_slots import Slots
from tests.support import GitRepo, Stamp
from tests.support.smp import Build, make_build, smp_board, smp_udp_board, verdict


@pytest.fixture
def two(stamp: Stamp, repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> tuple[Build, Build]:
    """Two builds (edit 1 / 1.0.0 and edit 2 / 1.1.0), both in this checkout's history."""
    monkeypatch.chdir(repo.path)
    out = repo.path / "build"
    out.mkdir()
    return make_build(stamp, out, 1, "1.0.0"), make_build(stamp, out, 2, "1.1.0")


def test_active_and_confirmed_verifies(stamp: Stamp, two: tuple[Build, Build]) -> None:
    old, new = two
    with smp_board(Slots(new.image, secondary=old.image)) as board:
        code, record = verdict(stamp, board, new)
    assert code == 0
    assert record["status"] == "verified"
    assert record["reported"]["mcuboot_hash"] == new.hash  # type: ignore[index]
    assert "VERIFIED: device runs edit 2" in str(record["message"])


def test_active_but_unconfirmed_does_not_verify(stamp: Stamp, two: tuple[Build, Build]) -> None:
    old, new = two
    with smp_board(Slots(new.image, confirmed=False, secondary=old.image)) as board:
        code, record = verdict(stamp, board, new)
        allowed_code, allowed = verdict(stamp, board, new, "--allow-unconfirmed")
    assert (code, record["status"]) == (1, "unconfirmed")
    assert "running, will revert at next reset unless confirmed" in str(record["message"])
    assert (allowed_code, allowed["status"]) == (0, "verified")
    assert "will revert at next reset" in str(allowed["message"])


def test_pending_image_is_not_yet_running(stamp: Stamp, two: tuple[Build, Build]) -> None:
    old, new = two
    with smp_board(Slots(old.image, secondary=new.image, pending=True)) as board:
        code, record = verdict(stamp, board, new)
    assert (code, record["status"]) == (1, "mismatch")
    message = str(record["message"])
    assert "device runs edit 1" in message  # named from the history
    assert "the expected image is in slot 1: not yet running" in message


def test_mismatch_names_the_build(stamp: Stamp, two: tuple[Build, Build], tmp_path: Path) -> None:
    old, new = two
    with smp_board(Slots(old.image)) as board:
        code, record = verdict(stamp, board, new)
    assert code == 1
    assert record["matched_build"]["edit"] == 1  # type: ignore[index]
    assert record["matched_build"]["mcuboot_hash"] == old.hash  # type: ignore[index]
    assert str(record["message"]).startswith("MISMATCH: device runs edit 1")


def test_a_port_without_a_device_is_no_report(stamp: Stamp, two: tuple[Build, Build]) -> None:
    _old, new = two
    code, out, err = stamp(
        "verify", "--device", "smp:serial:/dev/does-not-exist", "--manifest", new.manifest,
        "--timeout", "0.5",
    )  # fmt: skip
    assert code == 3
    assert "/dev/does-not-exist does not exist" in out
    assert "Traceback" not in err


def test_a_manifest_without_mcuboot_hash_says_how_to_make_one(
    stamp: Stamp, two: tuple[Build, Build], repo: GitRepo
) -> None:
    old, _new = two
    unsigned = repo.path / "build" / "plain.stamp.json"
    unsigned.write_text('{"schema": 1, "edit": 1, "git": "' + "1a2b3c4d5e6f" + "0" * 28 + '"}')
    with smp_board(Slots(old.image)) as board:
        code, out, _err = stamp(
            "verify", "--device", board.device, "--manifest", unsigned, "--timeout", "20"
        )
    assert code == 3
    assert "shares no key with the manifest" in out
    assert "stamp manifest ELF --bin zephyr.signed.bin" in out


def test_over_udp(stamp: Stamp, two: tuple[Build, Build]) -> None:
    """smp:udp:HOST:PORT through smpclient's UDP transport, against the sim on loopback."""
    old, new = two
    with smp_udp_board(Slots(new.image, confirmed=False, secondary=old.image)) as board:
        assert board.device.startswith("smp:udp:127.0.0.1:")
        code, record = verdict(stamp, board, new)
        assert (code, record["status"]) == (1, "unconfirmed")
        assert record["device"] == f"SMP over UDP 127.0.0.1:{board.port}"
        code, _out, err = stamp("flash", "--device", board.device, "--timeout", "30", new.path)
        assert code == 0, err  # already running: not uploaded again, only confirmed
        assert "runs this image already" in err and "confirmed it" in err
        code, record = verdict(stamp, board, new)
    assert (code, record["status"]) == (0, "verified")
