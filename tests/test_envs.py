"""The simulated SO-101 tabletop env and its Robot adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.sim_robot import SimRobot
from envs.so101.env import ACTION_HIGH, ACTION_LOW, SO101Env, to_radians, to_units
from envs.so101.model import JOINT_LIMITS, JOINTS, SUBSTEPS, TIMESTEP
from vla.errors import VLAError
from vla.robot import ACTION, SO101_ROBOT_TYPE, STATE, EpisodicRobot, JointLimitedRobot, Robot
from vla.runner.safety import joint_limits

FRONT = "observation.images.front"
WRIST = "observation.images.wrist"


@pytest.fixture(scope="module")
def env96() -> SO101Env:
    env = SO101Env(task="pick", image_size=96)
    yield env
    env.close()


def test_registered_ids_and_tasks() -> None:
    assert envs.TASKS == ("touch", "pick", "bin")
    for env_id, task in [
        ("vla/SO101-v0", "bin"),
        ("vla/SO101Touch-v0", "touch"),
        ("vla/SO101Pick-v0", "pick"),
        ("vla/SO101Bin-v0", "bin"),
    ]:
        kwargs = {"task": task} if env_id == "vla/SO101-v0" else {}
        env = gym.make(env_id, cameras=(), **kwargs)
        try:
            _, info = env.reset(seed=1)
            assert env.unwrapped.task_name == task
            assert info["task"].endswith("cube" if task != "bin" else "bin")
            assert info["is_success"] is False
        finally:
            env.close()


def test_spaces_and_image_shapes(env96: SO101Env) -> None:
    obs, _ = env96.reset(seed=0)
    assert set(obs) == {STATE, FRONT, WRIST}
    assert obs[STATE].dtype == np.float32 and obs[STATE].shape == (6,)
    for key in (FRONT, WRIST):
        assert obs[key].dtype == np.uint8 and obs[key].shape == (96, 96, 3)
        assert obs[key].std() > 5  # a real picture, not a blank buffer
    assert env96.observation_space.contains(obs)
    assert env96.action_space.shape == (6,) and env96.action_space.dtype == np.float32
    # Physics substeps fill one 30 Hz tick exactly.
    assert pytest.approx(1 / 30) == SUBSTEPS * TIMESTEP


def test_images_at_224() -> None:
    env = SO101Env(task="touch", image_size=224)
    try:
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(obs[STATE])
        assert obs[FRONT].shape == (224, 224, 3) and obs[WRIST].shape == (224, 224, 3)
    finally:
        env.close()


def test_same_seed_same_episode_different_seed_differs(env96: SO101Env) -> None:
    action = np.array([10.0, -10.0, 30.0, 60.0, 20.0, 80.0], dtype=np.float32)
    runs = []
    for seed in (7, 7, 8):
        obs, info = env96.reset(seed=seed)
        for _ in range(3):
            obs, *_ = env96.step(action)
        cubes = np.concatenate([env96.cube_pos(c) for c in ("red", "green", "blue")])
        runs.append((obs, info["task"], cubes))
    (a, task_a, cubes_a), (b, task_b, cubes_b), (c, _, cubes_c) = runs
    assert task_a == task_b
    np.testing.assert_array_equal(cubes_a, cubes_b)
    for key in (STATE, FRONT, WRIST):
        np.testing.assert_array_equal(a[key], b[key])
    assert np.abs(cubes_a - cubes_c).max() > 0.01
    assert not np.array_equal(a[FRONT], c[FRONT])


def test_layouts_separated_and_in_reach() -> None:
    env = SO101Env(task="pick", cameras=())
    targets = set()
    for seed in range(40):
        env.reset(seed=seed)
        targets.add(env.target)
        xy = np.array([env.cube_pos(c)[:2] for c in ("red", "green", "blue")])  # (3, 2)
        gaps = [np.linalg.norm(xy[i] - xy[j]) for i in range(3) for j in range(i + 1, 3)]
        assert min(gaps) > 0.06
        radius = np.linalg.norm(xy, axis=1)
        assert radius.min() > 0.13 and radius.max() < 0.25
        assert np.abs(env.bin_pos()[:2]).max() < 0.3
    assert targets == {"red", "green", "blue"}


def test_action_clipping_and_tracking() -> None:
    env = SO101Env(task="pick", cameras=())
    env.reset(seed=0)
    wild = np.array([500, -500, 500, -500, 500, 150], dtype=np.float32)
    np.testing.assert_array_equal(
        env.clip_action(wild),
        [ACTION_HIGH[0], ACTION_LOW[1], ACTION_HIGH[2], ACTION_LOW[3], ACTION_HIGH[4], 100],
    )
    # Degrees of the URDF limits; gripper 0 (closed) .. 100 (open).
    assert ACTION_HIGH[0] == pytest.approx(np.degrees(JOINT_LIMITS["shoulder_pan"][1]), abs=1e-3)
    assert ACTION_LOW[5] == 0 and ACTION_HIGH[5] == 100
    target = np.array([20.0, -20.0, 30.0, 60.0, -30.0, 50.0], dtype=np.float32)
    for _ in range(45):  # 1.5 s
        obs, *_ = env.step(target)
    np.testing.assert_allclose(obs[STATE], target, atol=2.0)  # position servos track within 2 deg


def test_unit_conversion_round_trip() -> None:
    units = np.array([10.0, -20.0, 30.0, -40.0, 50.0, 25.0], dtype=np.float32)
    np.testing.assert_allclose(to_units(to_radians(units)), units, atol=1e-4)
    closed, opened = to_radians(np.zeros(6))[5], to_radians(np.full(6, 100.0))[5]
    assert (closed, opened) == pytest.approx(JOINT_LIMITS["gripper"])
    assert len(JOINTS) == 6


def test_unknown_task_is_a_user_error() -> None:
    with pytest.raises(VLAError, match=r"robot\.task='foo' is not a task; choose one of: touch, pick, bin"):
        SO101Env(task="foo")
    with pytest.raises(VLAError, match=r"robot\.task='foo'"):
        SimRobot(task="foo")


def test_truncation_at_step_limit() -> None:
    env = SO101Env(task="touch", cameras=(), max_episode_steps=5)
    obs, _ = env.reset(seed=0)
    flags = [env.step(obs[STATE])[2:4] for _ in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_sim_robot_protocol_and_features() -> None:
    robot = SimRobot(task="pick", image_size=64, cameras=["front", "wrist"], seed=3)
    assert isinstance(robot, Robot) and isinstance(robot, EpisodicRobot)
    assert robot.robot_type == SO101_ROBOT_TYPE and robot.fps == 30
    assert not robot.is_connected
    feats = robot.observation_features  # before connect
    assert list(feats) == [STATE, FRONT, WRIST]
    assert feats[STATE]["shape"] == (6,) and feats[STATE]["names"][0] == "shoulder_pan.pos"
    assert feats[FRONT]["shape"] == (64, 64, 3) and feats[FRONT]["dtype"] == "video"
    assert list(robot.action_features) == [ACTION]
    assert not robot.is_connected  # reading features built nothing

    robot.connect()
    try:
        assert robot.is_connected
        obs = robot.get_observation()
        assert obs[FRONT].shape == (64, 64, 3) and obs[STATE].shape == (6,)
        assert robot.task.startswith("pick up the ")
        sent = robot.send_action(np.array([0, 0, 0, 0, 999, -5], dtype=np.float32))
        assert sent[4] == ACTION_HIGH[4] and sent[5] == 0.0
        assert robot.info["is_success"] is False and robot.info["task"] == robot.task
        assert not robot.episode_done
        first = robot.reset(seed=11)[STATE].copy()
        np.testing.assert_array_equal(robot.reset(seed=11)[STATE], first)
    finally:
        robot.disconnect()
    assert not robot.is_connected


def test_sim_robot_states_the_limits_it_clips_to() -> None:
    """The safety filter's limits for a SimRobot are its own (`joint_limits`), read without building the
    sim, and they are exactly the bounds `send_action` clips to."""
    robot = SimRobot(task="touch", cameras=())
    assert isinstance(robot, JointLimitedRobot)
    limits = joint_limits(robot)
    assert limits is not None and not robot.is_connected
    lo, hi = limits
    big = np.full(6, 1e9)
    robot.connect()
    try:
        np.testing.assert_array_equal(lo, robot.env.clip_action(-big).astype(np.float64))
        np.testing.assert_array_equal(hi, robot.env.clip_action(big).astype(np.float64))
        wild = np.array([500, -500, 500, -500, 500, 150], dtype=np.float32)
        np.testing.assert_array_equal(robot.send_action(wild), np.clip(wild, lo, hi).astype(np.float32))
    finally:
        robot.disconnect()


def test_sim_robot_episode_ends_at_limit() -> None:
    robot = SimRobot(task="touch", cameras=(), max_episode_steps=4)
    robot.connect()
    try:
        obs = robot.reset(seed=0)
        steps = 0
        while not robot.episode_done:
            robot.send_action(obs[STATE])
            obs = robot.get_observation()
            steps += 1
        assert steps == 4 and set(obs) == {STATE}
    finally:
        robot.disconnect()


def test_targets_per_layout_pairs_seeds() -> None:
    """k consecutive seeds share a layout and start pose but name k different cubes; k=1 is unchanged."""
    plain, paired = (
        SO101Env(task="touch", cameras=()),
        SO101Env(task="touch", cameras=(), targets_per_layout=3),
    )
    try:
        targets = []
        for seed in (6, 7, 8):
            paired.reset(seed=seed)
            targets.append(paired.target)
            plain.reset(seed=2)  # seed // 3: the layout the group shares
            assert paired.layout.cubes == plain.layout.cubes
            np.testing.assert_array_equal(paired.joint_positions(), plain.joint_positions())
            assert paired.instruction == f"touch the {paired.target} cube"
        assert sorted(targets) == sorted(envs.so101.tasks.COLOURS)
        paired.reset(seed=9)
        plain.reset(seed=9)
        assert paired.layout.cubes != plain.layout.cubes  # the default env keeps one layout per seed
        plain.reset(seed=3)
        assert paired.layout.cubes == plain.layout.cubes
    finally:
        plain.close()
        paired.close()
    with pytest.raises(VLAError, match="targets_per_layout"):
        SO101Env(task="touch", cameras=(), targets_per_layout=4)
