"""The two image slots of a simulated MCUboot device and what a reset does to them.

This is MCUboot's swap upgrade as a Zephyr application's SMP server reports it (Zephyr's
`img_mgmt` state flags; MCUboot docs, "swap" and "image trailer"):

- slot 0 (primary) holds the running image; slot 1 (secondary) is where uploads go.
- `test(hash)` of the secondary image marks it pending: at the next reset MCUboot swaps
  it into slot 0 and runs it *unconfirmed*. `confirm` on the running image (or on the
  secondary: a permanent upgrade, reported pending and permanent) makes it stay.
- A reset with an unconfirmed image in slot 0 swaps back: the image that was not
  confirmed is reverted. This is the step every SMP client that stops at "reset" misses.
- An image that fails to boot (`boot_fails`) is reverted by MCUboot at the same reset,
  as a watchdog reset in the new image would make it.
- What img_mgmt refuses is refused with its error code: a state write that conflicts
  with what the next reset will do, and an erase or upload of slot 1 while it holds the
  image a revert brings back or one marked to run (NO_FREE_SLOT).

No I/O here: `stamp.sim.smp` puts it on a pseudo-terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, auto

from smp.image_management import IMG_MGMT_ERR

from stamp.artifact.mcuboot import McubootImage, read_mcuboot
from stamp.errors import ArtifactError


class SlotError(Exception):
    """A request the device refuses, with Zephyr's img_mgmt error code."""

    def __init__(self, code: IMG_MGMT_ERR, message: str) -> None:
        super().__init__(message)
        self.code = code


class NextBoot(Enum):
    """What MCUboot does at the next reset (Zephyr's img_mgmt_get_next_boot_slot); only
    compared, never shown or stored, so its values are `auto()`."""

    NORMAL = auto()
    """Boot the slot named with it for good (slot 1: a permanent upgrade)."""
    TEST = auto()
    """Swap slot 1 in and run it unconfirmed."""
    REVERT = auto()
    """Swap the unconfirmed running image out for slot 1."""


@dataclass(frozen=True)
class Slot:
    """One slot's content and trailer flags."""

    image: McubootImage | None = None
    """The image in the slot; None when erased."""
    pending: bool = False
    """Marked to be swapped in at the next reset."""
    confirmed: bool = False
    """image_ok: the image stays at the next reset."""

    @property
    def hash(self) -> bytes | None:
        return (
            bytes.fromhex(self.image.stored_hash) if self.image and self.image.stored_hash else None
        )


def parse_image(data: bytes, name: str = "uploaded image") -> McubootImage:
    """A valid MCUboot image, or SlotError as Zephyr's img_mgmt refuses it."""
    try:
        image = read_mcuboot(data, name)
    except ArtifactError as exc:
        raise SlotError(IMG_MGMT_ERR.INVALID_IMAGE_HEADER_MAGIC, exc.message) from None
    if image is None:
        raise SlotError(
            IMG_MGMT_ERR.INVALID_IMAGE_HEADER_MAGIC, f"{name} has no MCUboot header magic"
        )
    if not image.hash_ok:
        raise SlotError(IMG_MGMT_ERR.INVALID_HASH, f"{name}'s hash TLV does not match its content")
    return image


