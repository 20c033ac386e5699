"""What an MCUboot/Zephyr device says about its image slots over SMP, as records and enums.

A Zephyr application's SMP server answers "image state read" with one entry per slot:
hash (the image's SHA-256 TLV), version, and the flags `active`, `pending`, `confirmed`,
`permanent`, `bootable` (absent = false). Only the *active* slot is running. An active
image that is not confirmed runs as a test: MCUboot reverts it at the next reset unless
it is confirmed (`confirm`). A pending image is not running yet: it is swapped in at the
next reset. Zephyr also reports the image a revert would bring back as `confirmed`, in
the slot that is not running — so `confirmed` alone says nothing (SPEC section 6).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class SlotState:
    """One slot as the device reported it."""

    image: int
    """Image number (0 unless the device has several updatable images)."""
    slot: int
    """0 primary (where the running image is), 1 secondary (where uploads go)."""
    version: str
    """The version as Zephyr prints it ("1.2.3" or "1.2.3.4")."""
    hash: str | None
    """The image's hash TLV, lowercase hex."""
    active: bool = False
    """Running now."""
    pending: bool = False
    """Marked to be swapped in at the next reset."""
    confirmed: bool = False
    """Marked to stay (image_ok); on the running slot: it will not be reverted."""
    permanent: bool = False
    """Pending and confirmed: it stays once swapped in."""
    bootable: bool = False
    """The image's bootable flag."""

    def to_json(self) -> dict[str, Any]:
        """Every field, by its name."""
        return asdict(self)


class RunState(Enum):
    """Where an image with a given hash stands on the device."""

    CONFIRMED = "confirmed"
    """Running, and confirmed: it stays after a reset."""
    UNCONFIRMED = "unconfirmed"
    """Running as a test image: it will revert at the next reset unless confirmed."""
    PENDING = "pending"
    """In a slot that is not running, marked for test: not yet running (runs after a reset)."""
    PENDING_PERMANENT = "pending_permanent"
    """Not yet running; marked to be swapped in for good at the next reset."""
    STORED = "stored"
    """In a slot that is not running and not marked: it will not run."""
    ABSENT = "absent"
    """On no slot."""


@dataclass(frozen=True)
class ImageStates:
    """Every slot the device reported."""

    slots: tuple[SlotState, ...]
    """In the device's order."""

    @property
    def active(self) -> SlotState | None:
        """The running slot of image 0 (the only image stamp verifies), if any is active."""
        return next((s for s in self.slots if s.active and s.image == 0), None)

    def find(self, hash_value: str) -> SlotState | None:
        """The slot holding the image with this hash (case-insensitive, in full)."""
        wanted = hash_value.lower()
        return next((s for s in self.slots if s.hash is not None and s.hash == wanted), None)

    def run_state(self, hash_value: str) -> RunState:
        """Where the image with this hash stands."""
        slot = self.find(hash_value)
        if slot is None:
            return RunState.ABSENT
        if slot.active:
            return RunState.CONFIRMED if slot.confirmed else RunState.UNCONFIRMED
        if slot.pending:
            return RunState.PENDING_PERMANENT if slot.permanent else RunState.PENDING
        return RunState.STORED

    def to_json(self) -> list[dict[str, Any]]:
        return [slot.to_json() for slot in self.slots]


def states_from_smp(images: Any) -> ImageStates:
    """ImageStates from smp's `ImageState` models (smp.image_management)."""
    return ImageStates(
        tuple(
            SlotState(
                image=state.image or 0,
                slot=state.slot,
                version=state.version,
                hash=bytes(state.hash).hex() if state.hash is not None else None,
                active=bool(state.active),
                pending=bool(state.pending),
                confirmed=bool(state.confirmed),
                permanent=bool(state.permanent),
                bootable=bool(state.bootable),
            )
            for state in images
        )
    )
