"""stamp installations to compare in one benchmark run (before/after a change).

`--stamp LABEL=SPEC` names one installation; SPEC is
- a virtualenv that already has stamp installed (a directory holding bin/python),
- a source directory (holding pyproject.toml): pip-installed, not editable, into
  CACHE/venv-LABEL, reinstalled every run so it is the tree as it is now,
- or a git revision of this repository (`6b78aa6`, `main`): exported with `git archive`
  into CACHE/src-SHA and pip-installed, not editable, into CACHE/venv-SHA, both reused by
  later runs.

Not editable, because users have stamp pip-installed: an editable install adds an import
hook to every start-up. Each installation reports its own interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent


class Install(NamedTuple):
    label: str
    stamp: Path
    """The console script, as users run it."""
    python: Path
    described: str
    """What it is: the revision or directory, and its interpreter's version."""


def _pip_install(venv: Path, source: Path, *, again: bool) -> None:
    """Install `source` into `venv` (created if needed); with `again`, stamp afresh."""
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    fresh = not (venv / "bin" / "python").exists()
    if fresh:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([*pip, str(source)], check=True, stdout=subprocess.DEVNULL)
    if again and not fresh:  # same version number, new code: pip kept the old copy
        subprocess.run(
            [*pip, "--force-reinstall", "--no-deps", str(source)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def _from_revision(label: str, revision: str, cache: Path) -> tuple[Path, str]:
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    source, venv = cache / f"src-{sha[:12]}", cache / f"venv-{sha[:12]}"
    if not (source / "pyproject.toml").exists():
        source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", sha], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    if not (venv / "bin" / "stamp").exists():
        _pip_install(venv, source, again=False)
    return venv, f"commit {sha[:7]}"


def resolve(option: str, cache: Path) -> Install:
    """The installation `LABEL=SPEC` names (installing it into `cache` when needed)."""
    label, sep, spec = option.partition("=")
    if not sep or not label or not spec:
        sys.exit(f"bench: --stamp takes LABEL=SPEC, not {option!r}")
    path = Path(spec).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    if (path / "bin" / "python").exists():
        venv, what = path.resolve(), f"venv {path}"
    elif (path / "pyproject.toml").exists():
        venv = cache / f"venv-{label}"
        _pip_install(venv, path.resolve(), again=True)
        what = f"tree {path.resolve()}{_head(path)}"
    else:
        venv, what = _from_revision(label, spec, cache)
    python = venv / "bin" / "python"
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version.split()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Install(label, venv / "bin" / "stamp", python, f"{what}, Python {version}")


def _head(path: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    return f" at {done.stdout.strip()}" if done.returncode == 0 else ""
