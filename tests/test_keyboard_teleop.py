"""Keyboard teleoperation of the simulated SO-101: key steps move the gripper in Cartesian space (IK)."""

from __future__ import annotations

import numpy as np

from envs.sim_robot import SimRobot
from policies.teleop import KeyboardTeleop


def test_keys_move_the_gripper_up_and_forward() -> None:
    presses = iter([["r"] * 3, ["w"] * 2, [" "], *([[]] * 40)])
    robot = SimRobot(task="touch", image_size=32)
    robot.connect()
    try:
        obs = robot.reset(seed=0)
        teleop = KeyboardTeleop(robot, step_m=0.01, keys=lambda: next(presses, []))
        teleop.reset(robot.task)
        site = robot.env.model.site("grasp").id
        start = robot.env.data.site_xpos[site].copy()
        for _ in range(40):
            action = teleop.select_chunk(obs)[0]
            robot.send_action(action)
            obs = robot.get_observation()
        end = robot.env.data.site_xpos[site].copy()
    finally:
        robot.disconnect()
    moved = end - start
    assert moved[2] > 0.02 and moved[0] > 0.01  # 3 cm up, 2 cm along +x asked; the arm follows
    assert abs(moved[1]) < 0.01
    assert action[5] in (0.0, 100.0)  # space toggled the gripper fully
    np.testing.assert_array_less(np.abs(action[:5]), 180.0)
