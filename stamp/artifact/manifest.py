"""The manifest: the expected identity of one build.

A manifest is JSON (`NAME.stamp.json` beside the ELF) with the identity keys of SPEC
section 5 at the top level, so a script can read `.edit` or `.build_id` directly:

    {
      "schema": 1,
      "edit": 111, "git": "<40 hex>", "dirty": false,
      "build_id": "<hex>" | null, "app_hash": "<64 hex>" | null, "image_sha256": "<64 hex>",
      "mcuboot_hash": "<64 hex>" | null, "image_version": "1.2.3+4" | null,
      "elf_sha256": "<64 hex>" | null,   # ESP-IDF: the ELF's SHA-256 (the app description's)
      "app_version": str | null, "project_name": str | null,     # ESP-IDF, informational
      "idf_version": str | null, "compile_time": str | null,
      "recorded_at": "2026-11-30T12:00:00Z",
      "artifacts": {"elf": {"path": "...", "sha256": "...", "size": N} | null,
                    "bin": {"path": "...", "sha256": "...", "size": N} | null},
      "particle": {...} | null,      # the module info of `stamp inspect --json`, for a .bin
      "mcuboot": {...} | null,       # the MCUboot image info of `stamp inspect --json`
      "esp": {...} | null,           # the ESP-IDF image info of `stamp inspect --json`
      "memory": {...} | null         # where the record and image sit on the target
    }                                # (stamp.artifact.memory; absent in older manifests)

Every manifest `stamp manifest` writes is also recorded in the build history
(stamp.artifact.history), which `stamp verify` uses to name the build a device really runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stamp.artifact.manifest_schema import (
    MAX_MANIFEST_BYTES,
    SCHEMA_VERSION,
    SchemaError,
    check_manifest,
    decode_manifest,
)
from stamp.artifact.memory import MemoryLayout
from stamp.errors import ArtifactError
from stamp.fileio import atomic_write
from stamp.identity import HASH_KEYS, KEY_NAMES, Identity, parse_identity


@dataclass(frozen=True)
class Artifact:
    """One file a manifest was made from."""

    path: str
    """Its path as given (relative paths are relative to the manifest's directory)."""
    sha256: str
    """SHA-256 of the whole file, lowercase hex."""
    size: int
    """Its size in bytes."""


@dataclass(frozen=True)
class Manifest:
    """The expected identity of one build."""

    identity: Identity
    """The build's identity keys (SPEC section 5); unknown ones are None."""
    recorded_at: str
    """When the manifest was written, ISO 8601 UTC."""
    elf: Artifact | None = None
    """The ELF it was read from."""
    bin: Artifact | None = None
    """The .bin it was read from."""
    particle: dict[str, Any] | None = None
    """Particle module info (the `particle` object of `stamp inspect --json`)."""
    mcuboot: dict[str, Any] | None = None
    """MCUboot image info (the `mcuboot` object of `stamp inspect --json`)."""
    esp: dict[str, Any] | None = None
    """ESP-IDF image info (the `esp` object of `stamp inspect --json`)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version of stamp does not know, kept on rewrite."""
    memory: MemoryLayout | None = None
    """Where the record and the image sit in the target's memory (from the ELF)."""

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = dict(self.extra)
        record.update(self.identity.as_json())
        record.update(
            schema=SCHEMA_VERSION,
            recorded_at=self.recorded_at,
            artifacts={
                "elf": asdict(self.elf) if self.elf else None,
                "bin": asdict(self.bin) if self.bin else None,
            },
            particle=self.particle,
            mcuboot=self.mcuboot,
            esp=self.esp,
        )
        if self.memory is not None:
            record["memory"] = self.memory.to_json()
        return record

    @classmethod
    def from_json(cls, record: Any, source: str) -> Manifest:
        """Validate a decoded manifest; ArtifactError names `source` and the bad field."""
        try:
            check_manifest(record)
        except SchemaError as exc:
            raise ArtifactError(f"{source} is not a valid stamp manifest: {exc}") from None
        try:
            artifacts = record.get("artifacts") or {}
            known = {*KEY_NAMES, "schema", "recorded_at", "artifacts", "particle", "memory"}
            known |= {"mcuboot", "esp"}
            memory = record.get("memory")
            return cls(
                identity=parse_identity(record),
                recorded_at=str(record.get("recorded_at", "")),
                elf=_artifact(artifacts.get("elf")),
                bin=_artifact(artifacts.get("bin")),
                particle=record.get("particle"),
                mcuboot=_optional(record.get("mcuboot"), dict),
                esp=record.get("esp"),
                extra={k: v for k, v in record.items() if k not in known},
                memory=MemoryLayout.from_json(memory) if memory is not None else None,
            )
        except (TypeError, ValueError, AttributeError) as exc:  # `memory`, checked there
            raise ArtifactError(f"{source} is not a valid stamp manifest ({exc})") from None


def _optional(value: Any, kind: type) -> Any:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _artifact(value: Any) -> Artifact | None:
    if value is None:
        return None
    return Artifact(path=str(value["path"]), sha256=str(value["sha256"]), size=int(value["size"]))


def dump_manifest(manifest: Manifest) -> bytes:
    """The manifest file's bytes (stable key order, LF, trailing newline)."""
    return (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode()


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write the manifest atomically: a crash leaves the old file or the new, never half."""
    try:
        atomic_write(path, dump_manifest(manifest))
    except OSError as exc:
        raise ArtifactError(f"cannot write manifest {path}: {exc.strerror or exc}") from None


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file."""
    try:
        with path.open("rb") as fp:
            data = fp.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ArtifactError(
            f"manifest {path} does not exist: run `stamp manifest FIRMWARE.elf` after the build"
        ) from None
    except IsADirectoryError:
        raise ArtifactError(f"manifest {path} is a directory") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic-link loop (3.11)
        raise ArtifactError(f"cannot read manifest {path}: {exc}") from None
    try:
        record = decode_manifest(data)
    except SchemaError as exc:
        raise ArtifactError(f"manifest {path} {str(exc).partition(' ')[2]}") from None
    return Manifest.from_json(record, str(path))


def build_name(manifest: Manifest, unstamped: str = "an unstamped build") -> str:
    """How a build is called in one line: its edit, else its first identifying hash."""
    if manifest.identity.edit is not None:
        return f"edit {manifest.identity.edit}"
    mcuboot_hash = manifest.identity.mcuboot_hash
    if mcuboot_hash and manifest.identity.image_version:
        return f"image {manifest.identity.image_version} (mcuboot_hash {mcuboot_hash[:8]}…)"
    # image_sha256 last: every build has one, and no device reports it by itself.
    for key in sorted(HASH_KEYS, key=lambda k: k == "image_sha256"):
        value = getattr(manifest.identity, key)
        if value:
            return f"{key} {value[:8]}…"
    return unstamped
