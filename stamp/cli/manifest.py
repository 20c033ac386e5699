"""`stamp manifest`: the post-build step (SPEC sections 2 and 3)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from stamp.cli.app import Settings


@click.command()
@click.argument("firmware", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--bin",
    "bin_path",
    type=click.Path(path_type=Path, readable=False),
    help="The .bin made from FIRMWARE (checked against it; its app hash goes in the manifest).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifest here (default: NAME.stamp.json beside the ELF).",
)
@click.option(
    "--allow-unstamped",
    is_flag=True,
    help="Write a manifest even when the firmware holds no stamp record.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def manifest(
    settings: Settings,
    firmware: Path,
    bin_path: Path | None,
    output: Path | None,
    allow_unstamped: bool,
    as_json: bool,
) -> int:
    """Record what was really built: stamp record, build-id, image and app hashes.

    FIRMWARE is the linked ELF, or a .bin on its own. With --bin, the .bin must hold the
    ELF's loadable bytes (a stale .bin is an error). The manifest is written atomically
    and appended to the checkout's build history, which `stamp verify` uses to name the
    build a device really runs.

    \b
    Examples:
      stamp manifest build/app.elf                       # -> build/app.stamp.json
      stamp manifest build/app.elf --bin build/app.bin   # Particle: adds the app hash
      stamp manifest firmware.bin -o firmware.stamp.json --json
    """
    from stamp.artifact.build import build_manifest, default_manifest_path
    from stamp.artifact.image import load_file
    from stamp.artifact.manifest import append_history, write_manifest
    from stamp.config import load_config
    from stamp.errors import ArtifactError
    from stamp.state_dir import find_state_dir, history_path

    first = load_file(firmware)
    elf, raw = (first, None) if first.elf is not None else (None, first)
    if bin_path is not None:
        if elf is None:
            raise ArtifactError(
                f"{firmware} is not an ELF file: give the ELF first and the .bin with --bin"
            )
        raw = load_file(bin_path)
    target = output or default_manifest_path(firmware)
    result = build_manifest(
        elf,
        raw,
        manifest_dir=target.parent,
        recorded_at=_now(),
        allow_unstamped=allow_unstamped,
    )
    config = load_config(settings.config_path)
    write_manifest(result, target)
    added = append_history(history_path(find_state_dir(config)), result)

    if as_json:
        from stamp.cli.output import print_json

        print_json(result.to_json())
        return 0
    if settings.verbosity >= 0:
        facts = []
        identity = result.identity
        if identity.edit is not None:
            facts.append(f"edit {identity.edit}")
            facts.append(f"git {(identity.git or '')[:8]}" + (", dirty" if identity.dirty else ""))
        else:
            facts.append("unstamped")
        if identity.build_id:
            facts.append(f"build-id {identity.build_id[:4]}…")
        if identity.app_hash:
            facts.append(f"app hash {identity.app_hash[:8]}…")
        click.echo(f"stamp: manifest {_shown(target)} ({', '.join(facts)})")
        if settings.verbosity > 0 and not added:
            click.echo("stamp: this build is already in the history", err=True)
    return 0


def _now() -> str:
    """ISO 8601 UTC; SOURCE_DATE_EPOCH wins so reproducible builds get reproducible manifests."""
    from datetime import UTC, datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(path: Path) -> str:
    from stamp.cli.output import shown_path

    return shown_path(path)