class Slots:
    """Primary and secondary slot of image 0, with MCUboot's reset semantics."""

    def __init__(
        self,
        running: McubootImage,
        *,
        confirmed: bool = True,
        secondary: McubootImage | None = None,
        pending: bool = False,
        boot_fails: int = 0,
    ) -> None:
        self.primary = Slot(running, confirmed=confirmed)
        self.secondary = Slot(secondary, pending=pending and secondary is not None)
        self.boot_fails = boot_fails
        """How many more swapped-in images fail to boot (and are reverted at once)."""
        self.resets = 0
        self.history: list[str] = []
        """What each reset did: "swap", "revert", "failed boot, reverted", "none"."""

    @property
    def active(self) -> McubootImage:
        assert self.primary.image is not None
        return self.primary.image

    def upload(self, data: bytes) -> McubootImage:
        """A complete upload into the secondary slot (erasing its flags)."""
        image = parse_image(data)
        self.secondary = Slot(image)
        return image

    def erase_secondary(self) -> None:
        """Erase slot 1 (an image erase, or the start of an upload), unless it is in use as
        Zephyr's img_mgmt_slot_in_use says (CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING off,
        its default): the image a revert brings back, or one marked to run at the next reset."""
        if self.secondary.image is not None and self._next_boot()[1] == 1:
            raise SlotError(IMG_MGMT_ERR.NO_FREE_SLOT, "slot 1 holds an image the next reset runs")
        self.secondary = Slot()

    def set_state(self, hash_value: bytes | None, confirm: bool) -> None:
        """SMP image state write: test (confirm=False) or confirm the image with `hash_value`
        (none: the running one), refused as Zephyr's img_mgmt_state_write and
        img_mgmt_set_next_boot_slot refuse it."""
        if hash_value is None:
            if not confirm:
                raise SlotError(
                    IMG_MGMT_ERR.INVALID_HASH, "a test needs the hash of the image to test"
                )
            slot = 0
        elif hash_value == self.primary.hash:
            slot = 0
        elif hash_value == self.secondary.hash:
            slot = 1
        else:
            raise SlotError(IMG_MGMT_ERR.HASH_NOT_FOUND, f"no image with hash {hash_value.hex()}")
        if not confirm and slot == 0:
            raise SlotError(
                IMG_MGMT_ERR.IMAGE_SETTING_TEST_TO_ACTIVE_DENIED,
                "the running image cannot be marked for test",
            )
        next_boot, next_slot = self._next_boot()
        if next_boot is NextBoot.TEST and not (slot == 1 and not confirm):
            raise SlotError(
                IMG_MGMT_ERR.IMAGE_ALREADY_PENDING, "an image is already marked for test"
            )
        if next_boot is NextBoot.TEST or (confirm and slot == next_slot):
            return  # what is asked for is what the next reset does already
        if next_boot is NextBoot.REVERT and not confirm:
            raise SlotError(
                IMG_MGMT_ERR.IMAGE_ALREADY_PENDING, "the running test image is not confirmed yet"
            )
        if next_boot is NextBoot.NORMAL and (next_slot == 1 and (slot == 0 or not confirm)):
            raise SlotError(
                IMG_MGMT_ERR.IMAGE_ALREADY_PENDING, "the image in slot 1 is marked for good already"
            )
        if slot == 0:
            self.primary = replace(self.primary, confirmed=True)
        else:
            self.secondary = replace(self.secondary, pending=True, confirmed=confirm)

    def _next_boot(self) -> tuple[NextBoot, int]:
        """Zephyr's img_mgmt_get_next_boot_slot: what the next reset does, and the slot."""
        if self.secondary.pending and self.secondary.image is not None:
            return (NextBoot.NORMAL if self.secondary.confirmed else NextBoot.TEST), 1
        if not self.primary.confirmed and self.secondary.image is not None:
            return NextBoot.REVERT, 1
        return NextBoot.NORMAL, 0

    def reset(self) -> str:
        """What MCUboot does at boot; returns the name of what happened."""
        self.resets += 1
        if self.secondary.pending and self.secondary.image is not None:
            permanent = self.secondary.confirmed
            old = replace(self.primary, pending=False)
            self.primary = Slot(self.secondary.image, confirmed=permanent)
            self.secondary = replace(old, confirmed=False)
            if self.boot_fails > 0:
                self.boot_fails -= 1
                self._swap_back()
                what = "failed boot, reverted"
            else:
                what = "swap (permanent)" if permanent else "swap (test)"
        elif not self.primary.confirmed and self.secondary.image is not None:
            self._swap_back()
            what = "revert"
        else:
            what = "none"
        self.history.append(what)
        return what

    def _swap_back(self) -> None:
        reverted = self.primary
        assert self.secondary.image is not None
        self.primary = Slot(self.secondary.image, confirmed=True)
        self.secondary = Slot(reverted.image)

    def states(self) -> list[dict[str, object]]:
        """The `images` list of an SMP image state response (absent flags are false)."""
        out: list[dict[str, object]] = []
        for number, slot in enumerate((self.primary, self.secondary)):
            if slot.image is None:
                continue
            state: dict[str, object] = {
                "image": 0,
                "slot": number,
                "version": _zephyr_version(slot.image),
                "hash": slot.hash,
                "bootable": True,
            }
            if number == 0:
                state["active"] = True
            if slot.pending:
                state["pending"] = True
            # Zephyr's img_mgmt (img_mgmt_state_read): the image a reset will bring back
            # (swap type "revert") is reported confirmed although it is not running; an
            # image marked for a permanent swap is pending and permanent, not confirmed.
            permanent = number == 1 and slot.pending and slot.confirmed
            will_return = number == 1 and not self.primary.confirmed and not slot.pending
            if (slot.confirmed and not permanent) or will_return:
                state["confirmed"] = True
            if permanent:
                state["permanent"] = True
            out.append(state)
        return out


def _zephyr_version(image: McubootImage) -> str:
    """Zephyr prints the build number only when it is not zero ("1.2.3" or "1.2.3.4")."""
    major, minor, revision, build = image.version
    return f"{major}.{minor}.{revision}" + (f".{build}" if build else "")
