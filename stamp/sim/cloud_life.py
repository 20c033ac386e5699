"""The device side of the simulated cloud: OTA updates and reboots, played out step by step.

`DeviceLife` is mixed into `stamp.sim.cloud.CloudSim`: it schedules what the cloud and a
device publish during an update (the steps and their variations come from
`stamp.sim.cloud_ota`) and what the device says when it boots. It works on CloudSim's
state under CloudSim's lock.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from functools import partial

from stamp.sim.cloud_firmware import Firmware
from stamp.sim.cloud_model import SimDevice, SimTiming
from stamp.sim.cloud_ota import OtaStyle, Variation, boot_events, draw_style, update_steps
from stamp.sim.scheduler import Scheduler


class DeviceLife:
    """Updates and reboots of CloudSim's devices (a mixin: CloudSim holds the state)."""

    timing: SimTiming
    _lock: threading.Lock
    _devices: dict[str, SimDevice]
    _scheduler: Scheduler
    _style_rng: random.Random

    def publish(
        self,
        id_or_name: str,
        name: str,
        data: str,
        *,
        ttl: int = ...,
        block: bool = ...,
        at: float | None = None,
    ) -> float:
        raise NotImplementedError

    def _require(self, id_or_name: str, owner: str | None) -> SimDevice:
        raise NotImplementedError

    def _put(self, device: SimDevice) -> SimDevice:
        raise NotImplementedError

    def reboot(self, id_or_name: str, reason: str = "pin_reset") -> None:
        """Restart a device: offline, online, last_reset, and its app's `stamp` event."""
        with self._lock:
            device_id = self._require(id_or_name, None).id
        self._set_state(device_id, online=False)
        self.publish(device_id, "spark/status", "offline")
        self._scheduler.after(
            self.timing.boot, lambda: self._boot(device_id, None, reason, self._classic())
        )

    def _classic(self) -> OtaStyle:
        return draw_style(Variation.CLASSIC, self._style_rng)

    def _play_update(self, device_id: str, new: Firmware | None, style: OtaStyle) -> None:
        """Schedule what the cloud and the device publish; `new` None: the update fails."""
        stamped: list[float] = []  # the last published_at, for the one-timestamp variation

        def run(step_action: str, name: str, data: str, same_time: bool) -> None:
            if step_action in ("offline", "online"):
                self._set_state(device_id, online=step_action == "online")
            if step_action == "boot":
                self._boot(device_id, new, "update", style)
            elif name:
                at = stamped[-1] if same_time and stamped else None
                stamped.append(self.publish(device_id, name, data, at=at))

        for step in update_steps(self.timing, style):
            action = partial(run, step.action, step.name, step.data, step.same_time_as_previous)
            self._scheduler.after(step.delay, action)

    def _set_state(self, device_id: str, *, online: bool) -> None:
        with self._lock:
            self._put(replace(self._devices[device_id], online=online))

    def _boot(self, device_id: str, new: Firmware | None, reason: str, style: OtaStyle) -> None:
        """Back online: on `new` firmware, or on the old one when None (a failed update)."""
        with self._lock:
            device = self._devices[device_id]
            runs = new if new is not None else device.firmware
            was_online = device.online
            changed = runs.app_hash != device.session_hash
            self._put(
                replace(
                    device, firmware=runs, online=True, updating=False, session_hash=runs.app_hash
                )
            )
        if not was_online:
            self.publish(device_id, "spark/status", "online")
        events = boot_events(style, reason, runs.app_hash if changed else None, runs.report)
        pace = self.timing.step * style.pace
        for number, (name, data) in enumerate(events, start=1):
            self._scheduler.after(pace * number, partial(self.publish, device_id, name, data))
