"""What `stamp flash` last put on each device, so that a later `stamp verify` without
`--manifest` checks the build that was flashed rather than the newest one built.

One small JSON file in the state directory, `last-flashed.json`, kept apart from the
build history: `{"version": 1, "devices": {"particle:my_photon": {"manifest": "/abs/path",
"copy": "/state/last-flashed/….stamp.json", "flashed_at": "…Z"}}}`. Devices are keyed by
their address, not by the name given, so `--device garage` and `--device
particle:my_photon` are the same device.

The manifest's bytes are copied at flash time: the next build rewrites the manifest at
the same path, and `stamp verify` must still expect the build that was flashed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from stamp import logs
from stamp.device.target import DeviceTarget, GdbTarget, SerialTarget, SmpTarget
from stamp.errors import StateError
from stamp.fileio import atomic_write, locked

FILE_NAME = "last-flashed.json"
LOCK_NAME = "last-flashed.lock"
COPIES = "last-flashed"
"""The state directory's folder of the flashed manifests' copies, one per device."""
VERSION = 1
MAX_SIZE = 1024 * 1024
"""Bytes read at most: the file holds one short entry per device ever flashed."""


@dataclass(frozen=True)
class LastFlashed:
    """The manifest of the build last flashed to one device."""

    manifest: Path
    """The manifest's absolute path, as given to `stamp flash`."""
    flashed_at: str
    """When `stamp flash` flashed it (ISO 8601 UTC)."""
    copy: Path | None = None
    """The manifest as it was when flashed (None: recorded by an older stamp)."""


def device_key(target: DeviceTarget) -> str:
    """The device's address, whatever name it was given by."""
    if isinstance(target, SerialTarget):
        return f"serial:{target.port}"
    if isinstance(target, GdbTarget):
        return f"gdb:{target.host}:{target.port}"
    if isinstance(target, SmpTarget):
        return f"smp:{target.kind}:{target.where}"
    return f"particle:{target.device}"


def remember(state_dir: Path, target: DeviceTarget, manifest: Path, flashed_at: str) -> None:
    """Record that `manifest`'s build was just flashed to `target`."""
    key = device_key(target)
    copy = state_dir / COPIES / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.stamp.json"
    try:
        with locked(state_dir / LOCK_NAME):  # two `stamp flash` at once: both entries stay
            atomic_write(copy, manifest.read_bytes())
            devices = _read(state_dir)
            devices[key] = {
                "manifest": str(manifest.resolve()),
                "copy": str(copy),
                "flashed_at": flashed_at,
            }
            data = json.dumps({"version": VERSION, "devices": devices}, indent=1, sort_keys=True)
            atomic_write(state_dir / FILE_NAME, (data + "\n").encode())
    except OSError as exc:
        raise StateError(f"cannot write {state_dir / FILE_NAME}: {exc.strerror or exc}") from None


def recall(state_dir: Path, target: DeviceTarget) -> LastFlashed | None:
    """What was last flashed to `target`, or None (never, or the record is unreadable)."""
    entry = _read(state_dir).get(device_key(target))
    if not isinstance(entry, dict):
        return None
    manifest, flashed_at = entry.get("manifest"), entry.get("flashed_at")
    if not isinstance(manifest, str) or not isinstance(flashed_at, str):
        return None
    copy = entry.get("copy")
    return LastFlashed(Path(manifest), flashed_at, Path(copy) if isinstance(copy, str) else None)


def _read(state_dir: Path) -> dict[str, object]:
    path = state_dir / FILE_NAME
    try:
        with path.open("rb") as fp:
            raw = fp.read(MAX_SIZE + 1)
        if len(raw) > MAX_SIZE:
            raise ValueError(f"larger than {MAX_SIZE} bytes")
        record = json.loads(raw)
        devices = record.get("devices") if record.get("version") == VERSION else None
        if not isinstance(devices, dict):
            raise ValueError("no devices table")
        return devices
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as exc:
        logs.warning("stamp.device.last_flashed", "%s is unreadable (%s); ignoring it", path, exc)
        return {}
