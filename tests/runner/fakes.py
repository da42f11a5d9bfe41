"""Fakes for the runner tests: a robot that counts ticks, policies with scripted latencies."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from vla.robot import STATE, vector_feature
from vla.runner import FakeClock, PolicyUnavailable

NAMES = ["a.pos", "b.pos"]


class TickRobot:
    """Two joints; the state is the number of actions received, so a policy knows its tick.

    With `clock` and `step_s`, each `send_action` takes that long on the fake clock.
    """

    robot_type = "tick"

    def __init__(
        self,
        fps: int = 50,
        limit: int = 100,
        clock: FakeClock | None = None,
        step_s: Any = 0.0,
        joint_limits: dict | None = None,
        with_safe_stop: bool = False,
    ) -> None:
        self.fps, self.limit, self.clock, self.step_s = fps, limit, clock, step_s
        if joint_limits is not None:
            self.joint_limits = joint_limits
        self.steps = 0
        self.sent: list[np.ndarray] = []
        self.sent_at: list[float] = []
        self.events: list[tuple[str, int]] = []
        if with_safe_stop:
            self.safe_stop = lambda: self.events.append(("safe_stop", self.steps))
            self.resume = lambda: self.events.append(("resume", self.steps))

    observation_features: ClassVar[dict] = {STATE: vector_feature(NAMES)}
    action_features: ClassVar[dict] = {"action": vector_feature(NAMES)}
    is_connected = True
    task = "count"
    info: ClassVar[dict[str, Any]] = {"is_success": False}

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    @property
    def episode_done(self) -> bool:
        return self.steps >= self.limit

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        self.steps = 0
        self.sent.clear()
        self.sent_at.clear()
        return self.get_observation()

    def get_observation(self) -> dict[str, np.ndarray]:
        return {STATE: np.full(2, float(self.steps), np.float32)}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        if self.clock is not None:
            self.sent_at.append(self.clock.now())
            step = self.step_s(self.steps) if callable(self.step_s) else self.step_s
            self.clock.advance(step)
        self.sent.append(np.asarray(action, np.float64).copy())
        self.steps += 1
        return np.asarray(action, np.float32)


class RampPolicy:
    """Chunks of `horizon` rows: row i of a chunk computed at tick t is t + i + offset(call) on every joint.

    `latency_s` is spent on `clock` (FakeClock: advanced; None: a real sleep). `down(call)` true makes the
    call raise PolicyUnavailable.
    """

    def __init__(
        self,
        horizon: int = 10,
        latency_s: float = 0.0,
        clock: FakeClock | None = None,
        offset: Any = None,
        down: Any = None,
    ) -> None:
        self.horizon, self.latency_s, self.clock = horizon, latency_s, clock
        self.offset, self.down = offset, down
        self.calls = 0
        self.obs_ticks: list[int] = []

    def reset(self, task: str | None = None) -> None:
        pass

    def _spend(self) -> None:
        if self.clock is not None:
            self.clock.advance(self.latency_s)
        elif self.latency_s:
            time.sleep(self.latency_s)

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        self._spend()
        if self.down is not None and self.down(self.calls):
            raise PolicyUnavailable("server unreachable")
        t = float(observation[STATE][0])
        self.obs_ticks.append(int(t))
        off = 0.0 if self.offset is None else float(self.offset(self.calls))
        rows = t + np.arange(self.horizon, dtype=np.float64) + off  # [H]
        return np.repeat(rows[:, None], 2, axis=1)  # [H, 2]


class GuidedRampPolicy(RampPolicy):
    """RampPolicy with the RTC method: the frozen rows [0, d) are copied from prev_chunk exactly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guided_calls: list[tuple[np.ndarray, int, int]] = []
        self.betas: list[float | None] = []

    def select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
        beta: float | None = None,
    ) -> np.ndarray:
        self.betas.append(beta)
        self.guided_calls.append((prev_chunk.copy(), inference_delay, execution_horizon))
        chunk = self.select_chunk(observation)
        chunk[:inference_delay] = prev_chunk[:inference_delay]
        return chunk
