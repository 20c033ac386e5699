"""The image `stamp flash` sends, checked against its manifest before anything is flashed.

`load_flash_image` reads a firmware file and its manifest and refuses the pair unless
the manifest describes that very file: an image whose identity stamp cannot check is
never sent, since every verdict after it would be meaningless. The `FlashImage` it
returns also finds the build's other artifact (the .bin beside an ELF, or the other way
round) when its SHA-256 is still the manifest's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stamp.artifact.manifest import Artifact, Manifest, build_name, load_manifest
from stamp.errors import ArtifactError
from stamp.fileio import sha256_file

if TYPE_CHECKING:
    from stamp.artifact.image import Firmware

log = logging.getLogger("stamp.device.flash")


@dataclass(frozen=True)
class FlashImage:
    """A firmware file to flash and the manifest that says which build it is."""

    path: Path
    """The file as given."""
    manifest: Manifest
    """The build it is: the identity the device must report."""
    manifest_path: Path
    """Where the manifest was read from."""
    bin: Path | None
    """The raw image: the file given, or the manifest's .bin when its SHA-256 matches."""
    elf: Path | None
    """The ELF: the file given, or the manifest's ELF when its SHA-256 matches."""

    def describe(self) -> str:
        """e.g. "build/firmware.bin (edit 112)"."""
        return f"{self.path} ({build_name(self.manifest)})"


def load_flash_image(firmware: Path, manifest_path: Path | None = None) -> FlashImage:
    """`firmware` and its manifest (default: NAME.stamp.json beside it), checked to match.

    They match when the file's SHA-256 is one of the manifest's artifacts, or else when
    the identity read from the file (stamp record, build-id, hashes) is the manifest's
    build. Anything else is an ArtifactError (exit 2): flashing an image the manifest
    does not describe would make every verdict after it meaningless.
    """
    from stamp.artifact.build import default_manifest_path
    from stamp.artifact.image import load_file

    path = manifest_path if manifest_path is not None else default_manifest_path(firmware)
    loaded = load_file(firmware)
    try:
        manifest = load_manifest(path)
    except ArtifactError as exc:
        hint = "" if manifest_path is not None else " (or pass --manifest FILE.stamp.json)"
        raise ArtifactError(f"not flashing {firmware}: {exc.message}{hint}") from None
    given = "elf" if loaded.elf is not None else "bin"
    recorded: dict[str, Artifact | None] = {"elf": manifest.elf, "bin": manifest.bin}
    sha = loaded.facts.sha256
    if not any(a is not None and a.sha256 == sha for a in recorded.values()):
        _check_identity(loaded, manifest, path)
    found = {given: firmware}
    other = "bin" if given == "elf" else "elf"
    artifact = recorded[other]
    if artifact is not None:
        candidate = _artifact_path(path, artifact)
        if _file_sha256(candidate) == artifact.sha256:
            found[other] = candidate
        else:
            log.debug("%s of %s is missing or changed: not used", candidate, path)
    return FlashImage(
        path=firmware,
        manifest=manifest,
        manifest_path=path,
        bin=found.get("bin"),
        elf=found.get("elf"),
    )


def _check_identity(loaded: Firmware, manifest: Manifest, path: Path) -> None:
    from stamp.artifact.build import build_manifest
    from stamp.identity import compare, identifies

    extracted = build_manifest(
        loaded if loaded.elf is not None else None,
        loaded if loaded.bin is not None else None,
        manifest_dir=path.parent,
        recorded_at="",
        allow_unstamped=True,
    )
    compared = compare(manifest.identity, extracted.identity)
    if identifies(compared):
        return
    differing = [c for c in compared if not c.match]
    if any(c.key == "edit" for c in differing):
        detail = f"it is edit {manifest.identity.edit}, the file is edit {extracted.identity.edit}"
    elif differing:
        detail = "their " + ", ".join(c.key for c in differing) + " differ"
    else:
        detail = "the file matches none of its artifacts and nothing else identifies it"
    raise ArtifactError(
        f"not flashing {loaded.name}: manifest {path} describes another build ({detail}): "
        "run `stamp manifest` after the build, or pass the right --manifest"
    )


def _artifact_path(manifest_path: Path, artifact: Artifact) -> Path:
    recorded = Path(artifact.path)
    return recorded if recorded.is_absolute() else manifest_path.parent / recorded


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None
