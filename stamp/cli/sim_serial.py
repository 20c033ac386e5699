"""`stamp sim serial`: a simulated board on a pseudo-terminal (SPEC section 8)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from stamp.cli.app import Settings

_GIT_SHA = re.compile(r"[0-9a-fA-F]{40}|unknown")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def _check_git(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _GIT_SHA.fullmatch(value):
        raise click.BadParameter("expected a full 40-hex commit SHA, or 'unknown'")
    return value.lower() if value else value


def _check_hex(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _HEX.fullmatch(value):
        raise click.BadParameter("expected an even number of hex digits")
    return value.lower() if value else value


@click.command("serial")
@click.option(
    "--firmware",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An ELF or .bin with a stamp record: the board reports its identity.",
)
@click.option("--edit", type=click.IntRange(min=0), help="Report this edit instead.")
@click.option("--git", "git_sha", callback=_check_git, help="Report this commit SHA instead.")
@click.option("--dirty/--clean", default=None, help="Report a dirty (or clean) tree instead.")
@click.option("--build-id", callback=_check_hex, help="Report this GNU build-id (hex) instead.")
@click.option(
    "--boot-delay",
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    metavar="S",
    help="Seconds from start until the board boots and prints its report.",
)
@click.option(
    "--reboot-every",
    type=click.FloatRange(min=0.1),
    metavar="S",
    help="Reset the board every S seconds (it prints its boot lines again).",
)
@click.pass_obj
def sim_serial(
    settings: Settings,
    firmware: Path | None,
    edit: int | None,
    git_sha: str | None,
    dirty: bool | None,
    build_id: str | None,
    boot_delay: float,
    reboot_every: float | None,
) -> int:
    """Run a simulated board on a pseudo-terminal until interrupted (Ctrl-C or SIGTERM).

    The first line on stdout is one JSON object for scripts, naming the port as a
    `--device` URL: {"device": "serial:/dev/pts/N"}. The board prints its `@stamp`
    report among some log lines at boot and answers each `?stamp` line. Its identity
    is the stamp record (and build-id) in --firmware; the other options override it.

    \b
    Examples:
      stamp sim serial --firmware build/firmware.elf
      stamp sim serial --edit 7 --git 0123456789abcdef0123456789abcdef01234567
    """
    import json
    import signal
    import sys
    from types import FrameType

    from stamp.sim.serial import SerialBoard

    identity = _identity(firmware, edit=edit, git=git_sha, dirty=dirty, build_id=build_id)
    board = SerialBoard(identity, boot_delay=boot_delay, reboot_every=reboot_every)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        board.stop()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        click.echo(json.dumps({"device": board.device}))
        sys.stdout.flush()
        if settings.verbosity >= 0:
            click.echo(
                f"stamp: simulated board on {board.path} reporting {json.dumps(identity)}; "
                "Ctrl-C stops",
                err=True,
            )
        board.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        board.close()
    return 0


def _identity(
    firmware: Path | None,
    *,
    edit: int | None,
    git: str | None,
    dirty: bool | None,
    build_id: str | None,
) -> dict[str, Any]:
    """The firmware's identity with the command line's overrides applied."""
    from stamp.errors import ArtifactError
    from stamp.record import GIT_UNKNOWN
    from stamp.sim.serial import identity_from_image

    identity: dict[str, Any] = {"edit": 1, "git": GIT_UNKNOWN}
    if firmware is not None:
        try:
            data = firmware.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"cannot read {firmware}: {exc.strerror}") from None
        try:
            identity = identity_from_image(data)
        except ArtifactError as exc:
            raise ArtifactError(f"{firmware}: {exc}") from None
    overrides = {"edit": edit, "git": git, "dirty": dirty, "build_id": build_id}
    identity.update({key: value for key, value in overrides.items() if value is not None})
    return identity
