"""One episode of a policy on an episodic robot, as fast as the robot steps.

This is the plain synchronous loop (infer when the chunk runs out) used for recording demonstrations in
simulation; the real-time runner with its rate, strategies and safety filter builds on the same steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla.policy import Policy
from vla.robot import EpisodicRobot

# Called with the observation the action was chosen from and the action actually sent.
StepCallback = Callable[[dict[str, np.ndarray], np.ndarray], None]


@dataclass
class EpisodeResult:
    seed: int | None
    task: str
    success: bool
    steps: int
    interrupted: bool = False


def run_episode(
    robot: EpisodicRobot,
    policy: Policy,
    seed: int | None,
    on_step: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_steps: int | None = None,
) -> EpisodeResult:
    """Reset to `seed`, then tick until the episode ends, `max_steps`, or `should_stop()`.

    Success is LeRobot's rule: `is_success` true at any step.
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
