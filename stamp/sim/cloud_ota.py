"""How a simulated OTA update plays out, in the variations the real cloud shows.

Particle's "Firmware update events" reference (docs.particle.io/reference/cloud-apis/
firmware-update-events) logs a real update: `spark/flash/status` "started " and
"success " about three seconds apart ("success" only means the transfer started, never
that the app runs), `spark/status` offline and online (the docs note the device may reset
before the offline event is generated, so both can carry one timestamp), then the
device's `spark/device/last_reset`, its `spark/device/app-hash` (lowercase hex in those
logs), and `particle/device/updates/*` events. Which of these variations one update shows
is an `OtaStyle`:

- `Variation.CLASSIC`: the idealised story (uppercase hash, app-hash after last_reset,
  no update events, distinct timestamps, a bad binary refused with 400).
- `Variation.FIELD`: every variation at once (what a verifier must survive).
- `Variation.SEEDED`: each update draws its own style from the simulator's seed.

What the real cloud does with a wrong-platform or corrupt binary is not documented; the
simulator makes it part of the style: `refuse_bad_binary` answers 400 "Invalid firmware
file", otherwise the upload is accepted, the flash says "success " and the device boots
its old firmware (an ASSUMPTION, documented in the README).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from stamp.sim.cloud_model import SimTiming

UPDATE_EVENTS = (
    # Device OS >= 1.2.0 reports its OTA availability after connecting (Device OS API
    # reference, "System.enableUpdates()" and "System.updatesForced()").
    ("particle/device/updates/enabled", "true"),
    ("particle/device/updates/forced", "false"),
)


class Variation(StrEnum):
    """Which OTA styles the simulator plays."""

    CLASSIC = "classic"
    """The idealised story, the same every update (SPEC section 8)."""
    SEEDED = "seeded"
    """Each update draws its variations from the seed."""
    FIELD = "field"
    """Every variation seen in the real cloud's logs, at once."""


@dataclass(frozen=True)
class OtaStyle:
    """The variations one OTA update shows."""

    upper_hash: bool = True
    """spark/device/app-hash in uppercase hex (the real logs show lowercase)."""
    hash_before_reset: bool = False
    """spark/device/app-hash published before spark/device/last_reset."""
    update_events: bool = False
    """particle/device/updates/enabled and /forced after coming online."""
    one_timestamp: bool = False
    """spark/status offline and online carry the same published_at, online first."""
    refuse_bad_binary: bool = True
    """A wrong-platform or corrupt binary: 400 (True) or accepted, old firmware kept."""
    pace: float = 1.0
    """Every delay of this update multiplied by this (0.5 to 2 when seeded)."""


CLASSIC = OtaStyle()
FIELD = OtaStyle(
    upper_hash=False,
    hash_before_reset=True,
    update_events=True,
    one_timestamp=True,
    refuse_bad_binary=False,
)


def draw_style(variation: Variation, rng: random.Random) -> OtaStyle:
    """The style of the next update: fixed, or drawn from the seeded `rng`."""
    if variation is Variation.CLASSIC:
        return CLASSIC
    if variation is Variation.FIELD:
        return FIELD
    upper, before, extra, one_time, refuse = (rng.random() < 0.5 for _ in range(5))
    return OtaStyle(upper, before, extra, one_time, refuse, pace=rng.uniform(0.5, 2.0))


@dataclass(frozen=True)
class Step:
    """One thing that happens `delay` seconds after the upload was accepted."""

    delay: float
    """Seconds after the upload was accepted."""
    action: str
    """"publish", "offline", "online" (the device's state changes) or "boot" (done)."""
    name: str = ""
    """The event's name, for "publish"."""
    data: str = ""
    """The event's data, for "publish"."""
    same_time_as_previous: bool = False
    """Publish with the previous event's published_at (the one-timestamp variation)."""


def update_steps(timing: SimTiming, style: OtaStyle) -> list[Step]:
    """The cloud's side of an update up to the reboot: flash status, offline, online."""
    t = timing.scaled(style.pace)
    started, success = 0.0, t.transfer
    down = success + t.restart
    up = down + t.boot
    steps = [
        Step(started, "publish", "spark/flash/status", "started "),
        # "success" only means the transfer finished, never that the app runs (SPEC 1).
        Step(success, "publish", "spark/flash/status", "success "),
    ]
    if style.one_timestamp:
        # The device reset before the cloud noticed: online, then the late offline,
        # stamped with one time.
        steps += [
            Step(up, "offline"),
            Step(up, "online", "spark/status", "online"),
            Step(up, "publish", "spark/status", "offline", same_time_as_previous=True),
        ]
    else:
        steps += [
            Step(down, "offline", "spark/status", "offline"),
            Step(up, "online", "spark/status", "online"),
        ]
    steps.append(Step(up, "boot"))
    return steps


def boot_events(
    style: OtaStyle, reason: str, app_hash: str | None, report: str | None
) -> list[tuple[str, str]]:
    """What a device publishes after it is back online, in order.

    `app_hash` None: unchanged since the last session, so Device OS stays silent about it
    (SPEC section 1); `report` None: the app has no stamp event.
    """
    events: list[tuple[str, str]] = [("spark/device/last_reset", reason)]
    if app_hash is not None:
        shown = app_hash.upper() if style.upper_hash else app_hash.lower()
        at = 0 if style.hash_before_reset else len(events)
        events.insert(at, ("spark/device/app-hash", shown))
    if style.update_events:
        events.extend(UPDATE_EVENTS)
    if report is not None:  # the app publishes its identity once after each boot
        events.append(("stamp", report))
    return events
