"""ESP-IDF app images: `stamp inspect --json` against the real `esptool image-info`.

The images are Espressif's own test images (fixtures/esp/README.md); the reference is the
esptool command-line tool run as a process, its text output parsed here. Corrupt and
truncated copies must end in a clean exit 2 (one sentence) or in damage reported, never
a traceback.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stamp.artifact.esp import parse_app_desc, read_esp_image
from stamp.artifact.image import load_bytes
from stamp.artifact.inspection import Inspection, inspect_firmware
from stamp.errors import ArtifactError
from tests.support import FIXTURES, Stamp

ESP = FIXTURES / "esp"
BINS = sorted(ESP.glob("*.bin"))
ELFS = sorted(ESP.glob("*.elf"))


def esptool() -> list[str]:
    """The esptool command of this environment; fails loudly when it is not installed."""
    exe = shutil.which("esptool", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("esptool is not installed: pip install -e '.[test,esp]' (make test)", False)
    return [exe]


def image_info(path: Path) -> dict[str, str]:
    """`esptool image-info PATH` as {label: value} of its "Label: value" lines."""
    done = subprocess.run(
        [*esptool(), "image-info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    info: dict[str, str] = {}
    for line in done.stdout.splitlines():
        label, sep, value = line.partition(": ")
        if sep and label not in info:
            info[label] = value
    return info


def test_the_fixtures_are_there() -> None:
    assert len(BINS) == 3 and len(ELFS) == 2, f"fixtures missing in {ESP}"


@pytest.mark.parametrize("path", BINS, ids=lambda p: p.name)
def test_inspect_json_agrees_with_esptool_image_info(path: Path, stamp: Stamp) -> None:
    reference = image_info(path)
    code, out, err = stamp("inspect", "--json", path)
    assert code == 0, err
    got = json.loads(out)
    esp = got["esp"]
    desc = esp["app_desc"]
    assert got["kind"] == "esp"
    assert reference["Detected image type"] == esp["chip"].upper()
    assert reference["Chip ID"] == f"{esp['chip_id']} ({esp['chip']})"
    assert int(reference["Entry point"], 16) == esp["entry"]
    assert int(reference["Segments"]) == len(esp["segments"])
    assert reference["Project name"] == desc["project_name"] == got["project_name"]
    assert reference["App version"] == desc["app_version"] == got["app_version"]
    assert reference["Compile time"] == desc["compile_time"] == got["compile_time"]
    assert reference["ESP-IDF"] == desc["idf_version"] == got["idf_version"]
    assert reference["ELF file SHA256"] == desc["elf_sha256"] == got["elf_sha256"]
    assert reference["Secure version"] == str(desc["secure_version"])
    assert reference["Minimal eFuse block revision"] == desc["min_efuse_blk_rev"]
    assert reference["Maximal eFuse block revision"] == desc["max_efuse_blk_rev"]
    checksum, _, state = reference["Checksum"].partition(" ")
    assert int(checksum, 16) == esp["checksum"]
    assert (state == "(valid)") is esp["checksum_ok"] is True
    digest, _, state = reference["Validation hash"].partition(" ")
    assert digest == esp["computed_validation_hash"] == esp["validation_hash"]
    assert (state == "(valid)") is esp["validation_hash_ok"] is True
    assert got["problems"] == []


@pytest.mark.parametrize("path", ELFS, ids=lambda p: p.name)
def test_an_esp_idf_elf_is_identified_by_its_file_hash(path: Path, stamp: Stamp) -> None:
    code, out, err = stamp("inspect", "--json", path)
    assert code == 0, err
    got = json.loads(out)
    assert got["elf_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    made_from_it = image_info(path.with_suffix(".bin"))
    assert got["elf_sha256"] == made_from_it["ELF file SHA256"]
    assert got["project_name"] == made_from_it["Project name"]
    assert got["esp"]["from_elf"] is True


def test_the_human_report_names_the_chip_and_checks(stamp: Stamp) -> None:
    code, out, _ = stamp("inspect", ESP / "esp_idf_blink_esp32s2.bin")
    assert code == 0
    assert "ESP-IDF app image for ESP32-S2" in out
    assert re.search(r"checksum\s+ok \(0x18\)", out)
    assert re.search(r"validation\s+ok \(10f48f4a", out)
    assert "3059e6b55a965865febd28fa9f6028ad5cd0dab311febb0a3ea79eaa223ac2b0" in out


# --- damage -------------------------------------------------------------------------------


def _copy(tmp_path: Path, data: bytes, name: str = "app.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_flipped_segment_byte_is_a_bad_checksum_and_hash(tmp_path: Path, stamp: Stamp) -> None:
    data = bytearray((ESP / "esp_idf_blink_esp32s2.bin").read_bytes())
    data[0x400] ^= 0x01  # inside the first segment's data, after the app description
    path = _copy(tmp_path, bytes(data))
    reference = image_info(path)
    code, out, err = stamp("inspect", "--json", path)
    assert code == 2
    got = json.loads(out)["esp"]
    assert "invalid" in reference["Checksum"] and got["checksum_ok"] is False
    assert "(invalid)" in reference["Validation hash"] and got["validation_hash_ok"] is False
    assert "checksum" in err and "Traceback" not in err


def test_an_edited_validation_hash_is_reported(tmp_path: Path, stamp: Stamp) -> None:
    data = bytearray((ESP / "esp32c6-appdesc.bin").read_bytes())
    data[-1] ^= 0xFF  # the last byte of the appended SHA-256
    code, out, err = stamp("inspect", "--json", _copy(tmp_path, bytes(data)))
    assert code == 2
    got = json.loads(out)["esp"]
    assert got["checksum_ok"] is True and got["validation_hash_ok"] is False
    assert "validation hash does not match" in err


def test_an_image_without_the_elf_hash_says_it_cannot_be_matched(
    tmp_path: Path, stamp: Stamp
) -> None:
    data = bytearray((ESP / "esp32c6-appdesc.bin").read_bytes())
    desc_at = 0x20 + 0x90  # app description + offset of app_elf_sha256
    data[desc_at : desc_at + 32] = bytes(32)
    image = read_esp_image(bytes(data), "x.bin")
    assert image.elf_sha256 is None
    assert any("cannot be matched to its ELF" in p for p in image.problems("x.bin"))


@pytest.mark.parametrize("path", BINS, ids=lambda p: p.name)
def test_every_truncation_is_a_clean_error_or_reported_damage(path: Path) -> None:
    data = path.read_bytes()
    step = max(1, len(data) // 300)
    cuts = sorted({*range(1, 64), *range(64, len(data), step), len(data) - 1, len(data) - 33})
    for cut in cuts:
        _inspect_cleanly(data[:cut], f"{path.name}[:{cut}]")


@pytest.mark.parametrize("path", BINS, ids=lambda p: p.name)
def test_random_mutations_are_clean_errors_or_reported_damage(path: Path) -> None:
    data = path.read_bytes()
    rng = random.Random(path.name)
    hashed = read_esp_image(data, path.name)
    hashed_end = len(data) - 32  # the validation hash covers every byte before it
    assert hashed.digest_appended
    damaged = 0
    for trial in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(min(len(data), 512) if trial % 2 else len(data))
            mutated[at] = rng.randrange(256)
        result = _inspect_cleanly(bytes(mutated), f"{path.name} mutation {trial}")
        covered = mutated[:hashed_end] != data[:hashed_end] and mutated[23] == data[23]
        if result is not None and result.esp is not None and covered:
            assert result.problems, f"mutation {trial} of {path.name} went unnoticed"
            damaged += 1
    assert damaged > 50


def _inspect_cleanly(data: bytes, what: str) -> Inspection | None:
    """An inspection, or None after one clean ArtifactError sentence; any other exception
    fails the test."""
    try:
        result = inspect_firmware(load_bytes(data, what))
    except ArtifactError as exc:
        assert exc.message and "\n" not in exc.message, what
        return None
    assert all(p and "\n" not in p for p in result.problems), what
    return result


def test_a_truncated_image_via_the_cli_is_exit_2(tmp_path: Path, stamp: Stamp) -> None:
    data = (ESP / "esp32-app-template.bin").read_bytes()
    code, out, err = stamp("inspect", _copy(tmp_path, data[: len(data) // 2]))
    assert code == 2 and out == ""
    assert "damaged ESP-IDF image" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_app_desc_with_full_width_strings() -> None:
    # esp32c6-appdesc: 31 characters and a NUL in each field (README).
    data = (ESP / "esp32c6-appdesc.bin").read_bytes()
    desc = parse_app_desc(data[0x20:])
    assert desc is not None
    assert desc.project_name == "-" * 31 and desc.idf_version == "z" * 31
    assert parse_app_desc(bytes(256)) is None
    assert parse_app_desc(data[0x20:0x40]) is None


def test_without_esptool_an_esp_image_is_one_clear_sentence(
    monkeypatch: pytest.MonkeyPatch, stamp: Stamp
) -> None:
    # None in sys.modules makes `import esptool.bin_image` raise ImportError, as when the
    # `esp` extra is not installed.
    monkeypatch.setitem(sys.modules, "esptool.bin_image", None)
    code, out, err = stamp("inspect", ESP / "esp_idf_blink_esp32s2.bin")
    assert code == 2 and out == ""
    assert err.strip() == (
        "stamp: error: reading ESP-IDF images needs esptool: pip install "
        "'stamp-firmware[esp]' (or pip install esptool)"
    )
    code, _, _ = stamp("inspect", ESP / "esp32c6-appdesc.elf")  # an ELF needs no esptool
    assert code == 0
