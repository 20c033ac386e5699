"""`stamp verify` against a simulated ESP-IDF board: the boot log is the report.

The board is `stamp.sim.serial.SerialBoard` printing the boot log of a real ESP-IDF image
(fixtures/esp) on a real pty, rebooting every half second so a listener that opens the
port late still hears a boot; the manifest is what `stamp manifest` writes for that image.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stamp.artifact.manifest import Manifest, load_manifest, write_manifest
from stamp.identity import Identity, compare, strong_match
from stamp.sim.esp import EspApp, boot_log, esp_app
from stamp.sim.serial import SerialBoard, report_line
from tests.support import FIXTURES, GitRepo, Stamp, make_repo

BLINK = FIXTURES / "esp" / "esp_idf_blink_esp32s2.bin"
SHA = "3059e6b55a965865febd28fa9f6028ad5cd0dab311febb0a3ea79eaa223ac2b0"
GIT = "0123456789abcdef0123456789abcdef01234567"
TIMEOUT = "30"
SHORT_TIMEOUT = "3"
"""For the verdicts that can only come at the timeout (a too-short hash heard)."""


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamp: Stamp) -> GitRepo:
    repo = make_repo(tmp_path / "repo")
    shutil.copyfile(BLINK, repo.path / BLINK.name)
    monkeypatch.chdir(repo.path)
    code, _, err = stamp("manifest", BLINK.name)
    assert code == 0, err
    return repo


@pytest.fixture
def boards() -> Iterator[Callable[..., SerialBoard]]:
    started: list[SerialBoard] = []

    def start(
        app: EspApp | None = None, identity: dict[str, Any] | None = None, **log: Any
    ) -> SerialBoard:
        app = app or blink()
        report = report_line(identity) if identity else None
        options: dict[str, Any] = {"boot_delay": 0.2, "reboot_every": 0.5}
        options.update(log.pop("board", {}))
        board = SerialBoard(
            identity or {},
            answer_queries=bool(identity),
            boot_log=boot_log(app, report=report, **log),
            **options,
        )
        started.append(board)
        board.start()
        return board

    try:
        yield start
    finally:
        for board in started:
            board.close()


def blink() -> EspApp:
    app = esp_app(BLINK.read_bytes(), BLINK.name)
    assert app is not None and app.elf_sha256 == SHA
    return app


def verify(stamp: Stamp, board: SerialBoard, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = stamp(
        "verify", "--device", board.device, "--manifest", "esp_idf_blink_esp32s2.stamp.json",
        "--json", *args,
    )  # fmt: skip
    return code, json.loads(out), err


def test_sixteen_matching_digits_verify_and_say_how_many(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    board = boards()
    code, verdict, _ = verify(stamp, board, "--timeout", TIMEOUT)
    assert code == 0 and verdict["status"] == "verified"
    [compared] = verdict["compared"]
    assert compared["key"] == "elf_sha256" and compared["reported"] == SHA[:16]
    assert compared["digits"] == 16 and compared["of_digits"] == 64
    assert "16 of 64 digits compared" in verdict["message"]
    assert "CONFIG_APP_RETRIEVE_LEN_ELF_SHA=64" in verdict["message"]
    assert verdict["reported"]["project_name"] == "blink"
    assert board.queries == 0  # an ESP-IDF app without stamp is never sent ?stamp


def test_all_64_digits_compare_in_full(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    code, verdict, _ = verify(stamp, boards(hash_len=64, ellipsis=False), "--timeout", TIMEOUT)
    assert code == 0
    [compared] = verdict["compared"]
    assert compared["reported"] == SHA and compared["digits"] == compared["of_digits"] == 64
    assert "64 of 64 digits compared" in verdict["message"]
    assert "CONFIG_APP_RETRIEVE_LEN_ELF_SHA" not in verdict["message"]


@pytest.mark.parametrize("position", [0, 9, 15])
def test_one_differing_digit_is_a_mismatch(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard], position: int
) -> None:
    digit = "0" if SHA[position] != "0" else "1"
    other = SHA[:position] + digit + SHA[position + 1 :]
    board = boards(dataclasses.replace(blink(), elf_sha256=other))
    code, verdict, _ = stamp_verify_text(stamp, board)
    assert code == 1, verdict
    assert "MISMATCH" in verdict and f"device reports {other[:16]}" in verdict
    # The sentence shows the hashes up to the digit that differs.
    assert other[: max(8, position + 1)] in verdict


def stamp_verify_text(stamp: Stamp, board: SerialBoard) -> tuple[int, str, str]:
    return stamp(
        "verify", "--device", board.device, "--manifest", "esp_idf_blink_esp32s2.stamp.json",
        "--timeout", TIMEOUT,
    )  # fmt: skip


def test_a_differing_digit_is_a_mismatch_even_in_a_short_hash(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    other = SHA[:5] + ("0" if SHA[5] != "0" else "1") + SHA[6:]
    board = boards(dataclasses.replace(blink(), elf_sha256=other), hash_len=8)
    code, verdict, _ = verify(stamp, board, "--timeout", TIMEOUT)
    assert code == 1 and verdict["status"] == "mismatch"


def test_fewer_than_sixteen_matching_digits_cannot_verify(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    code, verdict, _ = verify(stamp, boards(hash_len=8), "--timeout", SHORT_TIMEOUT)
    assert code == 3 and verdict["status"] == "no_report"
    assert "printed only 8 of the ELF SHA-256's 64 digits" in verdict["message"]
    assert "fewer than 16 cannot identify the build" in verdict["message"]
    assert verdict["compared"][0]["digits"] == 8 and verdict["compared"][0]["match"] is True


def test_the_stamp_line_is_used_as_well(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    """Firmware that also prints `@stamp`: asked with ?stamp, verified by it alone."""
    path = checkout.path / "esp_idf_blink_esp32s2.stamp.json"
    manifest = load_manifest(path)
    identity = dataclasses.replace(manifest.identity, edit=12, git=GIT, dirty=False)
    write_manifest(dataclasses.replace(manifest, identity=identity), path)
    # It booted before anyone listened: only its answer to ?stamp can be heard.
    board = boards(identity={"edit": 12, "git": GIT, "dirty": False}, board={"boot_delay": 1e6})
    code, verdict, _ = verify(stamp, board, "--timeout", TIMEOUT)
    assert code == 0, verdict["message"]
    assert board.queries >= 1 and board.boots == 0
    assert {c["key"] for c in verdict["compared"]} == {"edit", "git", "dirty"}


def test_boot_log_and_stamp_line_together(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    board = boards(identity={"edit": 12, "git": GIT, "dirty": False})
    code, verdict, _ = verify(stamp, board, "--timeout", TIMEOUT)
    assert code == 0 and verdict["status"] == "verified"


# --- the comparison rule itself (SPEC section 5) -----------------------------------------


@pytest.mark.parametrize(
    ("reported", "match", "strong"),
    [
        (SHA, True, True),
        (SHA.upper(), True, True),
        (SHA[:16], True, True),
        (SHA[:16].upper(), True, True),
        (SHA[:15], True, False),
        (SHA[:8], True, False),
        ("f" + SHA[1:16], False, False),
        (SHA[:63] + "1", False, False),  # the last of 64 digits
        (SHA + "00", False, False),  # longer than the hash: compared in full
    ],
)
def test_elf_sha256_prefix_rule(reported: str, match: bool, strong: bool) -> None:
    [c] = compare(Identity(elf_sha256=SHA), Identity(elf_sha256=reported.lower()))
    assert c.match is match
    assert strong_match([c]) is strong


def test_other_hashes_are_never_compared_as_a_prefix() -> None:
    [c] = compare(Identity(build_id="ab" * 20), Identity(build_id="ab" * 8))
    assert c.match is False and c.digits is None


def test_informational_fields_are_never_compared() -> None:
    expected = Identity(elf_sha256=SHA, app_version="1.0", project_name="blink")
    reported = Identity(elf_sha256=SHA, app_version="2.0", project_name="other")
    assert [c.key for c in compare(expected, reported)] == ["elf_sha256"]


def test_manifest_round_trip_keeps_the_esp_keys(tmp_path: Path) -> None:
    identity = Identity(elf_sha256=SHA, app_version="v1", idf_version="v5.1", compile_time="x")
    manifest = Manifest(identity=identity, recorded_at="2026-12-01T00:00:00Z", esp={"chip": "X"})
    write_manifest(manifest, tmp_path / "m.json")
    assert load_manifest(tmp_path / "m.json") == manifest


def test_stamp_flash_verifies_an_esp_idf_app_without_asking(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    board = boards()
    (checkout.path / "stamp.toml").write_text(
        f'[devices.esp]\nserial = "{board.path}"\nflash_command = "true {{bin}}"\n'
    )
    code, out, err = stamp(
        "flash", "--device", "esp", "--retries", "0", "--timeout", TIMEOUT, BLINK.name
    )
    assert code == 0, err
    assert out.startswith("VERIFIED: device runs blink qa-test-v5.0-20220830-4-g4532e6")
    assert board.queries == 0


def test_a_mismatch_names_the_build_from_the_history_by_the_printed_digits(
    checkout: GitRepo, stamp: Stamp, boards: Callable[..., SerialBoard]
) -> None:
    other = FIXTURES / "esp" / "esp32-app-template.bin"
    code, _, err = stamp("manifest", other, "-o", "other.stamp.json")  # in the history too
    assert code == 0, err
    app = esp_app(other.read_bytes(), other.name)
    assert app is not None
    code, verdict, _ = verify(stamp, boards(app), "--timeout", TIMEOUT)
    assert code == 1
    assert verdict["matched_build"]["elf_sha256"] == app.elf_sha256
    assert verdict["matched_build"]["project_name"] == "app-template"
    assert verdict["message"].startswith("MISMATCH: device runs app-template 1cd5752 (built")
    assert (
        "expected blink qa-test-v5.0-20220830-4-g4532e6 (ELF SHA-256 3059e6b5"
        in (verdict["message"])
    )
