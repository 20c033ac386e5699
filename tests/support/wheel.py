"""stamp as a user installs it: a wheel built from this tree, in a fresh virtual environment.

The wheel is built from a copy of the working tree (committed or not) with pip's build
isolation, exactly like `pip install path/to/stamp`, and installed non-editable, so the
integration files come from the installed package data, not from this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

_NOT_SOURCE = (".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


@dataclass(frozen=True)
class InstalledStamp:
    """A non-editable install of stamp in its own virtual environment."""

    venv: Path
    """The virtual environment."""
    build_log: str
    """What building the wheel printed (pip -v: the build backend's warnings included)."""

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def stamp(self) -> Path:
        return self.bin / "stamp"

    def env(self, *, on_path: bool = True) -> dict[str, str]:
        """A clean environment for builds: this venv's bin first on PATH (or absent)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "VIRTUAL_ENV"))}
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p]
        path = [p for p in path if not (Path(p) / "stamp").exists()]
        env["PATH"] = os.pathsep.join([str(self.bin), *path] if on_path else path)
        env["NO_COLOR"] = "1"
        return env

    def hooks_path(self) -> Path:
        done = subprocess.run(
            [str(self.stamp), "hooks", "path"], capture_output=True, text=True, check=True
        )
        return Path(done.stdout.strip())


def install_wheel(work: Path) -> InstalledStamp:
    """Build stamp's wheel from this tree and install it into a new venv under `work`."""
    source = work / "src"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    wheels = work / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"building stamp's wheel failed:\n{built.stdout}\n{built.stderr}", False)
    (wheel,) = wheels.glob("stamp_firmware-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        pytest.fail(f"installing stamp's wheel failed:\n{installed.stderr}", False)
    return InstalledStamp(venv, built.stdout + built.stderr)
