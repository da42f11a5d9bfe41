"""Meta-World's bundled scripted expert for a task, as a Policy on a `MetaWorldRobot`.

The experts are hand-written controllers on the full 39-D state (hand, object and goal positions), which
the robot exposes as `full_state` and never as an observation feature. Closed loop: chunks of one action.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from envs.metaworld import MetaWorldRobot
from vla.errors import VLAError
from vla.robot import Robot


class MetaWorldExpert:
    """`metaworld.policies.ENV_POLICY_MAP[task]()` behind the Policy protocol (chunks of shape (1, 4))."""

    def __init__(self, robot: Robot) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        experts: dict[str, Any] = ENV_POLICY_MAP  # concrete subclasses of its abstract Policy
        if not isinstance(robot, MetaWorldRobot) or robot.task_name not in experts:
            raise VLAError(
                f"the Meta-World expert needs a Meta-World robot (robot=metaworld); got {type(robot).__name__}"
            )
        self.robot = robot
        self.task_name = robot.task_name
        self._expert_class: Any = experts[robot.task_name]
        self._expert = self._expert_class()

    def reset(self, task: str | None = None) -> None:
        """A fresh expert per episode (the bundled ones keep no state, but nothing could leak if one did)."""
        self._expert = self._expert_class()

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One action (1, 4) in [-1, 1] from the robot's privileged state (`observation` is not needed)."""
        with warnings.catch_warnings():
            # The experts' gains overshoot [-1, 1] by design and say so on every large move; we clip.
            warnings.simplefilter("ignore", UserWarning)
            action = self._expert.get_action(self.robot.full_state)
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)[None, :]  # (1, 4)
