"""`stamp manifest`: the post-build step (SPEC sections 2 and 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from stamp.cli.app import Settings
from stamp.cli.options import flag_option, json_option

if TYPE_CHECKING:
    from stamp.artifact.manifest import Manifest
    from stamp.artifact.recording import Recorded


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
@flag_option(
    "--allow-unstamped", help="Write a manifest even when the firmware holds no stamp record."
)
@json_option("Print the manifest as JSON.")
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
    ELF's loadable bytes, or for ESP-IDF store the ELF's SHA-256 (a stale .bin is an
    error). The manifest is written atomically and appended to the checkout's build
    history, which `stamp verify` uses to name the build a device really runs.

    \b
    Examples:
      stamp manifest build/app.elf                       # -> build/app.stamp.json
      stamp manifest build/app.elf --bin build/app.bin   # Particle: adds the app hash
      stamp manifest build/blink.elf --bin build/blink.bin   # ESP-IDF: the ELF SHA-256
      stamp manifest firmware.bin -o firmware.stamp.json --json
    """
    from stamp.artifact.recording import record_build
    from stamp.config import load_config

    config = load_config(settings.config_path)
    recorded = record_build(
        firmware, config, bin_path=bin_path, output=output, allow_unstamped=allow_unstamped
    )
    if recorded.legacy_import is not None:  # only the run that imported the old history
        from stamp.cli.history import say_legacy_import

        say_legacy_import(recorded.legacy_import)
    if settings.verbosity >= 0:
        _warn_about_context(recorded, firmware)
    if as_json:
        from stamp.cli.terminal import print_json

        print_json(recorded.manifest.to_json())
        return 0
    if settings.verbosity >= 0:
        facts = manifest_facts(recorded.manifest)
        click.echo(f"stamp: manifest {_shown(recorded.path)} ({facts})")
        if settings.verbosity > 0 and not recorded.added:
            click.echo("stamp: this build is already in the history", err=True)
    return 0


def _warn_about_context(recorded: Recorded, firmware: Path) -> None:
    """Say when the build is not this checkout's, or older than its last `stamp header`."""
    from stamp.header.provenance import check_provenance

    git, edit = recorded.manifest.identity.git, recorded.manifest.identity.edit
    found = check_provenance(recorded.foreign_commit, edit, recorded.state_dir)
    if found.foreign_commit:
        click.echo(
            f"stamp: warning: {firmware} was built from git {(git or '')[:12]}, which "
            "is not a commit of this repository: was it built in another clone? "
            "(`git fetch` it, or record it in the history of the repository it came from)",
            err=True,
        )
    if found.current_edit is not None:
        click.echo(
            f"stamp: warning: {firmware} holds edit {edit}, but this checkout is at "
            f"edit {found.current_edit}: it was built before the last `stamp header`; "
            "rebuild it to record the current sources",
            err=True,
        )


def manifest_facts(manifest: Manifest) -> str:
    """What `stamp manifest` says of a build: `edit 12, git 1a2b3c4d, dirty, build-id 5f3a…`."""
    identity = manifest.identity
    facts = []
    if identity.edit is not None:
        facts.append(f"edit {identity.edit}")
        facts.append(f"git {(identity.git or '')[:8]}" + (", dirty" if identity.dirty else ""))
    elif identity.elf_sha256 is None:
        facts.append("unstamped")
    if identity.project_name is not None:
        facts.append(f"ESP-IDF app {identity.project_name} {identity.app_version}")
    if identity.elf_sha256:
        facts.append(f"ELF SHA-256 {identity.elf_sha256[:8]}…")
    if identity.build_id:
        facts.append(f"build-id {identity.build_id[:4]}…")
    if identity.app_hash:
        facts.append(f"app hash {identity.app_hash[:8]}…")
    if identity.mcuboot_hash:
        facts.append(f"MCUboot {identity.image_version}, hash {identity.mcuboot_hash[:8]}…")
    return ", ".join(facts)


def _shown(path: Path) -> str:
    from stamp.cli.terminal import shown_path

    return shown_path(path)
