"""`stamp flash` for MCUboot/Zephyr devices over SMP: the step every SMP client skips.

`smpmgr upgrade` uploads, marks the image for test, resets and prints "Upgrade complete."
without looking again — while MCUboot runs a tested image unconfirmed and reverts it at
the next reset unless someone confirms it (react-native-mcu-manager PR 819 added the
re-read for exactly this). So one flash here is:

1. read the slots; upload the signed image into the secondary slot (unless it already
   runs), mark it for test, reset;
2. wait for the device to come back and read the slots again;
3. confirm the image only when it is the active one (`no_confirm` leaves it in test);
4. then `stamp.device.flash` verifies from a fresh read, as for any device, and retries
   an attempt whose device runs another image (MCUboot reverted it, or never swapped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import ClassVar

from stamp.closing import Closing
from stamp.device.flash_image import FlashImage
from stamp.device.image_state import ImageStates
from stamp.device.target import SmpTarget
from stamp.device.transport.base import Clock, Transport, monotonic
from stamp.device.transport.smp import REQUEST_TIMEOUT, SmpSession, SmpTransport
from stamp.errors import ArtifactError, DeviceUnreachable, FlashError

COMEBACK_TIMEOUT = 60.0
"""Seconds a device may take to come back after a reset (MCUboot swaps slots first)."""
POLL_READ_TIMEOUT = 1.0
"""Seconds one state read may take while waiting for a device to come back."""
POLL_INTERVAL = 0.2
"""Seconds between attempts to reach a device that is resetting."""


@dataclass(eq=False)
class SmpFlasher(Closing):
    """Upload, test, reset, re-read and confirm over SMP (see the module docstring)."""

    flash_while_listening: ClassVar[bool] = False

    target: SmpTarget
    """The device: SMP over serial or UDP."""
    _: KW_ONLY
    confirm: bool = True
    """False (--no-confirm): leave the new image running as a test image."""
    clock: Clock = monotonic
    """The clock of the come-back wait (tests pass a fake one)."""
    comeback_timeout: float = COMEBACK_TIMEOUT
    """Seconds the device may take to answer again after the reset."""
    _data: bytes = field(default=b"", init=False, repr=False)
    _hash: str = field(default="", init=False)

    def describe(self) -> str:
        return f"to {self.target.describe()}"

    def prepare(self, image: FlashImage) -> None:
        """The file must be the signed MCUboot image whose hash the manifest holds."""
        from stamp.artifact.image import load_file

        loaded = load_file(image.path)
        mcuboot = loaded.mcuboot
        if mcuboot is None or mcuboot.mcuboot_hash is None:
            raise ArtifactError(
                f"not flashing {image.path} over SMP: it is not a signed MCUboot image "
                "(give the output of `imgtool sign`, e.g. zephyr.signed.bin)"
            )
        if image.manifest.identity.mcuboot_hash != mcuboot.mcuboot_hash:
            raise ArtifactError(
                f"not flashing {image.path}: its manifest {image.manifest_path} has no or "
                "another mcuboot_hash; run `stamp manifest` on the signed image"
            )
        self._data, self._hash = mcuboot.data, mcuboot.mcuboot_hash

    def flash(self, image: FlashImage, say: Callable[[str], None]) -> None:
        """One upload-test-reset-confirm; FlashError when the device stopped answering."""
        try:
            self._flash(say)
        except DeviceUnreachable as exc:
            raise FlashError(exc.message, detail=exc.detail) from None

    def _flash(self, say: Callable[[str], None]) -> None:
        with SmpSession(self.target) as session:
            states = self._reach(session, "the device")
            active = states.active
            if active is None or active.hash != self._hash:
                self._upload(session, say)
                session.test(self._hash)
                say("stamp: image marked for test; resetting the device")
                session.reset()
                session.disconnect()
                states = self._reach(session, "the device after its reset")
            else:
                say("stamp: the device runs this image already: not uploading it again")
            self._after_reset(session, states, say)

    def open(self, since: float, clock: Clock) -> Transport:
        return SmpTransport(self.target, clock=clock)

    def close(self) -> None:
        """Nothing held between attempts: each opens its own session."""

    # --- steps --------------------------------------------------------------------------

    def _upload(self, session: SmpSession, say: Callable[[str], None]) -> None:
        size = len(self._data)
        shown = [0]

        def progress(offset: int) -> None:
            quarter = offset * 4 // max(size, 1)
            if quarter > shown[0]:
                shown[0] = quarter
                say(f"stamp: uploaded {offset}/{size} bytes")

        say(f"stamp: uploading {size} bytes to the secondary slot")
        session.upload(self._data, progress)

    def _after_reset(
        self, session: SmpSession, states: ImageStates, say: Callable[[str], None]
    ) -> None:
        active = states.active
        if active is None or active.hash != self._hash:
            # Not an error of the flash itself: the verdict names what runs, and it retries.
            running = f"{active.version} ({active.hash[:8]}…)" if active and active.hash else "?"
            say(
                f"stamp: after the reset the device runs {running}, not the new image: "
                "MCUboot did not swap it in, or reverted it"
            )
            return
        if active.confirmed:
            say("stamp: the new image is active and confirmed")
        elif self.confirm:
            session.confirm(self._hash)
            say("stamp: the new image is active: confirmed it")
        else:
            say("stamp: the new image is active, left unconfirmed (--no-confirm)")

    def _reach(self, session: SmpSession, what: str) -> ImageStates:
        """Connect and read the slots, retrying until the device answers (bounded)."""
        deadline = self.clock() + self.comeback_timeout
        last: DeviceUnreachable | None = None
        while self.clock() < deadline:
            try:
                if not session.connected:
                    session.connect(REQUEST_TIMEOUT)
                return session.read_states(POLL_READ_TIMEOUT)
            except DeviceUnreachable as exc:
                last = exc
                session.disconnect()
                time.sleep(POLL_INTERVAL)
        reason = f": {last.message}" if last else ""
        raise FlashError(
            f"{what} did not answer over SMP within {self.comeback_timeout:g} s{reason}"
        )
