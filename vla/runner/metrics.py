"""What the runner measures: tick timing, missed ticks, inference latency, queue depth, chunk-boundary
jumps and safety interventions. `summary()` is what `runner_metrics.json` holds."""

from __future__ import annotations

from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

from vla.io import write_json_atomic
from vla.runner.safety import KINDS

KEEP = 200_000  # samples kept per series (percentiles over the most recent ones on long runs)


def _pct(values: Any, q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(1000.0 * value, 4)


class RunnerMetrics:
    def __init__(self) -> None:
        self.ticks = 0  # ticks executed (an action sent or a hold)
        self.late_ticks = 0  # deadlines skipped because a tick started a period or more late
        self.held_ticks = 0  # ticks with no valid policy action: the watchdog held
        self.episodes = 0
        self.policy_errors = 0  # PolicyUnavailable raised by the policy
        self.jitter_s: deque[float] = deque(maxlen=KEEP)  # |tick period - nominal|
        self.lateness_s: deque[float] = deque(maxlen=KEEP)  # tick start - its deadline
        self.latency_s: deque[float] = deque(maxlen=KEEP)  # inference, submit to result
        self.queue_depth: deque[int] = deque(maxlen=KEEP)  # planned actions left after each tick
        self.boundary_jumps: deque[float] = deque(maxlen=KEEP)  # largest per-joint step at each switch
        # largest per-joint gap at each switch between the new action and the one the old plan had for
        # the same tick (the step above less the motion both plans make)
        self.discontinuities: deque[float] = deque(maxlen=KEEP)
        self.interventions: Counter[str] = Counter({k: 0 for k in KINDS})
        self.info: dict[str, Any] = {}  # strategy, rate, ... (set by the runner)
        self.last_delay_ticks: int | None = None

    @property
    def missed_ticks(self) -> int:
        return self.late_ticks + self.held_ticks

    def summary(self) -> dict[str, Any]:
        jitter, infer = self.jitter_s, self.latency_s
        return {
            **self.info,
            "episodes": self.episodes,
            "ticks": self.ticks,
            "missed_ticks": self.missed_ticks,
            "late_ticks": self.late_ticks,
            "held_ticks": self.held_ticks,
            "jitter_p50_ms": _ms(_pct(jitter, 50)) or 0.0,
            "jitter_p99_ms": _ms(_pct(jitter, 99)) or 0.0,
            "jitter_max_ms": _ms(max(jitter, default=0.0)),
            "lateness_max_ms": _ms(max(self.lateness_s, default=0.0)),
            "infer_count": len(infer),
            "infer_p50_ms": _ms(_pct(infer, 50)),
            "infer_p99_ms": _ms(_pct(infer, 99)),
            "inference_delay_ticks": self.last_delay_ticks,
            "queue_depth_mean": float(np.mean(self.queue_depth)) if self.queue_depth else None,
            "queue_depth_min": min(self.queue_depth, default=None),
            "boundaries": len(self.boundary_jumps),
            "max_boundary_jump": float(max(self.boundary_jumps, default=0.0)),
            "mean_boundary_jump": float(np.mean(self.boundary_jumps)) if self.boundary_jumps else 0.0,
            "max_boundary_discontinuity": float(max(self.discontinuities, default=0.0)),
            "mean_boundary_discontinuity": (
                float(np.mean(self.discontinuities)) if self.discontinuities else 0.0
            ),
            "safety_interventions": int(sum(self.interventions.values())),
            "interventions": dict(self.interventions),
            "policy_errors": self.policy_errors,
        }

    def status(self, queue: int | None = None) -> dict[str, Any]:
        """The live line: ticks, missed, jitter p99, inference p50, queue depth."""
        jitter = _ms(_pct(list(self.jitter_s)[-2000:], 99))
        infer = _ms(_pct(list(self.latency_s)[-200:], 50))
        return {
            "ticks": self.ticks,
            "missed": self.missed_ticks,
            "jit99": "-" if jitter is None else f"{jitter:.2f}ms",
            "inf50": "-" if infer is None else f"{infer:.0f}ms",
            "queue": "-" if queue is None else queue,
        }

    def write(self, path: str | Path) -> Path:
        """Write `summary()` as JSON atomically (a reader never sees half a file)."""
        path = Path(path)
        write_json_atomic(path, self.summary())
        return path
