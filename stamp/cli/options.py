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
    return seconds_option("--timeout", default, help, zero_allowed=zero_allowed)


def seconds_option(name: str, default: float, help: str, *, zero_allowed: bool = True) -> Decorator:
    """A duration in seconds (`S`, never negative), shown with its default."""
    return click.option(
        name,
        type=click.FloatRange(min=0, min_open=not zero_allowed),
        default=default,
        show_default=True,
        metavar="S",
        help=help,
    )


def device_option(help: str) -> Decorator:
    """`--device X` (required): a [devices.NAME] or a device address (SPEC section 4)."""
    return click.option("--device", "device", required=True, metavar="X", help=help)


def flag_option(*decls: str, help: str) -> Decorator:
    """An on/off flag, off by default."""
    return click.option(*decls, is_flag=True, help=help)


def json_option(help: str) -> Decorator:
    """`--json`: print a record for scripts instead of words, passed as `as_json`."""
    return flag_option("--json", "as_json", help=help)
