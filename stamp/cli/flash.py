"""`stamp flash --device X FIRMWARE`: flash, verify, and retry a flash that did not take."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from stamp.cli.options import (
    device_option,
    flag_option,
    json_option,
    manifest_option,
    seconds_option,
    timeout_option,
)
from stamp.device.flash import DEFAULT_RETRIES, DEFAULT_SETTLE, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from stamp.cli.app import Settings
    from stamp.config import Config
    from stamp.device.target import DeviceTarget


@click.command("flash")
@click.argument("firmware", type=click.Path(dir_okay=False, path_type=Path))
@device_option(
    "A [devices.NAME] from the config (a serial device needs its flash_command), "
    "particle:DEVICE_ID_OR_NAME for an OTA update through the Particle Cloud, "
    "smp:serial:PORT / smp:udp:HOST[:PORT] for an MCUboot/Zephyr device, or "
    "gdb:HOST:PORT to load it through a debug probe's GDB server."
)
@click.option(
    "--retries",
    type=click.IntRange(min=0, max=100),
    default=DEFAULT_RETRIES,
    show_default=True,
    metavar="N",
    help="Flash again up to N times when the device reports another build or nothing.",
)
@timeout_option(
    DEFAULT_TIMEOUT,
    "Seconds each attempt waits for the device's report (a cloud upload included).",
    zero_allowed=False,
)
@seconds_option(
    "--settle",
    DEFAULT_SETTLE,
    "Particle: seconds to wait after the device came back online without a new app "
    "hash before calling the flash failed.",
)
@manifest_option("The manifest FIRMWARE must match. Default: NAME.stamp.json beside FIRMWARE.")
@flag_option(
    "--no-confirm",
    help="SMP: leave the new image running unconfirmed (as a test; the next reset reverts it).",
)
@json_option("Print every attempt's verdict as JSON.")
@click.pass_obj
def flash(
    settings: Settings,
    firmware: Path,
    device: str,
    retries: int,
    timeout: float,
    settle: float,
    manifest_path: Path | None,
    no_confirm: bool,
    as_json: bool,
) -> int:
    """Flash FIRMWARE, prove the device runs it, and flash again when it does not.

    FIRMWARE must match its manifest (from `stamp manifest`), or nothing is flashed. A
    Particle device gets an OTA update through the cloud, and only what the device itself
    publishes after the update counts (the cloud's "success" does not). A serial device
    is flashed by its `flash_command` from the config ({bin}, {elf} and {device} are
    replaced; it runs without a shell), then heard on its port. An SMP device
    (MCUboot/Zephyr) gets the signed image uploaded, marked for test and reset; stamp
    waits for it to come back, reads the slots again, confirms the image only when it is
    the active one (not with --no-confirm), then verifies. A gdb: device without a
    flash_command gets the ELF loaded through its GDB server, is reset and let run, then
    read.

    Exit status is that of `stamp verify` for the last attempt: 0 verified, 1 the device
    runs another build, 3 no report or every flash failed, 2 a bad device, config,
    firmware or manifest (nothing was flashed).

    \b
    Examples:
      stamp flash --device garage build/firmware.bin
      stamp flash --device particle:my_photon --retries 3 build/firmware.bin
      stamp flash --device bench --timeout 20 --json build/firmware.elf
      stamp flash --device smp:serial:/dev/ttyACM0 build/zephyr/zephyr.signed.bin

    \f
    Long for its --help text (the docstring); the code is what a command does: parse, call
    flash_and_verify, render.
    """
    import contextlib
    import os
    import sys

    from stamp.cli import exits
    from stamp.cli.history import history_for_naming
    from stamp.cli.json_records import flash_record
    from stamp.cli.terminal import Progress, paint_label, print_json
    from stamp.cli.verdict_words import attempt_summary
    from stamp.cli.verify import render
    from stamp.cli.watch import FlashProgress
    from stamp.config import load_config
    from stamp.device.flash import flash_and_verify
    from stamp.device.flash_image import load_flash_image
    from stamp.device.flashers import make_flasher
    from stamp.device.target import parse_device

    config = load_config(settings.config_path)
    target = parse_device(device, config)
    image = load_flash_image(firmware, manifest_path)
    history = history_for_naming(config)
    progress = Progress(sys.stderr, quiet=settings.verbosity < 0)
    with (
        history or contextlib.nullcontext(),
        make_flasher(
            target, config, os.environ, Path.home(), confirm=not no_confirm, expected=image.manifest
        ) as flasher,
    ):
        flasher.prepare(image)
        result = flash_and_verify(
            flasher,
            image,
            history or [],
            retries=retries,
            timeout=timeout,
            settle=settle,
            watcher=FlashProgress(
                progress,
                timeout,
                image,
                flasher,
                lines=False,
                verbose=settings.verbosity > 0,
            ),
            allow_unconfirmed=no_confirm,
        )
    _remember(config, target, image.manifest_path)
    verdict = result.verdict
    if as_json:
        record = flash_record(result)
        record.update(firmware=str(firmware), manifest=str(image.manifest_path), device=device)
        print_json(record)
    elif verdict is not None:
        render(verdict, sys.stdout)
    else:
        sys.stdout.write(paint_label(attempt_summary(result.final), "yellow", sys.stdout) + "\n")
    return exits.for_verdict(verdict.status if verdict is not None else None)


def _remember(config: Config, target: DeviceTarget, manifest_path: Path) -> None:
    """Note what was flashed, for `stamp verify` without --manifest; a failure only warns."""
    import logging
    from datetime import UTC, datetime

    from stamp.device.last_flashed import remember
    from stamp.errors import StateError
    from stamp.state_dir import find_state_dir

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        remember(find_state_dir(config), target, manifest_path, now)
    except StateError as exc:
        logging.getLogger("stamp.device.flash").warning("%s; `stamp verify` will not know", exc)
