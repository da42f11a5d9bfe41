"""Meta-World as a Robot: schema, LeRobot's conventions, determinism, the bundled experts, record and rollout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from envs.metaworld import (
    CAMERAS,
    CORNER2_POS,
    DIFFICULTY,
    INSTRUCTIONS,
    METAWORLD_ROBOT_TYPE,
    TASKS,
    MetaWorldRobot,
    tasks_of,
)
from policies.metaworld_expert import MetaWorldExpert
from policies.scripted import scripted_policy
from tests.fakes import run_episode
from vla.errors import VLAError
from vla.robot import ACTION, STATE, EpisodicRobot, Robot

REPO = Path(__file__).resolve().parents[1]
CAM = "observation.images.corner2"


@pytest.fixture(scope="module")
def push() -> Iterator[MetaWorldRobot]:
    robot = MetaWorldRobot(task="push-v3", image_size=64)
    robot.connect()
    yield robot
    robot.disconnect()


def test_tasks_and_split_are_metaworld_and_lerobot_ones() -> None:
    import lerobot
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert sorted(TASKS) == sorted(ALL_V3_ENVIRONMENTS) and len(TASKS) == 50
    assert all(INSTRUCTIONS[t] and INSTRUCTIONS[t] == INSTRUCTIONS[t].strip() for t in TASKS)
    assert {k: len(v) for k, v in DIFFICULTY.items()} == {"easy": 28, "medium": 11, "hard": 6, "very_hard": 5}
    every = [t for group in DIFFICULTY.values() for t in group]
    assert sorted(every) == sorted(TASKS)  # a partition of the 50 tasks
    # The split LeRobot's installed Meta-World env expands env.task=easy etc. with.
    theirs = json.loads((Path(lerobot.__file__).parent / "envs/metaworld_config.json").read_text())
    assert theirs["DIFFICULTY_TO_TASKS"] == DIFFICULTY
    assert tasks_of("hard") == DIFFICULTY["hard"] and tasks_of("push-v3") == ["push-v3"]
    with pytest.raises(VLAError, match="neither a Meta-World task nor a difficulty"):
        tasks_of("hardest")


def test_split_helper_prints_a_tasks_list() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "envs.metaworld", "very_hard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ",".join(DIFFICULTY["very_hard"])


def test_features_before_connect() -> None:
    robot = MetaWorldRobot(task="reach-v3", image_size=96)
    assert isinstance(robot, Robot) and isinstance(robot, EpisodicRobot)
    assert robot.robot_type == METAWORLD_ROBOT_TYPE == "metaworld" and robot.fps == 80
    feats = robot.observation_features
    assert list(feats) == [STATE, CAM]
    assert feats[STATE]["shape"] == (4,) and feats[STATE]["dtype"] == "float32"
    assert feats[CAM]["shape"] == (96, 96, 3) and feats[CAM]["dtype"] == "video"
    assert list(robot.action_features) == [ACTION] and robot.action_features[ACTION]["shape"] == (4,)
    assert robot.action_features[ACTION]["names"] == ["x", "y", "z", "gripper"]  # LeRobot's names
    assert robot.joint_limits == {n: (-1.0, 1.0) for n in ("x", "y", "z", "gripper")}
    assert not robot.is_connected  # reading features built nothing


def test_observation_camera_and_clipping(push: MetaWorldRobot) -> None:
    obs = push.reset(seed=0)
    assert set(obs) == {STATE, CAM}
    full = push.full_state  # privileged: never among the observation features
    assert full.shape == (39,) and np.abs(full[36:]).max() > 0  # the goal is observed by the expert
    np.testing.assert_array_equal(obs[STATE], full[:4].astype(np.float32))
    assert obs[STATE].dtype == np.float32
    assert obs[CAM].shape == (64, 64, 3) and obs[CAM].dtype == np.uint8 and obs[CAM].std() > 5
    # corner2 as LeRobot shows it: moved, and the frame flipped on both axes.
    model = push.env.model
    np.testing.assert_allclose(model.cam_pos[model.camera("corner2").id], CORNER2_POS)
    raw = push._camera.render(push.env.data)["corner2"]  # type: ignore[union-attr]
    np.testing.assert_array_equal(obs[CAM], raw[::-1, ::-1])
    assert sorted(model.camera(i).name for i in range(model.ncam)) == sorted(CAMERAS)

    assert push.task == "push the puck to the goal"
    assert push.info == {"is_success": False, "task": push.task} and not push.episode_done
    sent = push.send_action(np.array([3.0, -2.0, 0.5, -0.25], dtype=np.float32))
    np.testing.assert_array_equal(sent, [1.0, -1.0, 0.5, -0.25])
    assert push.info["is_success"] is False and "near_object" in push.info
    with pytest.raises(ValueError, match="4 finite numbers"):
        push.send_action(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="4 finite numbers"):
        push.send_action(np.zeros(6))


def test_same_seed_same_scene_and_episode(push: MetaWorldRobot) -> None:
    def episode(seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        obs = push.reset(seed=seed)
        start, frame = push.full_state, obs[CAM].copy()
        expert = scripted_policy(push)
        states = []
        for _ in range(20):
            push.send_action(expert.select_chunk(push.get_observation())[0])
            states.append(push.full_state)
        return start, frame, states

    a_start, a_frame, a_states = episode(7)
    b_start, *_ = episode(8)
    c_start, c_frame, c_states = episode(7)  # after other episodes: history does not leak in
    np.testing.assert_array_equal(a_start, c_start)
    np.testing.assert_array_equal(a_frame, c_frame)
    np.testing.assert_array_equal(np.stack(a_states), np.stack(c_states))
    assert np.abs(a_start[4:7] - b_start[4:7]).max() > 0.005  # another seed puts the puck elsewhere


@pytest.mark.parametrize("task", ["push-v3", "reach-v3"])
def test_bundled_expert_succeeds(task: str) -> None:
    robot = MetaWorldRobot(task=task, image_size=32)
    try:
        expert = scripted_policy(robot)  # policy=scripted builds the Meta-World expert
        assert isinstance(expert, MetaWorldExpert)
        for seed in (0, 1):
            result = run_episode(robot, expert, seed)
            assert result.success and result.steps < 200, (task, seed, result)
            assert robot.episode_done and robot.info["is_success"]  # the episode ends at success
    finally:
        robot.disconnect()


def test_step_limit_ends_the_episode() -> None:
    robot = MetaWorldRobot(task="reach-v3", image_size=16, max_episode_steps=5)
    try:
        robot.reset(seed=0)
        steps = 0
        while not robot.episode_done:
            robot.send_action(np.zeros(4, dtype=np.float32))
            steps += 1
        assert steps == 5 and not robot.info["is_success"]
        with pytest.raises(RuntimeError, match="reset"):
            robot.send_action(np.zeros(4, dtype=np.float32))
    finally:
        robot.disconnect()


def test_user_errors_are_one_clear_line() -> None:
    with pytest.raises(VLAError) as err:
        MetaWorldRobot(task="push-v2")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("robot.task='push-v2' is not a Meta-World task (did you mean push-v3?)")
    assert all(t in message for t in TASKS)
    with pytest.raises(VLAError, match=r"robot\.camera='front'.*corner2"):
        MetaWorldRobot(camera="front")
    with pytest.raises(VLAError, match=r"robot\.max_episode_steps=501"):
        MetaWorldRobot(max_episode_steps=501)
    with pytest.raises(VLAError, match="takes no options"):
        scripted_policy(MetaWorldRobot(), speed=0.3)
    with pytest.raises(VLAError, match="needs a Meta-World robot"):
        MetaWorldExpert(object())


def test_vla_record_writes_a_lerobot_dataset(tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / "mw"
    exe = str(Path(sys.executable).with_name("vla-record"))
    args = ["robot=metaworld", "robot.task=push-v3", "policy=scripted", "episodes=2", "robot.image_size=64"]
    proc = subprocess.run(
        [exe, *args, f"dataset.root={root}", f"hydra.run.dir={tmp_path / 'run'}", "progress=false"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MUJOCO_GL="egl"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "policy success: 2/2 = 100.0%" in proc.stdout
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "metaworld" and info["fps"] == 80
    ds = LeRobotDataset("local/metaworld", root=root)
    assert ds.meta.total_episodes == 2 and ds.meta.video_keys == [CAM]
    item = ds[0]
    assert item[STATE].shape == (4,) and item[ACTION].shape == (4,)
    assert tuple(item[CAM].shape) == (3, 64, 64)
    assert item["task"] == "push the puck to the goal"
    assert float(item[ACTION].abs().max()) <= 1.0


def test_vla_rollout_reports_the_expert_success(tmp_path: Path) -> None:
    from vla.apps.rollout import rollout

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "rollout",
            overrides=[
                "robot=metaworld",
                "robot.image_size=32",
                "policy=scripted",
                "tasks=[push-v3,reach-v3]",
                "episodes=2",
                "videos=0",
                "progress=false",
                f"output_dir={tmp_path}",
            ],
        )
    report = rollout(cfg)
    assert report["tasks"] == ["push-v3", "reach-v3"] and report["episodes"] == 4
    assert report["success_rate"] == 1.0
    assert all(report["per_task"][t]["successes"] == 2 for t in ("push-v3", "reach-v3"))
    assert [e["seed"] for e in report["per_episode"][:2]] == [100_000, 100_001]
    assert json.loads((tmp_path / "report.json").read_text())["success_rate"] == 1.0


def test_rollout_expands_a_difficulty_group() -> None:
    from hydra import compose, initialize_config_module

    from envs.metaworld import DIFFICULTY
    from vla.apps.rollout import _table, _validate

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "rollout", overrides=["robot=metaworld", "policy=scripted", "tasks=[very_hard,reach-v3]"]
        )
    tasks, _ = _validate(cfg)
    assert tasks == [*DIFFICULTY["very_hard"], "reach-v3"]
    stats = {
        "shelf-place-v3": {"episodes": 1, "success_ci95": (0.0, 1.0), "success_rate": 1.0, "mean_length": 9.0}
    }
    header, row, _ = _table(stats, stats["shelf-place-v3"]).splitlines()
    assert header.index("episodes") == row.index("1") - 7  # the columns line up past a long task name
