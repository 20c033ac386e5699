"""`stamp sim smp`: a simulated MCUboot/Zephyr device speaking SMP on a pseudo-terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from stamp.cli.app import Settings
from stamp.cli.options import flag_option, number_option, seconds_option
from stamp.cli.sim_options import firmware_option

if TYPE_CHECKING:
    from stamp.artifact.mcuboot import McubootImage


@click.command("smp")
@firmware_option(
    "--image",
    "image_path",
    required=True,
    help="The signed image (imgtool sign .bin or .hex) running in slot 0.",
)
@flag_option(
    "--unconfirmed",
    help="The running image is a test image that was never confirmed: the next "
    "reset reverts to --secondary.",
)
@firmware_option(
    "--secondary",
    "secondary_path",
    help="A signed image in slot 1 (the previous or the next one).",
)
@flag_option(
    "--pending",
    help="The --secondary image is marked for test: it runs after the next reset.",
)
@number_option(
    "--boot-fails",
    click.IntRange(min=0),
    0,
    metavar="N",
    help="The next N images swapped in fail to boot and are reverted.",
)
@seconds_option("--reset-delay", 0.3, "Seconds the device is away after a reset.")
@number_option(
    "--udp",
    click.IntRange(0, 65535),
    dest="udp_port",
    metavar="PORT",
    help="Speak SMP over UDP on 127.0.0.1:PORT (0: any free port) instead of a pseudo-terminal.",
)
@click.pass_obj
def sim_smp(
    settings: Settings,
    image_path: Path,
    unconfirmed: bool,
    secondary_path: Path | None,
    pending: bool,
    boot_fails: int,
    reset_delay: float,
    udp_port: int | None,
) -> int:  # fmt: skip
    """Run a simulated MCUboot device on a pseudo-terminal until interrupted.

    The first line on stdout is one JSON object for scripts, naming the port as a
    `--device` URL: {"device": "smp:serial:/dev/pts/N"} (with --udp:
    {"device": "smp:udp:127.0.0.1:PORT"}). It answers SMP (serial framing, or one frame
    per datagram) as a Zephyr application with mcumgr does: image state read/test/confirm, upload,
    erase, reset, echo, MCUmgr parameters. A reset swaps in a pending image (running
    unconfirmed) or reverts an unconfirmed one, as MCUboot's swap does.

    \b
    Examples:
      stamp sim smp --image build/zephyr/zephyr.signed.bin
      stamp sim smp --image new.signed.bin --unconfirmed --secondary old.signed.bin
    """
    from stamp.cli.sim_board import serve_board
    from stamp.errors import ArtifactError, StampError

    try:
        from stamp.sim.smp import SmpBoard
        from stamp.sim.smp_server import SmpServer
        from stamp.sim.smp_udp import SmpUdpBoard
    except ImportError:
        from stamp.device.transport.smp import INSTALL_HINT

        raise StampError(INSTALL_HINT) from None
    from stamp.sim.smp_slots import Slots

    if (unconfirmed or pending) and secondary_path is None:
        raise ArtifactError("--unconfirmed and --pending need a --secondary image")
    if unconfirmed and pending:
        raise ArtifactError("--unconfirmed and --pending exclude each other")
    running = _load(image_path)
    slots = Slots(
        running,
        confirmed=not unconfirmed,
        secondary=_load(secondary_path) if secondary_path else None,
        pending=pending,
        boot_fails=boot_fails,
    )
    server = SmpServer(slots, reset_delay=reset_delay)
    board = SmpBoard(server) if udp_port is None else SmpUdpBoard(server, port=udp_port)
    where = board.device.removeprefix("smp:")

    banner = None
    if settings.verbosity >= 0:
        banner = (
            f"stamp: simulated MCUboot device on {where} running {running.version_text} "
            f"(hash {running.stored_hash})"
        )
    return serve_board(board, board.device, banner)


def _load(path: Path) -> McubootImage:
    from stamp.artifact.image import load_file
    from stamp.errors import ArtifactError

    firmware = load_file(path)
    image = firmware.mcuboot
    if image is None:
        raise ArtifactError(f"{path} is not an MCUboot image: sign it with `imgtool sign`")
    if not image.hash_ok:
        raise ArtifactError(f"{path}: {image.problems()[0]}")
    return image
