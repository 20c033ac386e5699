"""Shared file helpers: crash-safe writes, the one lock, the one file hash.

`atomic_write` writes a temp file in the same directory, fsyncs, then os.replace: a
reader (or a crash at any instant) sees the old file or the new one, never half. The file
gets the mode a plain `open(path, "w")` would give it (an existing file's own, a new one
0666 less the umask): mkstemp makes its temp file 0600, which would otherwise leave every
generated file and manifest private.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

_PLAIN_MODE = 0o666
"""What open(2) asks for when Python opens a file for writing; the umask is taken off it."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same directory and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_of_a_plain_write(path)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
            os.fchmod(fp.fileno(), mode)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TEMP_ATTEMPTS = 100
"""Names tried before giving up (tempfile's TMP_MAX is 10,000; 48 random bits never collide)."""


def _temp_beside(path: Path) -> tuple[int, Path]:
    """A new empty file `.NAME.<12 hex>.tmp` beside `path`, open for writing, mode 0600: what
    tempfile.mkstemp makes, without importing tempfile (random and shutil come with it, a
    few ms of every `stamp header` and `stamp manifest`)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMP_ATTEMPTS):
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name beside {path}")


def remove_stale_temps(path: Path) -> None:
    """Delete temp files an interrupted `atomic_write(path, …)` left behind.

    Only call this while holding the lock that serialises writers of `path` (stamp's
    state lock): then no other writer's temp file can be in flight.
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _mode_of_a_plain_write(path: Path) -> int:
    """An existing file keeps its permissions (as open(path, "w") leaves them); a new one
    gets 0666 less the umask."""
    import stat

    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return _PLAIN_MODE & ~current_umask()


def current_umask() -> int:
    """The process's umask (read from /proc where it can be; else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fp:
            for line in fp:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the only portable way to read it: set, then put it back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_file` (created if missing) for the block.

    OSError propagates (the caller names the directory and what to do)."""
    import fcntl

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's content, lowercase hex; OSError propagates."""
    import hashlib

    with path.open("rb") as fp:
        return hashlib.file_digest(fp, "sha256").hexdigest()


def resolve_path(path: Path) -> Path:
    """`path.resolve()`, with a symbolic-link loop as a StampError naming it (issue 10)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # 3.11 raises RuntimeError for a loop
        from stamp.errors import StampError

        raise StampError(
            f"{path} cannot be resolved ({exc}): a symbolic link in it points back into "
            "itself; fix or remove the link"
        ) from None


def relative_path(
    path: os.PathLike[str] | str, base: os.PathLike[str] | str, *, walk_up: bool = False
) -> str | None:
    """`path` relative to `base` as a slash path ("." for `base` itself), both made absolute
    as they are (symbolic links are not resolved: resolve first where that matters).

    None when `path` is outside `base`, unless `walk_up` allows `..`, and when no relative
    path exists at all (another drive on Windows)."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    except ValueError:
        return None
    if not walk_up and (rel == os.pardir or rel.startswith(os.pardir + os.sep)):
        return None
    return Path(rel).as_posix()
