"""Fake served policies: deterministic, cheap, with declared features (no model, no MuJoCo)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vla.robot import so101_features


class EchoPolicy:
    """Chunk row i is `state + i + offset`; `select_chunk_guided` adds 1000 * inference_delay."""

    def __init__(
        self,
        robot: Any = None,
        horizon: int = 4,
        image_size: int = 8,
        cameras: Any = ("front",),
        delay_s: float = 0.0,
    ) -> None:
        self.horizon = int(horizon)
        self.size = int(image_size)
        self.cameras = list(cameras)
        self.delay_s = float(delay_s)
        self.chunk_size = self.horizon
        self.task: str | None = None
        self.resets: list[str | None] = []
        self.calls = 0

    @property
    def observation_features(self) -> dict:
        return so101_features(self.cameras, self.size, self.size)[0]

    @property
    def action_features(self) -> dict:
        return so101_features(self.cameras, self.size, self.size)[1]

    def reset(self, task: str | None = None) -> None:
        self.task = task
        self.resets.append(task)

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        offset = 100.0 if self.task == "offset" else 0.0
        state = observation["observation.state"].astype(np.float32)
        return state[None] + np.arange(self.horizon, dtype=np.float32)[:, None] + offset  # [H, 6]

    def select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
        beta: float | None = None,
    ) -> np.ndarray:
        return self.select_chunk(observation) + 1000.0 * inference_delay


class SlowPolicy(EchoPolicy):
    """EchoPolicy taking 50 ms per chunk: a model on a GPU."""

    def __init__(self, robot: Any = None, delay_s: float = 0.05, **kwargs: Any) -> None:
        super().__init__(robot, delay_s=delay_s, **kwargs)


class CrashingPolicy(EchoPolicy):
    """Raises on every chunk (a bug in the served policy must not take the server down)."""

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        raise RuntimeError("boom")


class PlainPolicy:
    """Declares nothing: served without an observation schema, and without guided inference."""

    def reset(self, task: str | None = None) -> None:
        pass

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros((2, 3), np.float32)


def observation(state: float = 1.0, size: int = 8, cameras: Any = ("front",)) -> dict[str, np.ndarray]:
    obs: dict[str, np.ndarray] = {"observation.state": np.full(6, state, np.float32)}
    for cam in cameras:
        obs[f"observation.images.{cam}"] = np.zeros((size, size, 3), np.uint8)
    return obs
