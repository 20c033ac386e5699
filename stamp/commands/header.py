"""`stamp header`: the pre-build step (SPEC section 3)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from stamp.cli import Settings


@click.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the generated files here (default: `output_dir` from the config, build/stamp).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--strict", is_flag=True, help='Fail (exit 2) instead of stamping "unknown" without git.'
)
@click.pass_obj
def header(settings: Settings, output_dir: Path | None, as_json: bool, strict: bool) -> int:
    """Render the generated stamp files: edit number and git state.

    Bumps the edit number once per change of the sources; with nothing changed it writes
    nothing, so `make` rebuilds nothing.

    \b
    Examples:
      stamp header                          # into build/stamp/ (stamp.h, stamp.c)
      stamp header --output-dir gen --json  # for scripts
    """
    from stamp.config import load_config
    from stamp.header import run_header

    config = load_config(settings.config_path)
    result = run_header(config, output_dir=output_dir, strict=strict)
    for warning in result.warnings:
        click.echo(f"stamp: warning: {warning}", err=True)
    if as_json:
        from stamp.output import print_json

        print_json(result.to_json())
        return 0
    if settings.verbosity < 0:
        return 0
    if result.changed:
        facts = result.git[:8]
        if result.dirty:
            facts += ", dirty"
        targets = ", ".join(_shown(p) for p in result.changed)
        click.echo(f"stamp: edit {result.edit} ({facts}) -> {targets}")
    else:
        click.echo(f"stamp: unchanged (edit {result.edit})")
    return 0


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
