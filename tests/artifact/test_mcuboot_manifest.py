"""`stamp manifest` on MCUboot images signed here by the real imgtool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import GitRepo, Stamp
from tests.support.mcuboot import app_body, imgtool_verify, keygen, sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {key_type: keygen(directory, key_type) for key_type in ("rsa-2048", "ecdsa-p256")}


def test_manifest_of_a_signed_image(
    stamp: Stamp,
    tmp_path: Path,
    keys: dict[str, Path],
    repo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Built from this repository's HEAD, so `stamp manifest` has nothing to warn about.
    image = sign(tmp_path, app_body(edit=9, git=repo.head), "zephyr.signed.bin",
                 key=keys["ecdsa-p256"], version="3.1.0+7")  # fmt: skip
    reference = imgtool_verify(image)
    monkeypatch.chdir(repo.path)
    code, out, err = stamp("manifest", image, "-o", tmp_path / "m.json", "--json")
    assert (code, err) == (0, "")
    manifest = json.loads(out)
    assert manifest["mcuboot_hash"] == reference.digest
    assert manifest["image_version"] == "3.1.0+7"
    assert manifest["edit"] == 9
    assert manifest["mcuboot"]["key_type"] == "ECDSA P-256"


def test_manifest_refuses_a_bad_hash(stamp: Stamp, tmp_path: Path, keys: dict[str, Path]) -> None:
    image = sign(tmp_path, app_body(), "app.bin", key=keys["rsa-2048"])
    data = bytearray(image.read_bytes())
    data[0x250] ^= 0xFF
    image.write_bytes(bytes(data))
    code, _out, err = stamp("manifest", image, "-o", tmp_path / "m.json")
    assert code == 2 and "does not match its content" in err
    assert not (tmp_path / "m.json").exists()


def test_elf_and_its_signed_bin_agree(
    stamp: Stamp,
    tmp_path: Path,
    keys: dict[str, Path],
    repo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ELF from arm-none-eabi-gcc, objcopy'd and signed by imgtool, is one build."""
    from stamp.record import StampRecord
    from tests.support.elf import build_elf, objcopy_bin

    elf = build_elf(tmp_path / "new", StampRecord(edit=5, git=repo.head, dirty=False))
    signed = sign(tmp_path, objcopy_bin(elf).read_bytes(), "app.signed.bin", key=keys["rsa-2048"])
    monkeypatch.chdir(repo.path)
    code, out, err = stamp("manifest", elf, "--bin", signed, "-o", tmp_path / "m.json", "--json")
    assert (code, err) == (0, "")
    manifest = json.loads(out)
    assert manifest["mcuboot_hash"] == imgtool_verify(signed).digest
    assert manifest["edit"] == 5 and manifest["build_id"]

    # A signed image of another build is refused beside this ELF.
    other = build_elf(tmp_path / "old", StampRecord(edit=4, git=repo.head, dirty=False))
    stale = sign(tmp_path, objcopy_bin(other).read_bytes(), "old.signed.bin", key=keys["rsa-2048"])
    code, _out, err = stamp("manifest", elf, "--bin", stale, "-o", tmp_path / "m2.json")
    assert code == 2 and "holds edit 4" in err, err
