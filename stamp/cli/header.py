"""`stamp header`: the pre-build step (SPEC section 3).

The same command also has a click-free fast path in `stamp.cli.entry` (it runs on every build);
both call `stamp.cli.header_print.header_main`, which runs `stamp.header.run.run_header`.
"""

from __future__ import annotations

from pathlib import Path

import click

from stamp.cli.app import Settings
from stamp.cli.options import json_option


@click.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the generated files here (default: `output_dir` from the config, build/stamp).",
)
@json_option("Print the result as JSON.")
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
    from stamp.cli.header_print import header_main

    return header_main(
        config_path=settings.config_path,
        output_dir=output_dir,
        as_json=as_json,
        strict=strict,
        quiet=settings.verbosity < 0,
    )
