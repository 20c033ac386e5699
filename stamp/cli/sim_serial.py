"""`stamp sim serial`: a simulated board on a pseudo-terminal (SPEC section 8)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stamp.cli.app import Settings
from stamp.cli.options import number_option, seconds_option
from stamp.cli.sim_options import firmware_option, read_firmware

if TYPE_CHECKING:
    from stamp.sim.esp import EspApp

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
@firmware_option(
    "--firmware", help="An ELF or .bin with a stamp record: the board reports its identity."
)
@click.option("--edit", type=click.IntRange(min=0), help="Report this edit instead.")
@click.option("--git", "git_sha", callback=_check_git, help="Report this commit SHA instead.")
@click.option("--dirty/--clean", default=None, help="Report a dirty (or clean) tree instead.")
@click.option("--build-id", callback=_check_hex, help="Report this GNU build-id (hex) instead.")
@click.option(
    "--elf-sha256",
    callback=_check_hex,
    help="ESP-IDF image: report this ELF SHA-256 (hex) instead of the image's.",
)
@number_option(
    "--hash-len",
    click.IntRange(1, 64),
    16,
    metavar="N",
    help="ESP-IDF image: digits of the ELF SHA-256 the boot log prints "
    "(CONFIG_APP_RETRIEVE_LEN_ELF_SHA).",
)
@click.option(
    "--ellipsis/--no-ellipsis",
    default=None,
    help="ESP-IDF image: print `...` after the hash (default: as its ESP-IDF release does).",
)
@seconds_option(
    "--boot-delay", 0.5, "Seconds from start until the board boots and prints its report."
)
@number_option(
    "--reboot-every",
    click.FloatRange(min=0.1),
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
    elf_sha256: str | None,
    hash_len: int,
    ellipsis: bool | None,
    boot_delay: float,
    reboot_every: float | None,
) -> int:
    """Run a simulated board on a pseudo-terminal until interrupted (Ctrl-C or SIGTERM).

    The first line on stdout is one JSON object for scripts, naming the port as a
    `--device` URL: {"device": "serial:/dev/pts/N"}. The board prints its `@stamp`
    report among some log lines at boot and answers each `?stamp` line. Its identity
    is the stamp record (and build-id) in --firmware; the other options override it.

    Given an ESP-IDF app image (or its ELF) it boots like that app: the ESP-IDF boot
    log with the app description and the first --hash-len digits of the ELF SHA-256,
    its `@stamp` line only if the image holds a stamp record (and only then does it
    answer `?stamp`).

    \b
    Examples:
      stamp sim serial --firmware build/firmware.elf
      stamp sim serial --firmware build/blink.bin --hash-len 64
      stamp sim serial --edit 7 --git 0123456789abcdef0123456789abcdef01234567

    \f
    Long for its --help text (the docstring).
    """
    import json

    from stamp.cli.sim_board import serve_board
    from stamp.sim.esp import boot_log
    from stamp.sim.serial import SerialBoard, report_line

    overrides = {"edit": edit, "git": git_sha, "dirty": dirty, "build_id": build_id}
    identity, app = _identity(firmware, overrides)
    log_bytes = None
    if app is not None:
        if elf_sha256 is not None:
            app = dataclasses.replace(app, elf_sha256=elf_sha256)
        report = report_line(identity) if identity else None
        log_bytes = boot_log(app, hash_len=hash_len, ellipsis=ellipsis, report=report)
    board = SerialBoard(
        identity,
        boot_delay=boot_delay,
        reboot_every=reboot_every,
        answer_queries=app is None or bool(identity),
        boot_log=log_bytes,
    )

    banner = None
    if settings.verbosity >= 0:
        reporting = json.dumps(identity) if identity else "no @stamp line"
        if app is not None:
            reporting = (
                f"an ESP-IDF boot log ({app.desc.project_name}, ELF SHA-256 "
                f"{app.elf_sha256[:hash_len]}), {reporting}"
            )
        banner = f"stamp: simulated board on {board.path} reporting {reporting}"
    return serve_board(board, board.device, banner)


def _identity(
    firmware: Path | None, overrides: dict[str, Any]
) -> tuple[dict[str, Any], EspApp | None]:
    """The firmware's identity with the command line's overrides applied, and its ESP-IDF
    app when it is one (whose identity may be empty: no stamp record)."""
    from stamp.errors import ArtifactError
    from stamp.record import GIT_UNKNOWN
    from stamp.sim.esp import esp_app
    from stamp.sim.serial import identity_from_image

    identity: dict[str, Any] = {"edit": 1, "git": GIT_UNKNOWN}
    app = None
    if firmware is not None:
        data = read_firmware(firmware)
        app = esp_app(data, str(firmware))
        try:
            identity = identity_from_image(data)
        except ArtifactError as exc:
            if app is None:
                raise ArtifactError(f"{firmware}: {exc}") from None
            identity = {}  # an ESP-IDF app without stamp: its boot log is its report
    given = {key: value for key, value in overrides.items() if value is not None}
    if given and not identity:
        identity = {"edit": 1, "git": GIT_UNKNOWN}
    identity.update(given)
    return identity, app
