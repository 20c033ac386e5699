"""What the `stamp sim` commands share: the firmware file a simulator runs, as one option
declaration and read with one sentence when it cannot be."""

from __future__ import annotations

from pathlib import Path

import click

from stamp.cli.options import Decorator

FIRMWARE_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
"""An existing file, not a directory, given as a Path."""


def firmware_option(*decls: str, help: str, required: bool = False) -> Decorator:
    """An option naming a firmware file the simulator runs (FIRMWARE_FILE)."""
    return click.option(*decls, type=FIRMWARE_FILE, required=required, help=help)


def read_firmware(path: Path) -> bytes:
    """The bytes of the firmware file a simulator was given; ArtifactError if unreadable."""
    from stamp.errors import ArtifactError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
