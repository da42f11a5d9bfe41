"""The Robot protocol shared by simulated and real arms, and LeRobot's feature conventions.

Feature dictionaries follow LeRobot's dataset schema so that a dataset recorded through any Robot here
has the same schema as one LeRobot records on the same arm:

    observation.state          float32 (n,)      joint positions; SO-101: degrees, gripper 0-100
    observation.images.<cam>   video   (H, W, 3) uint8 frames from get_observation()
    action                     float32 (n,)      absolute joint targets, same units as the state
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."

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

Features = dict[str, dict[str, Any]]


def vector_feature(names: list[str]) -> dict[str, Any]:
    """A float32 vector feature with one name per component (LeRobot's format)."""
    return {"dtype": "float32", "shape": (len(names),), "names": list(names)}


def camera_feature(height: int, width: int) -> dict[str, Any]:
    """An RGB camera stored as video: frames are H x W x 3 uint8."""
    return {
        "dtype": "video",
        "shape": (height, width, 3),
        "names": ["height", "width", "channels"],
        "info": {"is_depth_map": False},
    }


def so101_features(
    cameras: list[str] | tuple[str, ...], height: int, width: int
) -> tuple[Features, Features]:
    """(observation_features, action_features) of an SO-101 with these cameras, as LeRobot records it."""
    observation: Features = {STATE: vector_feature(SO101_MOTOR_NAMES)}
    for cam in cameras:
        observation[IMAGE_PREFIX + cam] = camera_feature(height, width)
    return observation, {ACTION: vector_feature(SO101_MOTOR_NAMES)}


def camera_keys(features: Features) -> list[str]:
    """The `observation.images.*` keys of a feature dict, in order."""
    return [k for k in features if k.startswith(IMAGE_PREFIX)]


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
