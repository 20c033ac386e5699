"""`stamp sim`: the simulated devices of SPEC section 8 (a group; members load lazily)."""

from __future__ import annotations

import click

from stamp.cli.app import LazyGroup

_MEMBERS = {
    "serial": "stamp.cli.sim_serial:sim_serial",
    "cloud": "stamp.cli.sim_cloud:sim_cloud",
    "smp": "stamp.cli.sim_smp:sim_smp",
}


@click.group(cls=LazyGroup, members=_MEMBERS)
def sim() -> None:
    """Simulated devices for trying stamp without hardware, and for tests.

    \b
    Examples:
      stamp sim serial --firmware build/app.elf     # a board on a pseudo-terminal
      stamp sim cloud --port 0 --fail-rate 0.5      # a Particle Cloud on loopback
      stamp sim smp --image zephyr.signed.bin       # an MCUboot device speaking SMP
    """
