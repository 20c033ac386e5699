"""What a simulated Particle device runs: a module image read the way the real cloud would.

`read_firmware` checks an uploaded image as the cloud and Device OS do (a Particle
application module whose CRC and SHA-256 hold) and takes from it what the device will
say: its app hash, and the `stamp` report its stamp record and build-id make.
`SimRefused` is the simulated cloud's error answer, in the real cloud's words; an
invalid image is the first it gives (`invalid_firmware`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stamp.artifact.build_id import scan_build_id
from stamp.record import find_records, report_json

APP_MODULE_FUNCTIONS = (3, 5)
"""Monolithic firmware and user parts: what an OTA update of an application sends."""

# The GNU build-id note as it sits in a raw image: namesz 4, descsz, type 3, "GNU\0".


class SimRefused(Exception):
    """A request the simulated cloud answers with an error, in the real cloud's words."""

    def __init__(self, status: int, error: str, *, after: float = 0.0, **extra: object) -> None:
        super().__init__(error)
        self.status = status
        self.after = after
        """Seconds the cloud waits before it answers (a device that does not answer)."""
        self.body: dict[str, object] = {"ok": False, "error": error, **extra}


@dataclass(frozen=True)
class Firmware:
    """What a simulated device runs, as far as the cloud can tell."""

    app_hash: str
    """The Particle app hash (64 lowercase hex) from the module suffix."""
    report: str | None
    """The JSON the app publishes as its `stamp` event; None for an app without stamp."""
    size: int = 0
    """Image size in bytes (0 for the made-up firmware a device starts with)."""
    platform_id: int | None = None
    """The platform the module was built for (None for the made-up firmware)."""
    product_version: int | None = None
    """The product firmware version in the module suffix (None: unset)."""


def read_firmware(image: bytes) -> Firmware:
    """The app hash and stamp report of a Particle module image; SimRefused(400) if invalid.

    The report comes from the stamp record inside the image, exactly what the generated
    C code would format at boot; a GNU build-id note in the image is reported too. A
    module whose CRC or SHA-256 does not match its content is refused, as Device OS
    would refuse to boot it.
    """
    from stamp.artifact.particle.format import ModuleError
    from stamp.artifact.particle.module import parse_module

    try:
        module = parse_module(image)
    except ModuleError as exc:
        raise invalid_firmware(str(exc)) from None
    if module.module_function not in APP_MODULE_FUNCTIONS:
        raise invalid_firmware(
            f"module function {module.module_function} is not an application (user part "
            "or monolithic firmware)"
        )
    if module.app_hash is None or not module.crc_ok or not module.sha_ok:
        raise invalid_firmware(
            "; ".join(module.problems) or "the module's CRC or SHA-256 does not match it"
        )
    report: str | None = None
    records = find_records(image)
    if records:
        report = report_json(records[0][1], scan_build_id(image))
    return Firmware(
        app_hash=module.app_hash.lower(),
        report=report,
        size=len(image),
        platform_id=module.platform_id,
        product_version=module.product_version,
    )


def invalid_firmware(reason: str) -> SimRefused:
    return SimRefused(400, f"Invalid firmware file: {reason}", errors=[reason])
