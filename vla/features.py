"""LeRobot's feature names and feature dictionaries: the one place they are spelled.

A Robot's observation, a recorded dataset frame, a training batch and an inference batch all use these
keys (LeRobot's dataset schema, so our datasets and theirs are interchangeable):

    observation.state          float32 (n,)      joint positions; SO-101: degrees, gripper 0-100
    observation.images.<cam>   video   (H, W, 3) uint8 frames from a Robot (C, H, W float in training)
    action                     float32 (n,)      absolute joint targets, same units as the state
    action_is_pad              bool    (chunk,)  training: rows of a chunk past the episode's end
    task                       str               the language instruction

`is_success` is the key of a simulated step's info dict that says the episode's task is done.
"""

from __future__ import annotations

from typing import Any

STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
ACTION_IS_PAD = "action_is_pad"
TASK = "task"
IS_SUCCESS = "is_success"

Features = dict[str, dict[str, Any]]


def image_key(camera: str) -> str:
    """`front` -> `observation.images.front`."""
    return IMAGE_PREFIX + camera


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


def camera_keys(features: Features) -> list[str]:
    """The `observation.images.*` keys of a feature dict, in order."""
    return [k for k in features if k.startswith(IMAGE_PREFIX)]
