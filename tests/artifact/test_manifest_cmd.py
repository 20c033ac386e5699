"""`stamp manifest` on real ELFs and .bins: what it records, what it refuses, the history."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from stamp.artifact.history import History
from stamp.artifact.manifest import load_manifest
from stamp.artifact.particle.build import patch_suffix
from stamp.artifact.particle.module import parse_module
from stamp.config import load_config
from stamp.record import StampRecord
from stamp.state_dir import find_state_dir
from tests.support import FIXTURES, GitRepo, Stamp, make_repo, require_tool, run_stamp
from tests.support.elf import (
    CFLAGS,
    GIT_A,
    GIT_B,
    LAYOUTS,
    RECORD,
    build_elf,
    objcopy_bin,
    readelf_build_id,
    sha256sum,
)
from tests.support.particle import SPEC_PARTICLE_KEYS


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """A git checkout to work in: the history lands in its .git/stamp/."""
    checkout = make_repo(tmp_path / "fw")
    monkeypatch.chdir(checkout.path)
    return checkout


def history(repo: GitRepo) -> list[dict[str, object]]:
    """The manifests in the checkout's build history, oldest first."""
    with History.open(find_state_dir(load_config(cwd=repo.path))) as builds:
        return [entry.manifest.to_json() for entry in reversed(builds.newest())]


def besides_foreign_commit(err: str) -> str:
    """stderr without the warning that the record's made-up SHA is not in the repository."""
    lines = err.splitlines(keepends=True)
    return "".join(line for line in lines if "is not a commit of this repository" not in line)


def assert_nothing_written(directory: Path, before: set[Path]) -> None:
    """No manifest, no temp file left behind."""
    assert set(directory.iterdir()) == before


@pytest.mark.toolchain
def test_manifest_of_an_elf(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD)
    code, out, err = stamp("manifest", "build/app.elf")
    assert (code, besides_foreign_commit(err)) == (0, "")
    build_id = readelf_build_id(elf)
    line = "stamp: manifest build/app.stamp.json (edit 112, git 1a2b3c4d, build-id {}…)\n"
    assert out == line.format(build_id[:4])

    manifest = load_manifest(repo.path / "build" / "app.stamp.json")
    assert (manifest.identity.edit, manifest.identity.git, manifest.identity.dirty) == (
        112,
        GIT_A,
        False,
    )
    assert manifest.identity.build_id == build_id
    assert manifest.identity.image_sha256 == sha256sum(objcopy_bin(elf, repo.path / "ref.bin"))
    assert manifest.identity.app_hash is None and manifest.particle is None
    assert manifest.elf is not None and manifest.bin is None
    assert manifest.elf.path == "app.elf"  # relative to the manifest's directory
    assert manifest.elf.sha256 == sha256sum(elf)
    assert manifest.elf.size == elf.stat().st_size
    assert [entry["image_sha256"] for entry in history(repo)] == [manifest.identity.image_sha256]


@pytest.mark.toolchain
def test_running_twice_adds_no_duplicate_to_the_history(repo: GitRepo, stamp: Stamp) -> None:
    build_elf(repo.path / "build", RECORD)
    assert stamp("manifest", "build/app.elf")[0] == 0
    assert stamp("manifest", "build/app.elf")[0] == 0
    assert len(history(repo)) == 1
    build_elf(repo.path / "build", StampRecord(edit=113, git=GIT_A, dirty=True))
    code, out, _ = stamp("manifest", "build/app.elf")
    assert code == 0 and "edit 113, git 1a2b3c4d, dirty" in out
    assert [entry["edit"] for entry in history(repo)] == [112, 113]


@pytest.mark.toolchain
def test_json_output_is_the_manifest_file(repo: GitRepo, stamp: Stamp) -> None:
    build_elf(repo.path / "build", RECORD)
    code, out, _ = stamp("manifest", "build/app.elf", "-o", "out/m.json", "--json")
    assert code == 0
    printed = json.loads(out)
    written = json.loads((repo.path / "out" / "m.json").read_text())
    assert printed == written
    assert printed["artifacts"]["elf"]["path"] == "../build/app.elf"
    assert {"schema", "edit", "git", "dirty", "build_id", "app_hash", "image_sha256"} <= set(
        printed
    )


