"""Clocks for control loops: monotonic seconds and sleeping until an absolute deadline.

`RealClock` sleeps most of the way with `time.sleep` and spins the last stretch on `perf_counter`, since
the OS wakes a sleeping thread up to a millisecond or more late. `FakeClock` jumps: tests of the loop's
timing run in microseconds and are exact. Nothing here reads the wall clock (`time.time`).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (arbitrary origin)."""
        ...

    def sleep_until(self, t: float) -> None:
        """Return at `t` (or at once if `t` has passed)."""
        ...


class RealClock:
    """`time.perf_counter`, with a final spin of `spin_s` for sub-millisecond wake-ups."""

    def __init__(self, spin_s: float = 0.0015) -> None:
        self.spin_s = spin_s

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float) -> None:
        remaining = t - time.perf_counter()
        if remaining > self.spin_s:
            time.sleep(remaining - self.spin_s)
        while time.perf_counter() < t:
            time.sleep(0)  # yield the GIL to the inference thread while spinning


class FakeClock:
    """Time that only moves when told: `sleep_until` jumps to the deadline, `advance` adds to it.

    Thread-safe, so a fake policy in a worker thread may advance it too.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep_until(self, t: float) -> None:
        with self._lock:
            self._now = max(self._now, float(t))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += float(seconds)
