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


def number_option(
    name: str,
    kind: click.IntRange | click.FloatRange,
    default: float | None = None,
    *,
    help: str,
    dest: str | None = None,
    metavar: str | None = None,
) -> Decorator:
    """`--NAME`: a number within `kind`'s range, the range and the default (if any) shown
    in --help; `dest` names the parameter when the option's name does not."""
    names = (name, dest) if dest else (name,)
    if default is None:  # no default at all: None when not given, nothing to show
        return click.option(*names, type=kind, metavar=metavar, help=help)
    return click.option(
        *names, type=kind, default=default, show_default=True, metavar=metavar, help=help
    )


def seconds_option(
    name: str, default: float | None = None, *, help: str, at_least: float = 0.0
) -> Decorator:
    """`--NAME S`: seconds, at least `at_least`, shown with their default (if any)."""
    return number_option(name, click.FloatRange(min=at_least), default, help=help, metavar="S")
