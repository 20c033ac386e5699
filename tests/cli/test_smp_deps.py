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
    # As if the extra were not installed: the import fails (and nothing is cached).
    mcuboot._require_imgtool.cache_clear()
    monkeypatch.setitem(sys.modules, "imgtool", None)
    monkeypatch.setitem(sys.modules, "imgtool.image", None)
    try:
        code, out, err = stamp("inspect", image)
    finally:
        mcuboot._require_imgtool.cache_clear()
    assert (code, out) == (2, "")
    assert err == "stamp: error: MCUboot images need imgtool: pip install 'stamp-firmware[smp]'\n"


def test_other_files_never_import_imgtool(tmp_path: Path) -> None:
    """imgtool pulls in `cryptography` (~75 ms): `stamp manifest` on a .bin that is no
    MCUboot image must not pay for it (bench/README.md, stamp manifest)."""
    import subprocess

    plain = tmp_path / "plain.bin"
    plain.write_bytes(app_body())
    code = (
        "import sys; from pathlib import Path; from stamp.artifact.image import load_file; "
        f"load_file(Path({str(plain)!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('imgtool', 'cryptography')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_smp_device_without_smpclient(
    stamp: Stamp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text('{"schema": 1, "mcuboot_hash": "' + "ab" * 32 + '"}')
    monkeypatch.setitem(sys.modules, "smpclient", None)
    code, _out, err = stamp("verify", "--device", "smp:serial:/dev/ttyACM0", "--manifest", manifest)
    assert code == 2
    assert err == "stamp: error: SMP devices need smpclient: pip install 'stamp-firmware[smp]'\n"
