"""RequestBudget: Particle's 10,000 requests per 5 minutes, and a 429 pausing every thread.

A fake clock whose sleep advances it: the budget's arithmetic, not the machine's speed.
"""

from __future__ import annotations

import threading
from collections import deque

import pytest

from stamp.device.transport.rate import PARTICLE_REQUESTS, PARTICLE_WINDOW, RequestBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_no_five_minute_window_holds_more_than_ten_thousand_requests() -> None:
    fake = FakeTime()
    budget = RequestBudget(clock=fake.clock, sleep=fake.sleep)
    window: deque[float] = deque()
    most = 0
    for _ in range(30_000):
        budget.acquire()
        window.append(fake.now)
        while window[0] <= fake.now - PARTICLE_WINDOW:
            window.popleft()
        most = max(most, len(window))
    assert most <= PARTICLE_REQUESTS
    assert most >= PARTICLE_REQUESTS - 200  # and it does not waste the allowance
    # 30,000 requests need at least two full windows beyond the first 10,000.
    assert fake.now - 1000.0 >= 2 * PARTICLE_WINDOW * 0.99


def test_a_pause_holds_back_every_request_until_it_ends() -> None:
    fake = FakeTime()
    budget = RequestBudget(clock=fake.clock, sleep=fake.sleep)
    budget.acquire()
    budget.pause(7.0)
    budget.acquire()
    assert fake.now >= 1007.0
    assert budget.limited == 1
    assert budget.waited >= 7.0


def test_the_budget_refuses_a_burst_as_large_as_the_limit() -> None:
    with pytest.raises(ValueError):
        RequestBudget(requests=100, burst=100)
