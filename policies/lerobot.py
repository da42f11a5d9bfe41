"""LeRobot's own policies (ACT, Diffusion Policy, any `PreTrainedPolicy`) behind our Policy protocol, so our
runner can drive them as baselines (bench/side_by_side.py) with the same robots, safety and reports.

Nothing here imports lerobot: the caller builds the policy and its pre/post-processors (LeRobot's factory,
or `from_pretrained`) and hands them over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from vla.model.batch import image_tensor, state_tensor
from vla.robot import STATE

Processor = Callable[[Any], Any]


class LeRobotPolicy:
    """Called exactly as lerobot-eval calls a policy: one `select_action` per control step (the policy's
    own action queue and observation history inside), so each chunk we return is one action long."""

    def __init__(self, model: Any, pre: Processor, post: Processor, cameras: Sequence[str]) -> None:
        """model: a LeRobot PreTrainedPolicy (put in eval mode by the caller); pre/post: its processor
        pipelines (normalisation, device); cameras: full feature keys, observation.images.<name>."""
        self.model, self.pre, self.post, self.cameras = model, pre, post, list(cameras)
        self.task = ""

    def reset(self, task: str | None = None) -> None:
        self.task = task or ""
        self.model.reset()

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        obs: dict[str, Any] = {"task": self.task, STATE: state_tensor(observation[STATE])}  # [S]
        for key in self.cameras:
            obs[key] = image_tensor(observation[key])  # [3, H, W] in [0, 1]
        with torch.inference_mode():
            action = self.post(self.model.select_action(self.pre(obs)))
        return action.reshape(1, -1).float().numpy()  # [1, A]
