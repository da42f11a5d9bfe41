"""`SimRobot`: the simulated SO-101 tabletop presented as a `vla.robot.EpisodicRobot`.

Built by hydra (`_target_: envs.sim_robot.SimRobot`), so every argument is a plain value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from envs.so101.env import ACTION_HIGH, ACTION_LOW, SO101Env
from envs.so101.render import CAMERAS
from envs.so101.tasks import task_spec
from vla.errors import VLAError
from vla.features import Features
from vla.robot import SO101_MOTOR_NAMES, SO101_ROBOT_TYPE, Robot, so101_features


@runtime_checkable
class SimulatedSO101(Robot, Protocol):
    """A robot whose simulation a scripted expert may read (privileged state, never a policy's input):
    a `SimRobot`, or a robot driving one (the virtual SO-101)."""

    @property
    def env(self) -> SO101Env: ...


class SimRobot:
    """A MuJoCo SO-101 that the runner drives like a real arm: one `send_action` = one 30 Hz tick."""

    robot_type = SO101_ROBOT_TYPE  # LeRobot's name, so our datasets and theirs share metadata
    fps = 30

    def __init__(
        self,
        task: str = "pick",
        image_size: int = 96,
        cameras: Sequence[str] = CAMERAS,
        max_episode_steps: int | None = None,
        seed: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        task_spec(task)  # a bad task fails here, before anything heavy is built
        cameras = tuple(cameras)
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown:
            raise VLAError(f"robot.cameras={list(cameras)}: unknown {unknown}; choose from {list(CAMERAS)}")
        if int(image_size) < 8:
            raise VLAError(f"robot.image_size={image_size}: must be at least 8 pixels")
        self.task_name = task
        self.image_size = int(image_size)
        self.cameras = cameras
        self.max_episode_steps = max_episode_steps
        self.seed = seed
        self._env_kwargs = env_kwargs
        self._env: SO101Env | None = None
        self._obs: dict[str, np.ndarray] | None = None
        self._info: dict[str, Any] = {}
        self._done = False

    # -- schema (available before connect) -------------------------------------------------------------
    @property
    def observation_features(self) -> Features:
        return so101_features(self.cameras, self.image_size, self.image_size)[0]

    @property
    def action_features(self) -> Features:
        return so101_features(self.cameras, self.image_size, self.image_size)[1]

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        """{action name: (lo, hi)} in robot units: the bounds `send_action` clips to (the env's
        `clip_action`), for the runner's safety filter."""
        return {
            name: (float(lo), float(hi))
            for name, lo, hi in zip(SO101_MOTOR_NAMES, ACTION_LOW, ACTION_HIGH, strict=True)
        }

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        """Build the simulation (model, renderer) and reset it to `seed`."""
        if self._env is None:
            self._env = SO101Env(
                task=self.task_name,
                image_size=self.image_size,
                cameras=self.cameras,
                max_episode_steps=self.max_episode_steps,
                **self._env_kwargs,
            )
            self.reset(self.seed)

    def disconnect(self) -> None:
        """Free the renderer and the simulation."""
        if self._env is not None:
            self._env.close()
            self._env = None

    @property
    def env(self) -> SO101Env:
        """The unwrapped gymnasium env (privileged state for scripted experts); connects if needed."""
        if self._env is None:
            self.connect()
        assert self._env is not None
        return self._env

    # -- episodes --------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start an episode (fully determined by `seed`); returns its first observation."""
        env = self.env
        self._obs, self._info = env.reset(seed=seed)
        self._done = False
        return self._obs

    @property
    def task(self) -> str:
        return self.env.instruction

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    @property
    def episode_done(self) -> bool:
        return self._done

    # -- control ---------------------------------------------------------------------------------------
    def get_observation(self) -> dict[str, np.ndarray]:
        if self._obs is None:
            self.reset(self.seed)
        assert self._obs is not None
        return self._obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Step one control tick towards `action` (6,); returns the clipped action actually sent."""
        env = self.env
        if env.layout is None:
            self.reset(self.seed)
        sent = env.clip_action(action)
        self._obs, _reward, terminated, truncated, self._info = env.step(sent)
        self._done = bool(terminated or truncated)
        return sent
