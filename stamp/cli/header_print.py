"""What `stamp header` prints: shared by the click command and the click-free fast path.

Click-free on purpose (see `stamp.cli.entry`): `stamp header` runs on every build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stamp.cli.terminal import shown_path
from stamp.header.run import HeaderResult, run_header


def header_main(
    *,
    config_path: Path | None,
    output_dir: Path | None,
    as_json: bool,
    strict: bool,
    quiet: bool,
) -> int:
    """Run `stamp header` and print its result; StampError propagates to the caller."""
    from stamp.config import load_config

    result = run_header(load_config(config_path), output_dir=output_dir, strict=strict)
    for warning in result.warnings:
        sys.stderr.write(f"stamp: warning: {warning}\n")
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    elif not quiet:
        sys.stdout.write(describe_result(result) + "\n")
    return 0


def describe_result(result: HeaderResult, cwd: Path | None = None) -> str:
    """The one human line: `stamp: edit 112 (1a2b3c4d, dirty) -> build/stamp/stamp.c`."""
    if not result.changed:
        return f"stamp: unchanged (edit {result.edit})"
    facts = result.git[:8]
    if result.dirty:
        facts += ", dirty"
    targets = ", ".join(shown_path(p, None if cwd is None else str(cwd)) for p in result.changed)
    return f"stamp: edit {result.edit} ({facts}) -> {targets}"
