"""`stamp sim cloud`: a simulated Particle Cloud on a loopback port (SPEC section 8)."""

from __future__ import annotations

from pathlib import Path

import click

from stamp.cli.app import Settings
from stamp.cli.options import number_option
from stamp.cli.sim_options import firmware_option, read_firmware


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@number_option("--port", click.IntRange(0, 65535), 0, help="0: a free port.")
@click.option("--token", help="The access token clients must send (default: a random one).")
@number_option("--devices", click.IntRange(0, 100_000), 1, help="How many simulated devices.")
@number_option(
    "--fail-rate",
    click.FloatRange(0.0, 1.0),
    0.0,
    help="Probability that an OTA update silently leaves the old firmware running.",
)
@click.option("--seed", type=int, help="Make device ids and OTA failures reproducible.")
@firmware_option(
    "--firmware",
    help="A Particle module .bin every device runs at start (default: an unknown app).",
)
@number_option(
    "--products",
    click.IntRange(0, 1000),
    0,
    help="Put the devices in this many products (dealt round-robin).",
)
@click.option(
    "--groups",
    metavar="NAMES",
    default="",
    help="Comma-separated product groups to deal each product's devices into, round-robin.",
)
@number_option(
    "--speed",
    click.FloatRange(0.01, 10_000.0),
    30.0,
    help="How much faster than the real cloud OTA steps happen (1: seconds apart, "
    "a 408 after 30 s).",
)
@click.option(
    "--variations",
    type=click.Choice(["classic", "seeded", "field"]),
    default="seeded",
    show_default=True,
    help="OTA story: the idealised one, one drawn per update from the seed, or every "
    "variation of the real cloud at once.",
)
@number_option(
    "--boot-delay",
    click.FloatRange(0.0, 60.0),
    help="Seconds a device takes to reboot after an OTA update (default: set by --speed).",
)
@number_option(
    "--keepalive",
    click.FloatRange(0.01, 600.0),
    9.0,
    help="Seconds of silence before an event stream gets a keep-alive comment.",
)
@click.pass_obj
def sim_cloud(
    settings: Settings,
    host: str,
    port: int,
    token: str | None,
    devices: int,
    fail_rate: float,
    seed: int | None,
    firmware: Path | None,
    products: int,
    groups: str,
    speed: float,
    variations: str,
    boot_delay: float | None,
    keepalive: float,
) -> int:
    """Serve a simulated Particle Cloud until interrupted (Ctrl-C or SIGTERM).

    The first line on stdout is one JSON object for scripts: the API URL, the access
    token and the devices. Point stamp at it with PARTICLE_API_URL and
    PARTICLE_ACCESS_TOKEN, then flash and verify as with real devices.

    Needs the `sim` extra: pip install 'stamp-firmware[sim]'.

    \b
    Examples:
      stamp sim cloud --port 0 --devices 2
      stamp sim cloud --fail-rate 0.5 --seed 1 --firmware build/app.bin
      stamp sim cloud --products 2 --devices 100 --speed 1 --variations field
      stamp sim cloud --products 1 --devices 300 --groups beta,production

    \f
    Long for its --help text (the docstring).
    """
    from dataclasses import replace

    from stamp.errors import ArtifactError
    from stamp.sim import require_sim_extra
    from stamp.sim.cloud import CloudSim, SimTiming, Variation
    from stamp.sim.cloud_firmware import SimRefused

    require_sim_extra()
    from stamp.sim.cloud_http import serve_until_signalled

    image = read_firmware(firmware) if firmware is not None else None
    timing = SimTiming.real_pace(speed)
    if boot_delay is not None:
        timing = replace(timing, boot=boot_delay)
    try:
        sim = CloudSim(
            devices=devices,
            token=token,
            fail_rate=fail_rate,
            seed=seed,
            firmware=image,
            timing=timing,
            products=products,
            variation=Variation(variations),
        )
    except SimRefused as exc:
        raise ArtifactError(f"{firmware} is not a Particle module binary: {exc}") from None
    names = tuple(name for name in groups.split(",") if name)
    for product in sim.products if names else ():
        for number, device in enumerate(sim.devices_of("sim_user", product.id)):
            sim.set_groups(device.id, (names[number % len(names)],))
    serve_until_signalled(sim, host, port, keepalive=keepalive)
    return 0
