"""Simulated MCUboot devices (`stamp.sim.smp`) running images the real imgtool signed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stamp.artifact.image import load_file
from stamp.artifact.mcuboot import McubootImage
from stamp.sim.smp import SmpBoard
from stamp.sim.smp_server import SmpServer
from stamp.sim.smp_slots import Slots
from stamp.sim.smp_udp import SmpUdpBoard
from tests.support import Stamp
from tests.support.mcuboot import app_body, keygen, sign


@dataclass(frozen=True)
class Build:
    """A signed image of one build and its manifest (written by `stamp manifest`)."""

    path: Path
    manifest: Path
    image: McubootImage

    @property
    def hash(self) -> str:
        assert self.image.mcuboot_hash is not None
        return self.image.mcuboot_hash


def make_build(stamp: Stamp, directory: Path, edit: int, version: str) -> Build:
    """Sign a body carrying stamp record `edit` with an ECDSA key; `stamp manifest` it."""
    key = keygen(directory, "ecdsa-p256")
    path = sign(directory, app_body(edit=edit), f"app{edit}.signed.bin", key=key, version=version)
    manifest = path.with_name(f"{path.stem}.stamp.json")  # where `stamp flash` looks
    code, _out, err = stamp("manifest", path)
    assert code == 0, err
    image = load_file(path).mcuboot
    assert image is not None
    return Build(path, manifest, image)


@contextmanager
def smp_board(slots: Slots, reset_delay: float = 0.2) -> Iterator[SmpBoard]:
    """The simulated device on a pty, in a thread of this process, closed afterwards."""
    board = SmpBoard(SmpServer(slots, reset_delay=reset_delay))
    board.start()
    try:
        yield board
    finally:
        board.close()


@contextmanager
def smp_udp_board(slots: Slots, reset_delay: float = 0.2) -> Iterator[SmpUdpBoard]:
    """The simulated device on a loopback UDP port, in a thread, closed afterwards."""
    board = SmpUdpBoard(SmpServer(slots, reset_delay=reset_delay))
    board.start()
    try:
        yield board
    finally:
        board.close()


def verdict(
    stamp: Stamp, board: SmpBoard | SmpUdpBoard, build: Build, *args: str
) -> tuple[int, dict[str, object]]:
    """`stamp verify --device BOARD --manifest BUILD --json ARGS`: (exit code, record)."""
    code, out, _err = stamp(
        "verify", "--device", board.device, "--manifest", build.manifest, "--json", *args
    )
    return code, json.loads(out)
