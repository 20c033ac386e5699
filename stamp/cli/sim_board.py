"""Serve a simulated board in the foreground: the shared tail of `stamp sim serial` and
`stamp sim smp` (first stdout line for scripts, a banner, SIGTERM and Ctrl-C stop it)."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

import click

from stamp.sim.board import BoardLoop


def serve_board(board: BoardLoop, device: str, banner: str | None) -> int:
    """Print `{"device": DEVICE}` first, `banner` on stderr (None: quiet), run `board`
    until SIGTERM or Ctrl-C, and release it on every exit path."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        board.stop()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        click.echo(json.dumps({"device": device}))
        sys.stdout.flush()
        if banner is not None:
            click.echo(f"{banner}; Ctrl-C stops", err=True)
        board.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        board.close()
    return 0
