"""Builds, manifests and a build history for the `stamp verify` tests and benchmark.

A build here is a real Particle user-part module (stamp.artifact.particle.module) whose payload is
the stamp record the generated C would compile in, so the serial and cloud simulators
read the same identity a real image carries; its manifest is what `stamp manifest` writes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stamp.artifact.history import History
from stamp.artifact.manifest import Artifact, Manifest, write_manifest
from stamp.artifact.particle.build import build_user_part
from stamp.artifact.particle.module import parse_module
from stamp.config import load_config
from stamp.identity import Identity
from stamp.record import StampRecord
from stamp.state_dir import find_state_dir
from tests.support import git_env

GIT_OLD = "1a2b3c4d5e6f" + "0" * 28
GIT_NEW = "9f8e7d6c5b4a" + "1" * 28


@dataclass(frozen=True)
class Build:
    """One firmware image and its manifest, on disk."""

    image: Path
    """The module .bin."""
    manifest_path: Path
    """Its NAME.stamp.json."""
    manifest: Manifest
    """The manifest's content."""


def make_build(
    directory: Path,
    edit: int,
    git: str,
    *,
    dirty: bool = False,
    age: timedelta = timedelta(minutes=25),
) -> Build:
    """A module image carrying (edit, git, dirty) and its manifest, recorded `age` ago."""
    directory.mkdir(parents=True, exist_ok=True)
    image = build_user_part(StampRecord(edit=edit, git=git, dirty=dirty).pack())
    app_hash = parse_module(image).app_hash
    assert app_hash is not None
    name = f"app-{edit}"
    bin_path = directory / f"{name}.bin"
    bin_path.write_bytes(image)
    digest = hashlib.sha256(image).hexdigest()
    recorded = (datetime.now(UTC) - age).replace(microsecond=0)
    manifest = Manifest(
        identity=Identity(
            edit=edit, git=git, dirty=dirty, app_hash=app_hash.lower(), image_sha256=digest
        ),
        recorded_at=recorded.isoformat().replace("+00:00", "Z"),
        bin=Artifact(path=bin_path.name, sha256=digest, size=len(image)),
    )
    manifest_path = directory / f"{name}.stamp.json"
    write_manifest(manifest, manifest_path)
    return Build(image=bin_path, manifest_path=manifest_path, manifest=manifest)


def record_history(project: Path, *builds: Build) -> Path:
    """Append the builds' manifests to the project's build history, oldest first; its
    state directory."""
    state_dir = find_state_dir(load_config(cwd=project))
    with History.open(state_dir) as history:
        for build in builds:
            history.append(build.manifest, None)
    return state_dir


@contextmanager
def sim_serial(firmware: Path, cwd: Path) -> Iterator[str]:
    """`stamp sim serial --firmware FILE` as a process; yields its `serial:` device URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stamp", "sim", "serial", "--firmware", str(firmware)],
        cwd=cwd,
        env={**git_env(), "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        if not first:
            proc.wait(timeout=10)
            raise AssertionError(f"stamp sim serial said nothing: {proc.stderr.read()}")
        yield str(json.loads(first)["device"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class PtyBoard:
    """A real pseudo-terminal with a scripted board on its master side (a thread).

    The port to open is `port` (the slave side). The board answers each `?stamp` query
    with `answer` (when set), after the `noise` lines; `write` sends anything at any time.
    Everything the host sent is kept in `received`.
    """

    def __init__(self, answer: bytes | None = None, noise: tuple[bytes, ...] = ()) -> None:
        import os
        import threading
        import tty

        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo of the host's queries back to it
        self.port = os.ttyname(self._slave)
        self.answer = answer
        self.noise = noise
        self.received = bytearray()
        self.queries = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pty-board", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        import os

        with self._lock:
            os.write(self.master, data)

    def _run(self) -> None:
        import os
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                continue  # EIO while nobody has the slave open
            self.received += data
            for _ in range(data.count(b"?stamp\n")):
                self.queries += 1
                for line in self.noise:
                    self.write(line)
                if self.answer is not None:
                    self.write(self.answer)

    def close(self) -> None:
        import os

        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)

    def __enter__(self) -> PtyBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def report_line(manifest: Manifest, **override: object) -> bytes:
    """The `@stamp {...}` line a board running `manifest`'s build prints."""
    obj: dict[str, object] = {
        "edit": manifest.identity.edit,
        "git": manifest.identity.git,
        "dirty": manifest.identity.dirty,
    }
    obj.update(override)
    return b"@stamp " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n"
