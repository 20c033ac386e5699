"""Files that cannot be read as firmware: each is one line on stderr, exit 2, no traceback,
no manifest and no temp file left behind, whether given to `manifest` or `inspect`."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stamp.artifact.image import file_error
from tests.support import REPO_ROOT, Stamp, make_repo, require_tool, run_stamp
from tests.support.elf import RECORD, build_elf


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    checkout = make_repo(tmp_path / "fw")
    monkeypatch.chdir(checkout.path)
    return checkout.path


def _one_clean_line(code: int, out: str, err: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("stamp: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda d: d / "nope.elf", "does not exist"),
    "under a file": (lambda d: d / "main.c" / "app.elf", "does not exist"),
    "directory": (lambda d: d, "is a directory"),
    "empty": (lambda d: _write(d / "empty.elf", b""), "is empty"),
    "fifo": (lambda d: _fifo(d / "pipe.elf"), "not a regular file"),
    "device": (lambda d: Path("/dev/null"), "not a regular file"),
    "proc file": (lambda d: Path("/proc/self/mem"), "is empty"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("command", ["manifest", "inspect"])
def test_unreadable_inputs(workdir: Path, stamp: Stamp, case: str, command: str) -> None:
    make, expected = BAD_INPUTS[case]
    target = make(workdir)
    before = set(workdir.iterdir())
    code, out, err = stamp(command, target)
    _one_clean_line(code, out, err)
    assert expected in err
    assert set(workdir.iterdir()) == before


@pytest.mark.toolchain
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_unreadable_bin_next_to_a_good_elf(workdir: Path, stamp: Stamp, case: str) -> None:
    build_elf(workdir / "build", RECORD)
    make, expected = BAD_INPUTS[case]
    target = make(workdir)
    before = set((workdir / "build").iterdir())
    code, out, err = stamp("manifest", "build/app.elf", "--bin", target)
    _one_clean_line(code, out, err)
    assert expected in err
    assert set((workdir / "build").iterdir()) == before


def test_fifo_does_not_block_a_whole_process(tmp_path: Path) -> None:
    """No writer ever opens the FIFO: stamp must refuse it, not wait (timeout = failure)."""
    fifo = _fifo(tmp_path / "app.elf")
    done = run_stamp("manifest", str(fifo), cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "not a regular file" in done.stderr


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="stamp-perm-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.toolchain
@pytest.mark.parametrize("command", ["manifest", "inspect"])
def test_permission_denied(shared_dir: Path, command: str) -> None:
    """Root reads mode-000 files, so as root the command runs as `nobody` (setpriv)."""
    elf = build_elf(shared_dir / "build", RECORD)
    (shared_dir / "build").chmod(0o777)
    elf.chmod(0)
    argv = [sys.executable, "-m", "stamp", command, str(elf)]
    if os.geteuid() == 0:
        setpriv = require_tool("setpriv")
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO_ROOT), "HOME": str(shared_dir)}
    done = subprocess.run(
        argv, cwd=shared_dir, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    _one_clean_line(done.returncode, done.stdout, done.stderr)
    assert f"cannot read {elf}: permission denied" in done.stderr
    assert not elf.with_name("app.stamp.json").exists()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.EIO, "Input/output error"), "cannot read app.elf: Input/output error"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (FileNotFoundError(errno.ENOENT, "No such file"), "does not exist"),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), "is a directory"),
        (OSError(errno.ENOTDIR, "Not a directory"), "does not exist"),
        (OSError(errno.ELOOP, "Too many levels of symbolic links"), "symbolic links"),
    ],
)
def test_os_errors_are_translated(exc: OSError, expected: str) -> None:
    error = file_error(Path("app.elf"), exc)
    assert expected in error.message and "app.elf" in error.message
    assert error.exit_code == 2


def test_symlink_loop(workdir: Path, stamp: Stamp) -> None:
    loop = workdir / "loop.elf"
    loop.symlink_to(loop)
    code, out, err = stamp("inspect", loop)
    _one_clean_line(code, out, err)


@pytest.mark.toolchain
def test_unwritable_output_leaves_nothing(workdir: Path, stamp: Stamp) -> None:
    build_elf(workdir / "build", RECORD)
    before = set(workdir.iterdir())
    code, out, err = stamp("manifest", "build/app.elf", "-o", "main.c/m.json")
    _one_clean_line(code, out, err)
    assert "cannot write manifest" in err
    # A directory as -o is refused by click's own check (a usage error, also exit 2).
    code, out, err = stamp("manifest", "build/app.elf", "-o", "build")
    assert code == 2 and "is a directory" in err and "Traceback" not in err
    assert set(workdir.iterdir()) == before
    assert not list((workdir / "build").glob("*.json*"))


@pytest.mark.toolchain
def test_truncated_elf_through_the_command(workdir: Path, stamp: Stamp) -> None:
    """A sample of cuts, end to end: exit 2, one line, and no manifest or temp file."""
    full = build_elf(workdir / "src", RECORD, extra_flags=("-Wl,-n", "-s")).read_bytes()
    cut = workdir / "cut.elf"
    for size in range(1, len(full), max(1, len(full) // 40)):
        cut.write_bytes(full[:size])
        before = set(workdir.iterdir())
        code, out, err = stamp("manifest", cut)
        _one_clean_line(code, out, err)
        assert set(workdir.iterdir()) == before
