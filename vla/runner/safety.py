"""The safety filter between every policy and every robot, and the watchdog's counters.

`SafetyFilter.filter` rejects non-finite actions, clamps to joint limits and to a maximum change per tick
from the last commanded position; every intervention is counted by kind.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from vla.features import ACTION
from vla.robot import JointLimitedRobot, Robot

# Kinds of intervention, as counted in the metrics.
NAN = "nan_rejected"
LIMIT = "limit_clamped"
RATE = "rate_clamped"
HOLD = "watchdog_hold"
SAFE_STOP = "safe_stop"
KINDS = (NAN, LIMIT, RATE, HOLD, SAFE_STOP)


def joint_limits(robot: Robot) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo [A], hi [A]) in robot units from the limits a `JointLimitedRobot` states ({name: (lo, hi)},
    keyed by its `action_features` names; a joint it leaves out is unbounded); None for any other robot."""
    names = list(robot.action_features[ACTION].get("names") or [])
    if not isinstance(robot, JointLimitedRobot) or not names:
        return None
    limits = robot.joint_limits
    lo = np.array([limits.get(n, (-np.inf, np.inf))[0] for n in names], dtype=np.float64)
    hi = np.array([limits.get(n, (-np.inf, np.inf))[1] for n in names], dtype=np.float64)
    return lo, hi


class SafetyFilter:
    """Finite check, joint-limit clamp and per-tick rate clamp; `counts` holds every intervention."""

    def __init__(
        self, limits: tuple[np.ndarray, np.ndarray] | None = None, max_delta: float | None = None
    ) -> None:
        self.lo: np.ndarray | None = None if limits is None else limits[0]
        self.hi: np.ndarray | None = None if limits is None else limits[1]
        self.max_delta = max_delta
        self.counts: Counter[str] = Counter({k: 0 for k in KINDS})

    def filter(self, action: np.ndarray, last: np.ndarray | None) -> np.ndarray | None:
        """action [A] -> the safe action [A], or None if it must be rejected (the watchdog then holds)."""
        action = np.asarray(action, dtype=np.float64)
        if not np.isfinite(action).all():
            self.counts[NAN] += 1
            return None
        if self.lo is not None and self.hi is not None:
            clamped = np.clip(action, self.lo, self.hi)
            if not np.array_equal(clamped, action):
                self.counts[LIMIT] += 1
            action = clamped
        if self.max_delta is not None and last is not None:
            step = np.clip(action - last, -self.max_delta, self.max_delta)
            if not np.array_equal(step, action - last):
                self.counts[RATE] += 1
            action = last + step
        return action

    def count(self, kind: str) -> None:
        self.counts[kind] += 1

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))
