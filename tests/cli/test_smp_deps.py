"""Without the `smp` extra, MCUboot and SMP commands say what to install in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stamp.artifact import mcuboot
from tests.support import Stamp
from tests.support.mcuboot import app_body, sign


def test_inspect_without_imgtool(
    stamp: Stamp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = sign(tmp_path, app_body(), "app.bin")
    monkeypatch.setattr(mcuboot, "_imgtool", None)
    code, out, err = stamp("inspect", image)
    assert (code, out) == (2, "")
    assert err == "stamp: error: MCUboot images need imgtool: pip install 'stamp-firmware[smp]'\n"


def test_smp_device_without_smpclient(
    stamp: Stamp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text('{"schema": 1, "mcuboot_hash": "' + "ab" * 32 + '"}')
    monkeypatch.setitem(sys.modules, "smpclient", None)
    code, _out, err = stamp("verify", "--device", "smp:serial:/dev/ttyACM0", "--manifest", manifest)
    assert code == 2
    assert err == "stamp: error: SMP devices need smpclient: pip install 'stamp-firmware[smp]'\n"
