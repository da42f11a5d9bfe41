"""Fakes at the Robot / Policy level: cheap, deterministic, no MuJoCo."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from vla.errors import VLAError
from vla.policy import Policy
from vla.robot import SO101_ROBOT_TYPE, EpisodicRobot, so101_features
from vla.runner.result import EpisodeResult, StepCallback


class FakeTabletop:
    """An EpisodicRobot whose state walks towards the action; success when within 1 unit of `goal`.

    Each seed draws a goal; the images are a colour that encodes the step count.
    """

    robot_type = SO101_ROBOT_TYPE
    fps = 30

    def __init__(
        self,
        task: str = "pick",
        image_size: int = 16,
        cameras: Any = ("front", "wrist"),
        max_episode_steps: int | None = None,
        fail_seeds: Any = (),
        step_delay_s: float = 0.0,
        targets_per_layout: int = 1,  # configs/robot/sim.yaml's key; the fake draws one goal per seed
    ) -> None:
        if targets_per_layout != 1:
            raise VLAError("FakeTabletop: targets_per_layout must be 1")
        if task not in ("touch", "pick", "bin"):
            raise VLAError(f"robot.task={task!r} is not a task; choose one of: touch, pick, bin")
        self.task_id = task
        self.size = int(image_size)
        self.cameras = list(cameras)
        self.limit = max_episode_steps or 20
        self.fail_seeds = set(fail_seeds)
        self.step_delay_s = float(step_delay_s)
        self._connected = False
        self._state = np.zeros(6, np.float32)
        self._goal = np.zeros(6, np.float32)
        self._steps = 0
        self._info: dict[str, Any] = {}
        self._seed: int | None = None

    @property
    def observation_features(self) -> dict:
        return so101_features(self.cameras, self.size, self.size)[0]

    @property
    def action_features(self) -> dict:
        return so101_features(self.cameras, self.size, self.size)[1]

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    @property
    def task(self) -> str:
        return f"{self.task_id} the red cube"

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    @property
    def episode_done(self) -> bool:
        return bool(self._info.get("is_success")) or self._steps >= self.limit

    def goal(self) -> np.ndarray:
        return self._goal.copy()

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        self._seed = seed
        self._goal = rng.uniform(-30, 30, size=6).astype(np.float32)
        self._state = np.zeros(6, np.float32)
        self._steps = 0
        self._info = {"is_success": False}
        return self.get_observation()

    def get_observation(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {"observation.state": self._state.copy()}
        for i, cam in enumerate(self.cameras):
            obs[f"observation.images.{cam}"] = np.full(
                (self.size, self.size, 3), (self._steps * 7 + i * 50) % 255, np.uint8
            )
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        sent = np.clip(np.asarray(action, np.float32), -100, 100)
        self._state = self._state + 0.5 * (sent - self._state)
        self._steps += 1
        done = float(np.abs(self._state - self._goal).max()) < 1.0 and self._seed not in self.fail_seeds
        self._info = {"is_success": done}
        return sent


class GoalPolicy:
    """Closed-loop 'expert' for FakeTabletop: chunks of `horizon` copies of the goal."""

    def __init__(self, robot: FakeTabletop, horizon: int = 3) -> None:
        self.robot = robot
        self.horizon = horizon

    def reset(self, task: str | None = None) -> None:
        pass

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.repeat(self.robot.goal()[None], self.horizon, axis=0)


def run_episode(
    robot: EpisodicRobot,
    policy: Policy,
    seed: int | None,
    on_step: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_steps: int | None = None,
) -> EpisodeResult:
    """The plain synchronous reference loop (infer when the chunk runs out, as fast as the robot steps):
    what the runner with strategy=sync and realtime=false must equal (tests/runner/test_rollout_runner.py).
    The apps never use it; every episode they run goes through vla.session.driver on the runner.

    Reset to `seed`, then tick until the episode ends, `max_steps`, or `should_stop()`. Success is
    LeRobot's rule: `is_success` true at any step.
    """
    observation = robot.reset(seed=seed)
    task = robot.task
    policy.reset(task)
    queue: deque[np.ndarray] = deque()
    success = False
    steps = 0
    while not robot.episode_done and (max_steps is None or steps < max_steps):
        if should_stop is not None and should_stop():
            return EpisodeResult(seed, task, success, steps, interrupted=True)
        if not queue:
            chunk = np.asarray(policy.select_chunk(observation))  # [H, action_dim]
            if chunk.ndim != 2 or len(chunk) == 0:
                raise ValueError(f"policy returned a chunk of shape {chunk.shape}; expected (horizon, dim)")
            queue.extend(chunk)
        sent = robot.send_action(queue.popleft())
        if on_step is not None:
            on_step(observation, sent)
        steps += 1
        success = success or bool(robot.info.get("is_success", False))
        observation = robot.get_observation()
    return EpisodeResult(seed, task, success, steps)
