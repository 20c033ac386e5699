"""Options several commands share, declared once (their help says what they mean there)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def manifest_option(help: str) -> Decorator:
    """`--manifest M`: a NAME.stamp.json, passed as `manifest_path`."""
    return click.option(
        "--manifest",
        "manifest_path",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="M",
        help=help,
    )


def timeout_option(default: float, help: str, *, zero_allowed: bool = True) -> Decorator:
    """`--timeout S`: seconds, shown with their default."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=not zero_allowed),
        default=default,
        show_default=True,
        metavar="S",
        help=help,
    )
