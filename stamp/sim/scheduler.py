"""A thread that runs delayed actions in order: the devices' side of the simulated cloud.

`Scheduler.after(delay, action)` is how `stamp.sim.cloud.CloudSim` plays out an OTA
update or a reboot step by step without a thread per device; `idle()` says when
nothing is left to play.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("stamp.sim.cloud")


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    action: Callable[[], object] = field(compare=False)


class Scheduler:
    """One thread that runs delayed actions in order (the devices' side of an update)."""

    def __init__(self) -> None:
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._running = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sim-cloud-devices", daemon=True)
        self._thread.start()

    def after(self, delay: float, action: Callable[[], object]) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._jobs, _Job(time.monotonic() + delay, self._seq, action))
            self._cond.notify()

    def idle(self) -> bool:
        """Nothing scheduled and nothing running (a running step may schedule more)."""
        with self._cond:
            return not self._jobs and not self._running

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    if self._jobs and self._jobs[0].due <= now:
                        break
                    self._cond.wait(self._jobs[0].due - now if self._jobs else None)
                if self._stopped:
                    return
                job = heapq.heappop(self._jobs)
                self._running = True
            try:
                job.action()
            except Exception:  # a bug in one step must not stop every device
                log.exception("simulated device step failed")
            finally:
                with self._cond:
                    self._running = False
