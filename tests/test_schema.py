"""Our simulated SO-101 records the same schema LeRobot records on a real SO-101 (use_degrees=True)."""

from __future__ import annotations

import pytest

from vla.dataset import dataset_schema


def _lerobot_so101_features(height: int, width: int) -> tuple[dict, str]:
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig
    from lerobot.utils.feature_utils import hw_to_dataset_features

    cams = {
        name: OpenCVCameraConfig(index_or_path=i, width=width, height=height, fps=30)
        for i, name in enumerate(("front", "wrist"))
    }
    # Built, never connected: LeRobot's features are available before connect(), as ours are.
    robot = SO101Follower(SO101FollowerConfig(port="/dev/null", use_degrees=True, cameras=cams))
    features = {
        **hw_to_dataset_features(robot.observation_features, "observation"),
        **hw_to_dataset_features(robot.action_features, "action"),
    }
    return features, robot.name


@pytest.mark.parametrize("size", [96, 224])
def test_sim_schema_equals_lerobot_so101(size: int) -> None:
    from envs.sim_robot import SimRobot

    theirs, their_type = _lerobot_so101_features(size, size)
    robot = SimRobot(task="pick", image_size=size)
    ours = {**robot.observation_features, **robot.action_features}
    assert dataset_schema(ours, robot.fps, robot.robot_type) == dataset_schema(theirs, 30, their_type)
    assert {k: v.get("info") for k, v in ours.items()} == {k: v.get("info") for k, v in theirs.items()}