@pytest.mark.toolchain
def test_elf_with_its_objcopy_bin(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="gaps")
    binary = objcopy_bin(elf)
    code, _, err = stamp("manifest", elf, "--bin", binary)
    assert (code, besides_foreign_commit(err)) == (0, "")
    manifest = load_manifest(elf.with_name("app.stamp.json"))
    assert manifest.identity.image_sha256 == sha256sum(binary)
    assert manifest.bin is not None and manifest.bin.path == "app.bin"


@pytest.mark.toolchain
def test_bin_from_an_older_build_is_caught(repo: GitRepo, stamp: Stamp) -> None:
    build = repo.path / "build"
    binary = objcopy_bin(build_elf(build, StampRecord(edit=111, git=GIT_A, dirty=False)))
    elf = build_elf(build, RECORD)
    before = set(build.iterdir())
    code, out, err = stamp("manifest", elf, "--bin", binary)
    assert code == 2 and out == ""
    assert "left over from an older build" in err and "edit 111" in err and "edit 112" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert_nothing_written(build, before)
    assert history(repo) == []


@pytest.mark.toolchain
def test_bin_older_than_the_elf_with_the_same_edit_is_caught(repo: GitRepo, stamp: Stamp) -> None:
    old = objcopy_bin(build_elf(repo.path / "old", StampRecord(edit=112, git=GIT_B, dirty=True)))
    elf = build_elf(repo.path / "build", RECORD)
    os.utime(old, ns=(elf.stat().st_mtime_ns - 10**9,) * 2)
    code, _, err = stamp("manifest", elf, "--bin", old)
    assert code == 2
    assert "left over from an older build" in err and "older than" in err


@pytest.mark.toolchain
def test_bin_of_another_elf_is_caught(repo: GitRepo, stamp: Stamp) -> None:
    other = objcopy_bin(build_elf(repo.path / "other", RECORD, layout="gaps"))
    elf = build_elf(repo.path / "build", RECORD)
    os.utime(other, ns=(elf.stat().st_mtime_ns + 10**9,) * 2)
    code, _, err = stamp("manifest", elf, "--bin", other)
    assert code == 2
    assert "does not hold" in err and "loadable bytes" in err


@pytest.mark.toolchain
def test_particle_elf_and_patched_bin(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="particle")
    plain = objcopy_bin(elf, repo.path / "build" / "plain.bin")
    binary = repo.path / "build" / "app.bin"
    binary.write_bytes(patch_suffix(plain.read_bytes()))
    expected = parse_module(binary.read_bytes())
    assert expected.sha_ok and expected.crc_ok

    code, out, _ = stamp("manifest", elf, "--bin", binary, "--json")
    assert code == 0
    manifest = json.loads(out)
    assert manifest["app_hash"] == expected.app_hash
    assert manifest["image_sha256"] == sha256sum(binary)
    assert set(manifest["particle"]) >= SPEC_PARTICLE_KEYS
    assert manifest["particle"]["platform_id"] == 6
    assert manifest["particle"]["dependencies"] == [{"function": 4, "index": 2, "version": 1}]

    # From the ELF alone the app hash is predicted the way the build patches it; the
    # image hash stays the one of objcopy's output.
    code, out, _ = stamp("manifest", elf, "-o", "elf-only.json", "--json")
    alone = json.loads(out)
    assert code == 0
    assert alone["app_hash"] == expected.app_hash
    assert alone["particle"]["app_hash_predicted"] is True
    assert alone["image_sha256"] == sha256sum(plain)


@pytest.mark.toolchain
def test_unpatched_particle_bin_is_refused(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="particle")
    code, _, err = stamp("manifest", elf, "--bin", objcopy_bin(elf))
    assert code == 2 and "placeholders" in err


