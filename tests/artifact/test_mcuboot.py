"""`stamp inspect` / `stamp manifest` on MCUboot images signed here by the real imgtool,
compared with what `imgtool verify` says about the same files (also damaged copies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stamp.artifact.mcuboot import McubootError, read_mcuboot
from tests.support import Stamp
from tests.support.cloud import GIT_A
from tests.support.mcuboot import KEY_TYPES, app_body, imgtool_verify, keygen, sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {key_type: keygen(directory, key_type) for key_type in KEY_TYPES}


@pytest.mark.parametrize("key_type", [*KEY_TYPES, None])
@pytest.mark.parametrize("suffix", [".bin", ".hex"])
def test_inspect_agrees_with_imgtool_verify(
    stamp: Stamp, tmp_path: Path, keys: dict[str, Path], key_type: str | None, suffix: str
) -> None:
    key = keys[key_type] if key_type else None
    image = sign(tmp_path, app_body(), f"app{suffix}", key=key, version="1.2.3+4",
                 extra=("-s", "auto") if key_type == "ecdsa-p256" else ())  # fmt: skip
    reference = imgtool_verify(image, key)
    assert reference.ok, reference.output

    code, out, err = stamp("inspect", image, "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    mcu = result["mcuboot"]
    assert result["kind"] == "mcuboot"
    assert result["image_version"] == reference.version == "1.2.3+4"
    assert mcu["hash_ok"] is True and mcu["verify_result"] == "OK"
    assert reference.digest is not None
    assert result["mcuboot_hash"] == reference.digest
    assert mcu["signed"] is (key_type is not None)
    assert mcu["key_type"] == (KEY_TYPES[key_type] if key_type else None)
    assert mcu["format"] == suffix[1:]
    if key_type == "ecdsa-p256":
        assert [t["name"] for t in mcu["tlvs"] if t["protected"]] == ["SEC_CNT"]
    # The stamp record compiled into the body is found through the MCUboot wrapper.
    assert (result["edit"], result["git"]) == (7, GIT_A)


def test_human_output_names_key_and_hash(
    stamp: Stamp, tmp_path: Path, keys: dict[str, Path]
) -> None:
    image = sign(tmp_path, app_body(), "app.bin", key=keys["ecdsa-p256"], version="2.0.1")
    code, out, _ = stamp("inspect", image)
    assert code == 0
    assert f"{image}: MCUboot image (binary)" in out
    assert "version        2.0.1+0" in out
    assert "SHA256         ok" in out
    assert "signed         yes, ECDSA P-256, public key hash in the image" in out


def test_corrupt_body_is_reported_like_imgtool(
    stamp: Stamp, tmp_path: Path, keys: dict[str, Path]
) -> None:
    image = sign(tmp_path, app_body(), "app.bin", key=keys["rsa-2048"])
    data = bytearray(image.read_bytes())
    data[0x300] ^= 0x01
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    reference = imgtool_verify(bad)
    assert not reference.ok and "invalid hash" in reference.output

    code, out, err = stamp("inspect", bad, "--json")
    assert code == 2
    result = json.loads(out)
    assert result["mcuboot"]["hash_ok"] is False
    assert result["mcuboot"]["verify_result"] == "INVALID_HASH"
    assert result["mcuboot_hash"] is None
    assert "does not match its content" in err and "Traceback" not in err


def test_every_truncation_is_a_clean_error(
    stamp: Stamp, tmp_path: Path, keys: dict[str, Path]
) -> None:
    image = sign(tmp_path, app_body(size=600), "app.bin", key=keys["ecdsa-p256"],
                 extra=("-s", "auto"))  # fmt: skip
    data = image.read_bytes()
    for length in range(4, len(data)):
        try:
            parsed = read_mcuboot(data[:length], "cut.bin")
        except McubootError as exc:
            assert "truncated" in exc.message or "damaged" in exc.message, exc.message
            continue
        # Only a cut inside the last TLV's value can still parse; its hash is then wrong or
        # its signature short, never silently fine with the same TLVs.
        assert parsed is not None and parsed.tlv_end <= length
    # imgtool refuses the same copies given the key (with a message, or a struct.error
    # traceback). Without a key it stops at the hash TLV and calls a copy cut inside the
    # signature fine; stamp does not: the TLV area the header promises is not all there.
    for length in (20, 0x200 + 100, len(data) - 40):
        copy = tmp_path / f"cut{length}.bin"
        copy.write_bytes(data[:length])
        assert not imgtool_verify(copy, keys["ecdsa-p256"]).ok
        assert imgtool_verify(copy).ok is (length == len(data) - 40)
        code, _out, err = stamp("inspect", copy)
        assert code == 2 and "Traceback" not in err
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) - 40])
    code, out, err = stamp("inspect", cut)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "truncated MCUboot image" in err, err


def test_mutations_never_raise_anything_but_stamp_errors(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    image = sign(tmp_path, app_body(size=300), "app.bin", key=keys["rsa-2048"])
    data = image.read_bytes()
    for at in range(0, len(data), 3):
        for value in (0x00, 0xFF, data[at] ^ 0x80):
            mutated = data[:at] + bytes([value]) + data[at + 1 :]
            try:
                parsed = read_mcuboot(mutated, "m.bin")
            except McubootError:
                continue
            if parsed is not None and mutated != data and parsed.hash_ok:
                # Only bytes outside the hashed region may change without the hash noticing.
                assert at >= parsed.hdr_size + parsed.img_size + parsed.protected_tlv_size
