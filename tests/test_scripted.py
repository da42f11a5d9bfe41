"""The scripted IK expert on the simulated SO-101: success rates and demonstration quality."""

from __future__ import annotations

import numpy as np
import pytest

from envs.sim_robot import SimRobot
from envs.so101.kinematics import ArmIK
from envs.so101.model import CUBE_HALF
from policies.scripted import ScriptedExpert
from tests.fakes import run_episode
from vla.errors import VLAError
from vla.policy import Policy
from vla.robot import STATE


@pytest.mark.parametrize("task", ["touch", "pick", "bin"])
def test_expert_succeeds_on_seeded_episodes(task: str) -> None:
    robot = SimRobot(task=task, cameras=())
    robot.connect()
    try:
        policy = ScriptedExpert(robot)
        results = [run_episode(robot, policy, seed) for seed in range(20)]
    finally:
        robot.disconnect()
    wins = sum(r.success for r in results)
    assert wins >= 19, f"{task}: {wins}/20, failed seeds {[r.seed for r in results if not r.success]}"
    # Success ends the episode early (after a short hold), well inside the step limit.
    assert max(r.steps for r in results if r.success) < robot.env.max_episode_steps


def test_expert_is_a_policy_with_unit_chunks_and_smooth_motion() -> None:
    robot = SimRobot(task="bin", cameras=())
    robot.connect()
    try:
        policy = ScriptedExpert(robot)
        assert isinstance(policy, Policy)
        obs = robot.reset(seed=5)
        policy.reset(robot.task)
        actions, states, cube_z = [], [], []
        while not robot.episode_done:
            chunk = policy.select_chunk(obs)
            assert chunk.shape == (1, 6) and chunk.dtype == np.float32
            actions.append(robot.send_action(chunk[0]))
            obs = robot.get_observation()
            states.append(obs[STATE])
            cube_z.append(robot.env.cube_pos(robot.env.target)[2])
        assert robot.info["is_success"]
    finally:
        robot.disconnect()
    actions_a = np.array(actions)  # (T, 6)
    # No teleporting: arm targets change by at most a few degrees per 30 Hz tick.
    assert np.abs(np.diff(actions_a[:, :5], axis=0)).max() <= 4.01
    # The state follows the targets (servo lag only).
    assert np.abs(np.array(states)[:, :5] - actions_a[:, :5]).max() < 10.0
    # The cube was carried above the bin's wall and ended resting on the table inside it.
    assert max(cube_z) > 0.06 and cube_z[-1] < 2 * CUBE_HALF


def test_expert_is_deterministic_per_seed() -> None:
    robot = SimRobot(task="pick", cameras=())
    robot.connect()
    try:
        policy = ScriptedExpert(robot)
        runs = []
        for _ in range(2):
            obs = robot.reset(seed=3)
            policy.reset(robot.task)
            trace = []
            for _ in range(30):
                trace.append(robot.send_action(policy.select_chunk(obs)[0]))
                obs = robot.get_observation()
            runs.append(np.array(trace))
    finally:
        robot.disconnect()
    np.testing.assert_array_equal(runs[0], runs[1])


def test_ik_reaches_top_down_grasps() -> None:
    robot = SimRobot(task="pick", cameras=())
    ik = ArmIK(robot.env.model)
    q0 = robot.env.joint_positions()[:5]
    for x, y, yaw in [(0.15, 0.0, 0.0), (0.2, -0.12, 0.5), (0.12, 0.18, -0.6)]:
        target = np.array([x, y, CUBE_HALF])
        q = ik.solve(q0, target, yaw, iters=200)
        pos, rot = ik.forward(q)
        np.testing.assert_allclose(pos, target, atol=2e-3)
        assert rot[2, 2] > 0.99  # jaws point down
    robot.disconnect()


def test_expert_needs_a_simulated_robot() -> None:
    with pytest.raises(VLAError, match="policy=scripted needs a simulated robot"):
        ScriptedExpert(object())
