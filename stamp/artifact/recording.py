"""Record a build: the one core function behind `stamp manifest` (and the demo).

Load the ELF and/or .bin, check them (`stamp.artifact.build`), write the manifest
atomically and add the build to the checkout's history. The time recorded honours
SOURCE_DATE_EPOCH, so reproducible builds get reproducible manifests.

Where the history lives and whether the build's commit is this repository's (issue 11:
a build from another clone is worth a warning) are one git process: `stamp manifest`
runs on every build, and each process costs milliseconds (bench/README.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stamp.artifact.build import build_manifest, default_manifest_path
from stamp.artifact.history import History, LegacyImport, local_origin
from stamp.artifact.image import load_file
from stamp.artifact.manifest import Manifest, write_manifest
from stamp.config import Config
from stamp.errors import ArtifactError, StateError
from stamp.proc import run
from stamp.state_dir import find_state_dir

_FULL_COMMIT = re.compile(r"[0-9a-f]{40}")
"""A commit git can be asked about: SHA-1, as stamp records it (not "unknown")."""


@dataclass(frozen=True)
class Recorded:
    """A build that was recorded."""

    manifest: Manifest
    """What was really built."""
    path: Path
    """Where its manifest was written."""
    added: bool
    """It was new to the history (False: the same build was already there)."""
    state_dir: Path
    """The state directory whose history it went into."""
    foreign_commit: bool
    """Its record names a git commit that this checkout's repository does not have."""
    legacy_import: LegacyImport | None = None
    """What importing the old JSON-lines history did, when this run did it (say it once)."""


def record_build(
    firmware: Path,
    config: Config,
    *,
    bin_path: Path | None = None,
    output: Path | None = None,
    allow_unstamped: bool = False,
    env: Mapping[str, str] | None = None,
) -> Recorded:
    """Make the manifest of `firmware` (an ELF, or a .bin alone; with `bin_path` the .bin
    made from the ELF), write it to `output` (default: NAME.stamp.json beside it) and add
    it to the history. ArtifactError/StateError name what is wrong."""
    first = load_file(firmware)
    elf, raw = (first, None) if first.elf is not None else (None, first)
    if bin_path is not None:
        if elf is None:
            raise ArtifactError(
                f"{firmware} is not an ELF file: give the ELF first and the .bin with --bin"
            )
        raw = load_file(bin_path)
    target = output or default_manifest_path(firmware)
    manifest = build_manifest(
        elf,
        raw,
        manifest_dir=target.parent,
        recorded_at=recorded_at(os.environ if env is None else env),
        allow_unstamped=allow_unstamped,
    )
    write_manifest(manifest, target)
    state_dir, foreign = locate(config, manifest.identity.git)
    try:
        with History.open(state_dir) as history:
            added = history.append(manifest, local_origin(os.environ if env is None else env))
            legacy = history.legacy_import
    except StateError as exc:
        # The build is not lost: its manifest is on disk, and recording it again adds it.
        exc.message += f" (the manifest {target} was written; run this again to record it)"
        raise
    return Recorded(manifest, target, added, state_dir, foreign, legacy)


def locate(config: Config, git: str | None) -> tuple[Path, bool]:
    """(the state directory, whether commit `git` is missing from the checkout's repository).

    One `git rev-parse`: it prints the git directory first, then (`--verify`) fails when
    the commit is missing; outside a repository it prints nothing, and nothing is foreign.
    """
    sha = git if git is not None and _FULL_COMMIT.fullmatch(git) else None
    if sha is None and config.state_dir:
        return find_state_dir(config), False  # nothing to ask git
    args = ["git", "rev-parse", "--absolute-git-dir"]
    if sha is not None:
        args += ["--verify", "--quiet", f"{sha}^{{commit}}"]
    try:
        done = run(args, cwd=config.root, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return find_state_dir(config), False
    lines = done.stdout.splitlines()
    git_dir = Path(lines[0]) if lines else None
    foreign = sha is not None and git_dir is not None and done.returncode != 0
    return find_state_dir(config, git_dir), foreign


def recorded_at(env: Mapping[str, str]) -> str:
    """Now as ISO 8601 UTC, or SOURCE_DATE_EPOCH when it is set (reproducible-builds.org)."""
    epoch = env.get("SOURCE_DATE_EPOCH", "").strip()
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
