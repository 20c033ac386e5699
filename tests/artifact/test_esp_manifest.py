"""`stamp manifest` on ESP-IDF builds: the ELF's SHA-256 is the identity, a stale .bin refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from stamp.artifact.manifest import load_manifest
from tests.artifact.test_esp import esptool
from tests.support import FIXTURES, GitRepo, Stamp, make_repo

ESP = FIXTURES / "esp"
TEMPLATE_SHA = "138cb4392e3b79803b69e554ee515713d3ace655f5dab3f9fc08b1cfbfd6d727"


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """A git checkout holding copies of the ESP fixtures (the history goes in its .git)."""
    repo = make_repo(tmp_path / "repo")
    for path in ESP.glob("*.*"):
        shutil.copyfile(path, repo.path / path.name)
    monkeypatch.chdir(repo.path)
    return repo


def test_elf_and_bin_that_belong_together(checkout: GitRepo, stamp: Stamp) -> None:
    code, out, err = stamp("manifest", "esp32-app-template.elf", "--bin", "esp32-app-template.bin")
    assert code == 0, err
    assert "ESP-IDF app app-template 1cd5752" in out and "ELF SHA-256 138cb439" in out
    written = json.loads((checkout.path / "esp32-app-template.stamp.json").read_text())
    assert written["elf_sha256"] == TEMPLATE_SHA
    assert written["app_version"] == "1cd5752" and written["project_name"] == "app-template"
    assert written["idf_version"] == "v4.0-dev-30-g31ca6e399"
    assert written["compile_time"] == "Mar 18 2019 10:47:33"
    assert written["esp"]["chip"] == "ESP32" and written["esp"]["validation_hash_ok"] is True
    assert written["edit"] is None  # no stamp record needed: the boot log identifies it
    manifest = load_manifest(checkout.path / "esp32-app-template.stamp.json")
    assert manifest.identity.elf_sha256 == TEMPLATE_SHA
    assert manifest.identity.project_name == "app-template"


def test_a_bin_from_another_elf_is_refused(checkout: GitRepo, stamp: Stamp) -> None:
    code, out, err = stamp(
        "manifest", "esp32-app-template.elf", "--bin", "esp_idf_blink_esp32s2.bin"
    )
    assert code == 2 and out == ""
    assert "was made from another ELF" in err and "3059e6b5" in err and TEMPLATE_SHA in err
    assert not (checkout.path / "esp32-app-template.stamp.json").exists()


def test_a_rebuilt_elf_makes_the_bin_stale(checkout: GitRepo, stamp: Stamp) -> None:
    elf = checkout.path / "esp32c6-appdesc.elf"
    elf.write_bytes(elf.read_bytes() + b"\0")  # any change to the ELF changes its hash
    code, _, err = stamp("manifest", elf.name, "--bin", "esp32c6-appdesc.bin")
    assert code == 2 and "left over from an older build" in err


@pytest.mark.parametrize(
    ("name", "sha"),
    [
        ("esp32c6-appdesc.elf", "10eb99e6b6bc87b9cafe81135d0993376207292653c67cf4f8b772bd7e44867a"),
        (
            "esp_idf_blink_esp32s2.bin",
            "3059e6b55a965865febd28fa9f6028ad5cd0dab311febb0a3ea79eaa223ac2b0",
        ),
    ],
)
def test_one_file_alone(checkout: GitRepo, stamp: Stamp, name: str, sha: str) -> None:
    code, out, err = stamp("manifest", name, "--json")
    assert code == 0, err
    assert json.loads(out)["elf_sha256"] == sha
    if name.endswith(".elf"):
        assert sha == hashlib.sha256((checkout.path / name).read_bytes()).hexdigest()


def test_a_bin_without_the_elf_hash_is_refused(checkout: GitRepo, stamp: Stamp) -> None:
    # The real esptool without --elf-sha256-offset leaves the hash all zeros (README).
    subprocess.run(
        [
            *esptool(),
            "--chip",
            "esp32",
            "elf2image",
            "esp32-app-template.elf",
            "-o",
            "unpatched.bin",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code, _, err = stamp("manifest", "esp32-app-template.elf", "--bin", "unpatched.bin")
    assert code == 2 and "stores no ELF SHA-256" in err and "--elf-sha256-offset 0xb0" in err
    code, out, _ = stamp("inspect", "--json", "unpatched.bin")
    assert code == 2 and json.loads(out)["elf_sha256"] is None
    assert json.loads(out)["esp"]["checksum_ok"] is True


def test_a_damaged_bin_is_refused(checkout: GitRepo, stamp: Stamp) -> None:
    data = (checkout.path / "esp_idf_blink_esp32s2.bin").read_bytes()
    (checkout.path / "cut.bin").write_bytes(data[:5000])
    code, _, err = stamp("manifest", "esp32-app-template.elf", "--bin", "cut.bin")
    assert code == 2 and "damaged ESP-IDF image" in err and "Traceback" not in err
