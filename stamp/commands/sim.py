"""`stamp sim`: the simulated devices of SPEC section 8 (a group; members load lazily)."""

from __future__ import annotations

import importlib

import click

_MEMBERS = {
    "serial": "stamp.commands.sim_serial:sim_serial",
    "cloud": "stamp.commands.sim_cloud:sim_cloud",
}


class _LazySim(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_MEMBERS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _MEMBERS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazySim)
def sim() -> None:
    """Simulated devices for trying stamp without hardware, and for tests.

    \b
    Examples:
      stamp sim serial --firmware build/app.elf     # a board on a pseudo-terminal
      stamp sim cloud --port 0 --fail-rate 0.5      # a Particle Cloud on loopback
    """
