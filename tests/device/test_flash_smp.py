"""`stamp flash` over SMP against `stamp sim smp`: upload, test, reset, re-read, confirm."""

from __future__ import annotations

import json

import pytest

from stamp.sim.smp import SmpBoard
from stamp.sim.smp_slots import Slots
from tests.support import GitRepo, Stamp
from tests.support.smp import Build, make_build, smp_board, verdict


@pytest.fixture
def two(stamp: Stamp, repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> tuple[Build, Build]:
    monkeypatch.chdir(repo.path)
    out = repo.path / "build"
    out.mkdir()
    return make_build(stamp, out, 1, "1.0.0"), make_build(stamp, out, 2, "1.1.0")


def flash(stamp: Stamp, board: SmpBoard, build: Build, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code, out, err = stamp(
        "flash", "--device", board.device, "--timeout", "30", "--json", *args, build.path
    )
    return code, json.loads(out), err


def test_flash_tests_resets_rereads_and_confirms(stamp: Stamp, two: tuple[Build, Build]) -> None:
    old, new = two
    with smp_board(Slots(old.image)) as board:
        code, record, err = flash(stamp, board, new)
        assert code == 0, err
        assert record["status"] == "verified" and len(record["attempts"]) == 1
        assert board.slots.history == ["swap (test)"]
        assert board.slots.primary.confirmed  # stamp confirmed it once it was active
        assert "marked for test; resetting" in err and "confirmed it" in err
        # It stays: another reset keeps it, and it still verifies.
        board.reset()
        code, again = verdict(stamp, board, new)
    assert (code, again["status"]) == (0, "verified")
    assert board.slots.history == ["swap (test)", "none"]


def test_no_confirm_leaves_a_test_image_that_reverts(
    stamp: Stamp, two: tuple[Build, Build]
) -> None:
    old, new = two
    with smp_board(Slots(old.image)) as board:
        code, record, err = flash(stamp, board, new, "--no-confirm")
        assert (code, record["status"]) == (0, "verified"), err
        assert "will revert at next reset unless confirmed" in record["message"]
        assert not board.slots.primary.confirmed
        board.reset()  # nobody confirmed it: MCUboot reverts
        code, after = verdict(stamp, board, new)
    assert (code, after["status"]) == (1, "mismatch")
    assert str(after["message"]).startswith("MISMATCH: device runs edit 1")
    assert board.slots.history == ["swap (test)", "revert"]


def test_a_device_that_reverts_is_caught_and_flashed_again(
    stamp: Stamp, two: tuple[Build, Build]
) -> None:
    old, new = two
    with smp_board(Slots(old.image, boot_fails=1)) as board:
        code, record, err = flash(stamp, board, new, "--retries", "1")
    assert code == 0, err
    first, second = record["attempts"]
    assert first["verdict"]["status"] == "mismatch"
    assert "device runs edit 1" in first["verdict"]["message"]
    assert second["verdict"]["status"] == "verified"
    assert "not the new image" in err  # said right after the re-read, before verifying
    assert board.slots.history == ["failed boot, reverted", "swap (test)"]


def test_a_device_that_always_reverts_fails_the_flash(
    stamp: Stamp, two: tuple[Build, Build]
) -> None:
    old, new = two
    with smp_board(Slots(old.image, boot_fails=5)) as board:
        code, record, _err = flash(stamp, board, new, "--retries", "1")
    assert code == 1
    assert record["status"] == "mismatch" and len(record["attempts"]) == 2
    assert record["verdict"]["matched_build"]["edit"] == 1


def test_an_image_that_is_not_mcuboot_is_not_flashed(
    stamp: Stamp, two: tuple[Build, Build], repo: GitRepo
) -> None:
    old, _new = two
    raw = repo.path / "build" / "raw.bin"
    raw.write_bytes(old.image.body)
    with smp_board(Slots(old.image)) as board:
        code, _out, err = stamp("flash", "--device", board.device, "--manifest", old.manifest, raw)
        assert board.requests == 0  # nothing was sent
    assert code == 2 and "not flashing" in err


def test_an_upload_zephyr_refuses_is_named(stamp: Stamp, two: tuple[Build, Build]) -> None:
    """A device running an unconfirmed test image keeps the image a revert brings back in
    slot 1; Zephyr refuses to overwrite it (NO_FREE_SLOT), and stamp says so in a word and
    what to do, without retrying: another attempt cannot change it (exit 2, a refusal)."""
    old, new = two
    with smp_board(Slots(new.image, confirmed=False, secondary=old.image)) as board:
        code, out, err = stamp(
            "flash", "--device", board.device, "--timeout", "30", "--retries", "2", old.path
        )
    assert code == 2 and out == "", err
    assert "the device refused the upload: NO_FREE_SLOT" in err
    assert "confirm the running image or reset the device" in err
    assert "attempt 2/" not in err and "retrying" not in err
    assert "Header(" not in err
