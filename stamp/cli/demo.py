"""`stamp demo`: the whole loop against a simulated device (SPEC section 8)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from stamp.cli.app import Settings


@click.command("demo")
@click.option("--keep", is_flag=True, help="Keep the demo project directory (and say where).")
@click.pass_obj
def demo(settings: Settings, keep: bool) -> int:
    """Show the whole loop on a simulated Particle Photon: no board, compiler or network.

    In a throw-away directory: a small project in its own git repository, `stamp header`,
    a firmware image (a Particle module holding the stamp record, made without a
    compiler), `stamp manifest`, then `stamp flash` through a simulated cloud whose OTA
    updates fail the way real ones do, and `stamp verify` naming the build a device still
    runs. Takes a few seconds; everything it starts is stopped and the directory removed,
    also on Ctrl-C.

    Exit status 0 when every step behaved as designed (the mismatch it shows included).

    \b
    Examples:
      stamp demo
      stamp demo --keep        # look at the project afterwards
    """
    import sys

    from stamp.cli.demo_story import run_demo

    return run_demo(sys.stdout, keep=keep)
