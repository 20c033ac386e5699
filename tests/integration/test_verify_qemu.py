"""`stamp verify` against the example firmware built by arm-none-eabi-gcc, running in QEMU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import qemu as qemu_support
from tests.support import run_stamp, spawn_stamp
from tests.support.qemu import Builds

pytestmark = [pytest.mark.qemu, pytest.mark.toolchain]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return qemu_support.build_twice(tmp_path_factory, "verify-qemu")


def test_the_builds_differ(builds: Builds) -> None:
    old, new = builds.old_manifest.identity, builds.new_manifest.identity
    assert old.edit is not None and new.edit is not None and new.edit > old.edit
    assert old.build_id and new.build_id and old.build_id != new.build_id


def test_verified_against_its_manifest(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.new.elf) as qemu:
        done = run_stamp(
            "verify",
            "--device",
            qemu.device,
            "--manifest",
            str(builds.new.manifest),
            "--timeout",
            "60",
            cwd=builds.project,
        )
    assert done.returncode == 0, done.stderr
    new = builds.new_manifest.identity
    assert new.build_id is not None
    assert done.stdout == (
        f"VERIFIED: device runs edit {new.edit} "
        f"(git {builds.new.git[:8]}, build-id {new.build_id[:8]}…)\n"
    )


def test_an_older_build_is_a_mismatch_naming_its_edit(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.old.elf) as qemu:
        done = run_stamp(
            "verify",
            "--device",
            qemu.device,
            "--manifest",
            str(builds.new.manifest),
            "--timeout",
            "60",
            "--json",
            cwd=builds.project,
        )
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    old, new = builds.old_manifest.identity, builds.new_manifest.identity
    assert record["message"].startswith(
        f"MISMATCH: device runs edit {old.edit} (git {builds.old.git[:8]}, built "
    )
    assert record["message"].endswith(f"; expected edit {new.edit}")
    assert record["matched_build"]["build_id"] == old.build_id
    assert record["reported"]["build_id"] == old.build_id
    differing = {c["key"] for c in record["compared"] if not c["match"]}
    assert differing == {"edit", "git", "build_id"}


def test_a_stopped_qemu_is_exit_3(builds: Builds) -> None:
    """The port is there, the board is hung (SIGSTOP): no answer to `?stamp`."""
    with qemu_support.boot_qemu(builds.new.elf) as qemu:
        qemu.process.send_signal(signal.SIGSTOP)
        try:
            done = run_stamp(
                "verify",
                "--device",
                qemu.device,
                "--manifest",
                str(builds.new.manifest),
                "--timeout",
                "2",
                cwd=builds.project,
            )
        finally:
            qemu.process.send_signal(signal.SIGCONT)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("NO REPORT: nothing identified the build on serial ")
    assert f"port {qemu.port} opened" in done.stdout


def test_a_qemu_that_is_gone_is_exit_3(builds: Builds) -> None:
    with qemu_support.boot_qemu(builds.new.elf) as qemu:
        qemu.process.kill()
        qemu.process.wait()
        port = qemu.port
    done = run_stamp(
        "verify",
        "--device",
        f"serial:{port}",
        "--manifest",
        str(builds.new.manifest),
        "--timeout",
        "1",
        cwd=builds.project,
    )
    assert done.returncode == 3, done.stderr
    # The pty number may already serve someone else's new pty, which does not answer either.
    assert "did not appear before the timeout" in done.stdout or "opened" in done.stdout


@pytest.fixture
def verify_process(builds: Builds, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`stamp verify` started on a port path that does not exist yet."""
    link = tmp_path / "ttyQEMU"
    args = ["verify", "--device", f"serial:{link}"]
    args += ["--manifest", str(builds.new.manifest), "--timeout", "90"]
    proc = spawn_stamp(*args, cwd=builds.project)
    try:
        yield proc, link
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_port_that_appears_seconds_after_verify_starts(
    builds: Builds, verify_process: tuple[subprocess.Popen[str], Path]
) -> None:
    """As a board re-enumerating on USB after a flash: the port shows up late, and the
    boot report is printed before anyone listens, so only the `?stamp` answer is heard."""
    proc, link = verify_process
    assert proc.stderr is not None
    for line in proc.stderr:
        if "waiting for" in line:
            break
    time.sleep(1.0)
    assert proc.poll() is None
    with qemu_support.boot_qemu(builds.new.elf) as qemu:
        time.sleep(1.0)  # it boots and prints its report to nobody
        os.symlink(qemu.port, link)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith(f"VERIFIED: device runs edit {builds.new_manifest.identity.edit} ")
    assert f"port {link} opened" in err
