"""The Robot protocol shared by simulated and real arms, its optional capabilities, and the SO-101's
LeRobot features.

Feature names and feature dictionaries live in `vla.features` (re-exported here): a dataset recorded
through any Robot here has the same schema as one LeRobot records on the same arm.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.features import (
    ACTION,
    IMAGE_PREFIX,
    STATE,
    Features,
    camera_feature,
    camera_keys,
    vector_feature,
)

__all__ = [
    "ACTION",
    "IMAGE_PREFIX",
    "SO101_JOINTS",
    "SO101_MOTOR_NAMES",
    "SO101_ROBOT_TYPE",
    "STATE",
    "EpisodicRobot",
    "Features",
    "JointLimitedRobot",
    "Robot",
    "SafeStopRobot",
    "camera_feature",
    "camera_keys",
    "so101_features",
    "vector_feature",
]

# LeRobot's SO-100/SO-101 joint order and names (motor name + ".pos", as its datasets record them).
SO101_JOINTS: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
SO101_MOTOR_NAMES: list[str] = [f"{j}.pos" for j in SO101_JOINTS]
# The robot_type LeRobot 0.6.1 writes for SO-100/SO-101 followers (its SOFollower.name), so that a dataset
# recorded in our simulation and one lerobot-record makes on a real arm carry the same metadata.
SO101_ROBOT_TYPE = "so_follower"


def so101_features(
    cameras: list[str] | tuple[str, ...], height: int, width: int
) -> tuple[Features, Features]:
    """(observation_features, action_features) of an SO-101 with these cameras, as LeRobot records it."""
    observation: Features = {STATE: vector_feature(SO101_MOTOR_NAMES)}
    for cam in cameras:
        observation[IMAGE_PREFIX + cam] = camera_feature(height, width)
    return observation, {ACTION: vector_feature(SO101_MOTOR_NAMES)}


@runtime_checkable
class Robot(Protocol):
    """Anything the runner can drive: a simulated arm, a serial arm, a LeRobot robot.

    `observation_features` and `action_features` are available before `connect()`.
    `send_action` returns the action actually sent (after clipping to limits).
    """

    robot_type: str
    fps: int

    @property
    def observation_features(self) -> Features: ...

    @property
    def action_features(self) -> Features: ...

    @property
    def is_connected(self) -> bool: ...

    def connect(self) -> None: ...

    def get_observation(self) -> dict[str, np.ndarray]: ...

    def send_action(self, action: np.ndarray) -> np.ndarray: ...

    def disconnect(self) -> None: ...


@runtime_checkable
class EpisodicRobot(Robot, Protocol):
    """A Robot that can reset to a seeded scene and judge success: simulation.

    `task` is the language instruction of the current episode; `info` is the latest step's info dict
    (it holds `is_success`); `episode_done` is true when the episode ended (success or time limit).
    """

    @property
    def task(self) -> str: ...

    @property
    def info(self) -> dict[str, Any]: ...

    @property
    def episode_done(self) -> bool: ...

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]: ...


# Optional robot capabilities, checked once with isinstance rather than with hasattr probes.


@runtime_checkable
class JointLimitedRobot(Robot, Protocol):
    """A robot that states its joint limits: {action feature name: (lo, hi)} in robot units."""

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]: ...


@runtime_checkable
class SafeStopRobot(Robot, Protocol):
    """A robot that can hold still safely (a serial arm: hold position, torque kept) when the watchdog
    fires, and `resume()` when commands flow again."""

    def safe_stop(self) -> None: ...

    def resume(self) -> None: ...


@runtime_checkable
class ArmModelRobot(Robot, Protocol):
    """A robot that names its arm model (so100, so101, koch, …; hardware.specs), which LeRobot's
    `robot_type` does not always tell apart: a teleop leader is checked against it."""

    @property
    def arm_model(self) -> str: ...
