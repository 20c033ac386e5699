"""What the Particle Cloud client hands out: `DeviceInfo` (from `device_info`), `Answer`,
`RateLimited`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from stamp.errors import DeviceUnreachable
from stamp.redact import redact


@dataclass(frozen=True)
class Answer:
    """A whole (size-capped) HTTP answer."""

    status_code: int
    """The HTTP status."""
    headers: httpx.Headers
    """Its headers."""
    content: bytes
    """Its body, at most the cap it was read with."""


@dataclass(frozen=True)
class DeviceInfo:
    """A device as the cloud describes it."""

    id: str
    """24 hex digits."""
    name: str | None
    """Its name, None when unnamed."""
    online: bool
    """Connected to the cloud right now."""
    platform_id: int | None = None
    """Particle platform (6 Photon, 12 Argon, …)."""
    last_heard: str | None = None
    """ISO 8601 time the cloud last heard from it."""
    variables: tuple[str, ...] = ()
    """Names of the cloud variables its firmware registered (when the cloud says)."""

    @property
    def label(self) -> str:
        """How to name it to a person: "name (id)" or the id."""
        return f"{self.name} ({self.id})" if self.name else self.id


class RateLimited(DeviceUnreachable):
    """The cloud answered 429; wait `retry_after` seconds (what it asked, floored)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


MAX_ID = 64
"""Longer than any device id (24 hex digits): not one."""


def device_info(item: Any) -> DeviceInfo | None:
    """A device record of the cloud's JSON; None without a usable id. Text is redacted."""
    if not isinstance(item, dict):
        return None
    device_id = item.get("id")
    if not isinstance(device_id, str) or not 0 < len(device_id) <= MAX_ID:
        return None
    name = item.get("name")
    online = item.get("online", item.get("connected"))
    platform = item.get("platform_id")
    heard = item.get("last_heard")
    variables = item.get("variables")
    return DeviceInfo(
        id=device_id.lower(),
        name=redact(name) if isinstance(name, str) and name else None,
        online=online is True,
        platform_id=platform
        if isinstance(platform, int) and not isinstance(platform, bool)
        else None,
        last_heard=heard if isinstance(heard, str) else None,
        variables=tuple(str(v) for v in variables) if isinstance(variables, dict) else (),
    )