@pytest.mark.toolchain
@pytest.mark.parametrize("where", ["content", "sha", "crc"])
def test_hand_edited_particle_bin_is_refused(repo: GitRepo, stamp: Stamp, where: str) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="particle")
    data = bytearray(patch_suffix(objcopy_bin(elf).read_bytes()))
    at = {"content": 100, "sha": len(data) - 20, "crc": len(data) - 1}[where]
    data[at] ^= 0x01
    binary = repo.path / "build" / "app.bin"
    binary.write_bytes(bytes(data))
    before = set((repo.path / "build").iterdir())
    for args in ((elf, "--bin", binary), (binary,)):
        code, _, err = stamp("manifest", *args)
        assert code == 2
        assert "does not match its content" in err, err
    assert_nothing_written(repo.path / "build", before)


@pytest.mark.toolchain
def test_half_written_particle_bin_is_refused(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="particle")
    data = patch_suffix(objcopy_bin(elf).read_bytes())
    binary = repo.path / "build" / "app.bin"
    binary.write_bytes(data[: len(data) // 2])
    for args in ((elf, "--bin", binary), (binary,)):
        code, _, err = stamp("manifest", *args)
        assert code == 2, err
        assert "truncated" in err or "does not hold" in err


@pytest.mark.toolchain
def test_bin_alone(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD)
    binary = objcopy_bin(elf)
    code, out, _ = stamp("manifest", binary, "--json")
    assert code == 0
    manifest = json.loads(out)
    assert (manifest["edit"], manifest["git"]) == (112, GIT_A)
    assert manifest["build_id"] == readelf_build_id(elf)  # the note is in flash, so in the .bin
    assert manifest["image_sha256"] == sha256sum(binary)
    assert manifest["artifacts"]["elf"] is None
    assert (repo.path / "build" / "app.stamp.json").exists()


def test_real_particle_bin_alone(repo: GitRepo, stamp: Stamp) -> None:
    fixture = FIXTURES / "particle" / "040_user-part.bin"
    code, _, err = stamp("manifest", fixture, "-o", "m.json")
    assert code == 2 and "no stamp record" in err
    assert not (repo.path / "m.json").exists()
    code, out, _ = stamp("manifest", fixture, "-o", "m.json", "--allow-unstamped", "--json")
    assert code == 0
    manifest = json.loads(out)
    assert (
        manifest["app_hash"] == "f9f552aa98d7e3eab750862a01743024a4d05514021598a4341b3d83b37eda36"
    )
    assert manifest["edit"] is None and manifest["particle"]["stored_crc"] == "b138f375"


@pytest.mark.toolchain
def test_missing_record_names_the_linker_script(repo: GitRepo, stamp: Stamp) -> None:
    build = repo.path / "build"
    build_elf(build, RECORD, layout="dropped")
    before = set(build.iterdir())
    code, out, err = stamp("manifest", "build/app.elf")
    assert code == 2 and out == ""
    assert "KEEP(*(.stamp))" in err and "--allow-unstamped" in err
    assert err.count("\n") == 1
    assert_nothing_written(build, before)

    code, out, _ = stamp("manifest", "build/app.elf", "--allow-unstamped")
    assert code == 0 and "(unstamped, build-id" in out
    assert load_manifest(build / "app.stamp.json").identity.edit is None


@pytest.mark.toolchain
def test_differing_records_are_refused(repo: GitRepo, stamp: Stamp) -> None:
    build_elf(repo.path / "build", RECORD, StampRecord(edit=5, git=GIT_B, dirty=False))
    code, _, err = stamp("manifest", "build/app.elf")
    assert code == 2 and "2 different stamp records" in err


@pytest.mark.toolchain
def test_newer_record_layout_is_refused_even_when_unstamped_is_allowed(
    repo: GitRepo, stamp: Stamp
) -> None:
    raw = bytearray(RECORD.pack())
    raw[8] = 2
    build_elf(repo.path / "build", bytes(raw))
    code, _, err = stamp("manifest", "build/app.elf", "--allow-unstamped")
    assert code == 2 and "layout version 2" in err and "upgrade stamp" in err


@pytest.mark.toolchain
def test_bin_given_first_with_bin_option_is_a_usage_error(repo: GitRepo, stamp: Stamp) -> None:
    binary = objcopy_bin(build_elf(repo.path / "build", RECORD))
    code, _, err = stamp("manifest", binary, "--bin", binary)
    assert code == 2 and "give the ELF first" in err
    elf = repo.path / "build" / "app.elf"
    code, _, err = stamp("manifest", elf, "--bin", elf)
    assert code == 2 and "not a .bin" in err


@pytest.mark.toolchain
def test_quiet_prints_nothing(repo: GitRepo, stamp: Stamp) -> None:
    build_elf(repo.path / "build", RECORD)
    assert stamp("-q", "manifest", "build/app.elf") == (0, "", "")


@pytest.mark.toolchain
def test_source_date_epoch_sets_recorded_at(
    repo: GitRepo, stamp: Stamp, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_elf(repo.path / "build", RECORD)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    code, out, _ = stamp("manifest", "build/app.elf", "--json")
    assert code == 0 and json.loads(out)["recorded_at"] == "2026-01-01T00:00:00Z"


@pytest.mark.toolchain
def test_whole_pipeline_with_stamp_header(tmp_path: Path) -> None:
    """`stamp header` renders stamp.c, gcc links it, `stamp manifest` reads it back."""
    checkout = make_repo(tmp_path / "fw", {"main.c": "int main(void) { return 0; }\n"})
    done = run_stamp("header", "--output-dir", "gen", cwd=checkout.path)
    assert done.returncode == 0, done.stderr
    main = checkout.write(
        "app.c",
        '#include "stamp.h"\n'
        "char line[160];\n"
        "void Reset_Handler(void) { stamp_report(line, sizeof line); for (;;) {} }\n"
        '__attribute__((section(".isr_vector"), used))\n'
        "void (* const vectors[])(void) = {(void (*)(void))0x20001000, Reset_Handler};\n",
    )
    script = checkout.write("app.ld", LAYOUTS["flash_ram"])
    elf = checkout.path / "build" / "app.elf"
    elf.parent.mkdir()
    subprocess.run(
        [require_tool("arm-none-eabi-gcc"), *CFLAGS, "-Igen", "-T", str(script), "-o", str(elf),
         str(main), "gen/stamp.c"],
        cwd=checkout.path, check=True,
    )  # fmt: skip
    done = run_stamp("manifest", "build/app.elf", "--json", cwd=checkout.path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["edit"] == 1
    assert manifest["git"] == checkout.head
    assert manifest["dirty"] is False
    assert manifest["build_id"] == readelf_build_id(elf)

    done = run_stamp("manifest", "build/app.elf", cwd=checkout.path)
    assert re.fullmatch(
        rf"stamp: manifest build/app\.stamp\.json \(edit 1, git {checkout.head[:8]}, "
        r"build-id [0-9a-f]{4}…\)\n",
        done.stdout,
    ), done.stdout
    state = find_state_dir(load_config(cwd=checkout.path))
    with History.open(state) as builds:
        assert builds.count() == 1


@pytest.mark.toolchain
@pytest.mark.parametrize(
    "flags",
    [("--gap-fill", "0xff"), ("--gap-fill", "0xff", "--pad-to", "0x08002000")],
    ids=["gap-fill", "gap-fill+pad-to"],
)
def test_bin_made_with_gap_fill_agrees(repo: GitRepo, stamp: Stamp, flags: tuple[str, ...]) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="gaps")
    binary = repo.path / "build" / "filled.bin"
    subprocess.run(
        [require_tool("arm-none-eabi-objcopy"), "-O", "binary", *flags, str(elf), str(binary)],
        check=True,
    )
    code, out, err = stamp("manifest", elf, "--bin", binary, "--json")
    assert (code, besides_foreign_commit(err)) == (0, "")
    assert json.loads(out)["image_sha256"] == sha256sum(binary)


@pytest.mark.toolchain
def test_bin_with_a_changed_gap_byte_does_not_agree(repo: GitRepo, stamp: Stamp) -> None:
    elf = build_elf(repo.path / "build", RECORD, layout="gaps")
    data = bytearray(objcopy_bin(elf).read_bytes())
    data[0x3F0] = 0x55  # inside the zero gap before .rodata, so not a uniform fill
    binary = repo.path / "build" / "app.bin"
    binary.write_bytes(bytes(data))
    code, _, err = stamp("manifest", elf, "--bin", binary)
    assert code == 2 and "0x3f0" in err
