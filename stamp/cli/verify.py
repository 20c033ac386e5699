"""`stamp verify --device X`: wait for the device's report and give the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from stamp.artifact.manifest import build_name
from stamp.cli import exits
from stamp.cli.options import (
    device_option,
    flag_option,
    json_option,
    manifest_option,
    timeout_option,
)

if TYPE_CHECKING:
    from stamp.artifact.history import History
    from stamp.artifact.manifest import Manifest
    from stamp.cli.app import Settings
    from stamp.cli.terminal import Progress
    from stamp.config import Config
    from stamp.device.target import DeviceTarget
    from stamp.device.verify import Verdict

DEFAULT_TIMEOUT = 30.0


UNSTAMPED = "the manifest's build"
"""How a build without edit or hashes is named in messages."""


@click.command("verify")
@device_option(
    "A [devices.NAME] from the config, serial:PORT[?baud=N], particle:DEVICE_ID_OR_NAME, "
    "smp:serial:PORT[?baud=N], smp:udp:HOST[:PORT] (MCUboot/Zephyr over SMP) "
    "or gdb:HOST:PORT (a debug probe's GDB server)."
)
@manifest_option(
    "The NAME.stamp.json to verify against. Default: the build `stamp flash` last "
    "put on this device, else the newest build in this checkout's build history (the "
    "last `stamp manifest`); either is named on stderr."
)
@timeout_option(DEFAULT_TIMEOUT, "Seconds to wait for a report that settles the question.")
@flag_option(
    "--reset",
    help="Serial: reset the board into its app through DTR/RTS first, as esptool does "
    "(ESP32 dev boards), so it prints its boot log again.",
)
@flag_option(
    "--allow-unconfirmed",
    help="SMP: accept the build running as an unconfirmed test image (it reverts at the "
    "next reset unless confirmed).",
)
@flag_option(
    "--image",
    "read_image",
    help="gdb: devices: also read back the whole image and compare its SHA-256.",
)
@json_option("Print the verdict record as JSON.")
@click.pass_obj
def verify(
    settings: Settings,
    device: str,
    manifest_path: Path | None,
    timeout: float,
    reset: bool,
    allow_unconfirmed: bool,
    read_image: bool,
    as_json: bool,
) -> int:
    """Wait for the device's identity report and say whether it runs the expected build.

    Listens to the `@stamp {...}` line over serial (asking with `?stamp` meanwhile) or to
    the `stamp` event, variable and app-hash event on the Particle Cloud, or reads the
    stamp record out of the target's memory through a GDB server, and stops as
    soon as a report settles it: a matching build-id, app hash, or git and edit with
    nothing differing (VERIFIED), or any differing key (MISMATCH, naming the build from
    the history the device runs instead).

    Over SMP (MCUboot/Zephyr) it reads the image slots and compares the active slot's
    hash with the manifest's mcuboot_hash; an active image that is not confirmed will
    revert at the next reset and does not verify unless --allow-unconfirmed.

    An ESP-IDF app needs no stamp code: its boot log (`ELF file SHA256:`) is the report.
    Every digit it prints is compared; 16 or more matching digits verify (the verdict says
    how many of the 64), fewer cannot. Such a device is not sent `?stamp`; --reset makes
    it boot again.

    Exit status: 0 verified, 1 mismatch (or an unconfirmed SMP image), 3 no usable report
    before the timeout or the device unreachable, 2 a bad device, config or manifest.

    \b
    Examples:
      stamp verify --device bench
      stamp verify --device serial:/dev/ttyACM0?baud=115200 --manifest build/app.stamp.json
      stamp verify --device particle:my_photon --timeout 60 --json
      stamp verify --device serial:/dev/ttyUSB0 --manifest build/blink.stamp.json --reset
      stamp verify --device smp:serial:/dev/ttyACM0 --manifest build/zephyr/zephyr.stamp.json
      stamp verify --device gdb:localhost:3333 --image

    \f
    Long for its --help text (the docstring); the code opens the history and the transport
    and renders the verdict.
    """
    import contextlib
    import os
    import sys

    from stamp.cli.history import history_for_naming
    from stamp.cli.json_records import verdict_record
    from stamp.cli.terminal import Progress, print_json
    from stamp.cli.watch import Watch
    from stamp.config import load_config
    from stamp.device.target import GdbTarget, open_transport, parse_device
    from stamp.device.verify import verify as run_verify
    from stamp.errors import DeviceError

    config = load_config(settings.config_path)
    target = parse_device(device, config)
    progress = Progress(sys.stderr, quiet=settings.verbosity < 0)
    if manifest_path is None:
        manifest_path = _last_flashed(config, target, device, progress)
    with contextlib.ExitStack() as stack:
        history = history_for_naming(config, required=manifest_path is None)
        if history is not None:
            stack.enter_context(history)
        expected = expected_build(manifest_path, history, progress)
        watch = Watch(progress, timeout, lines=False, verbose=settings.verbosity > 0)
        if read_image and not isinstance(target, GdbTarget):
            raise DeviceError("--image reads the target's memory: it needs a gdb:HOST:PORT device")
        transport = stack.enter_context(
            open_transport(
                target,
                config,
                os.environ,
                Path.home(),
                expected=expected,
                read_image=read_image,
                reset=reset,
            )
        )
        progress.line(
            f"stamp: listening on {transport.describe()} for up to {timeout:g} s "
            f"(expecting {build_name(expected, UNSTAMPED)})"
        )
        watch.start()
        try:
            verdict = run_verify(
                transport,
                expected,
                history or [],
                timeout=timeout,
                on_heard=watch.heard,
                allow_unconfirmed=allow_unconfirmed,
            )
        finally:
            watch.stop()
    if as_json:
        record = verdict_record(verdict)
        record["manifest"] = str(manifest_path) if manifest_path else None
        print_json(record)
    else:
        render(verdict, sys.stdout)
    return exits.for_verdict(verdict.status)


def render(verdict: Verdict, stream: TextIO) -> None:
    """The verdict line (coloured on a terminal), then what differed, one key a line."""
    from stamp.cli.verdict_words import painted_verdict

    stream.write(painted_verdict(verdict, stream) + "\n")
    for c in verdict.differing:
        stream.write(
            f"  {c.key}: expected {_shown(c.expected)}, device reports {_shown(c.reported)}\n"
        )
    stream.flush()


def _shown(value: object) -> str:
    """A compared value as the report line spells it: `true`/`false`, not Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _last_flashed(
    config: Config, target: DeviceTarget, device: str, progress: Progress
) -> Path | None:
    """The manifest `stamp flash` last flashed to this device, if it is still there."""
    from stamp.device.last_flashed import recall
    from stamp.state_dir import find_state_dir

    flashed = recall(find_state_dir(config), target)
    if flashed is None:
        return None
    from stamp.cli.terminal import shown_path

    if flashed.copy is not None and flashed.copy.is_file():
        # As it was when flashed: a rebuild since has rewritten the file at that path.
        progress.line(
            f"stamp: no --manifest given: using the build `stamp flash` put on {device} at "
            f"{flashed.flashed_at} ({shown_path(flashed.manifest)} as it was then)"
        )
        return flashed.copy
    if not flashed.manifest.is_file():
        progress.line(
            f"stamp: {flashed.manifest}, last flashed to {device}, is gone; "
            "falling back to the build history"
        )
        return None
    progress.line(
        f"stamp: no --manifest given: using {shown_path(flashed.manifest)}, the build "
        f"`stamp flash` put on {device} at {flashed.flashed_at}"
    )
    return flashed.manifest


def expected_build(path: Path | None, history: History | None, progress: Progress) -> Manifest:
    """The manifest given, else the newest build of this checkout (named on `progress`)."""
    from stamp.artifact.manifest import load_manifest
    from stamp.errors import ArtifactError

    if path is not None:
        return load_manifest(path)
    newest = history.newest_local() if history is not None else None
    if newest is None:
        raise ArtifactError(
            "no --manifest given and this checkout's build history is empty: run "
            "`stamp manifest FIRMWARE.elf` after the build, or pass --manifest FILE.stamp.json"
        )
    build = newest.manifest
    source = build.elf or build.bin
    made_from = f" from {source.path}" if source else ""
    progress.line(
        f"stamp: no --manifest given: using the newest build in the history, "
        f"{build_name(build, UNSTAMPED)}{made_from}, recorded {build.recorded_at}"
    )
    return build
