"""A policy served by `vla-serve` on another host (a GPU box), used here through the Policy protocol.

    vla-rollout policy=remote policy.url=ws://gpu-box:8765     # token from VLA_SERVE_TOKEN

When the server cannot answer (gone, refused, timed out) a call raises `PolicyUnavailable` and the
runner holds position; the next call reconnects, so the episode resumes when the server is back.

It is a `GuidedPolicy` (the runner's `rtc` strategy guides it) exactly when the served policy is: the
server says so in its hello reply, and `select_chunk_guided` is offered from then on.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vla.errors import VLAError
from vla.robot import Robot
from vla.serve.client import PolicyClient
from vla.serve.errors import PolicyUnavailable


class RemotePolicy:
    def __init__(
        self,
        robot: Robot | None = None,
        url: str = "ws://127.0.0.1:8765",
        token: str | None = None,
        timeout_s: float = 1.0,
        connect_timeout_s: float = 1.0,
        retry_interval_s: float = 0.25,
    ) -> None:
        token = token or os.environ.get("VLA_SERVE_TOKEN") or None  # kept out of configs and reports
        self.client = PolicyClient(url, token, timeout_s, connect_timeout_s, retry_interval_s)
        try:
            spec = self.client.connect()
        except PolicyUnavailable as e:
            self.guided = False
            if robot is not None:  # at start-up this is a setup mistake, not a hiccup
                raise VLAError(
                    f"policy.url={url}: no policy server answers ({e}); start vla-serve there"
                ) from None
            return
        if robot is not None:
            spec.check_robot(robot.observation_features, robot.action_features)
        self.guided = spec.guided
        if spec.guided:
            # The capability the runner looks for (isinstance(policy, GuidedPolicy)), offered only when
            # the served policy has it: a plain server is never sent a guided request.
            self.select_chunk_guided = self._select_chunk_guided

    @property
    def chunk_size(self) -> int | None:
        return None if self.client.spec is None else self.client.spec.chunk_size

    def reset(self, task: str | None = None) -> None:
        self.client.reset(task)

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.client.infer(observation)  # [H, A] float32

    def _select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
        beta: float | None = None,
    ) -> np.ndarray:
        guided: dict[str, Any] = {
            "prev_chunk": np.asarray(prev_chunk, dtype=np.float32),  # [H, A]
            "inference_delay": int(inference_delay),
            "execution_horizon": int(execution_horizon),
        }
        if beta is not None:
            guided["beta"] = float(beta)
        return self.client.infer(observation, guided=guided)  # [H, A] float32

    def close(self) -> None:
        self.client.close()
