"""Serial arms against the emulated servos: calibrate, read in degrees, write goals that the emulated
servos follow, limits, the step clamp, the host-side deadline, torque off (in-process: the arm's logic),
and an unplugged cable (over a real pseudo-terminal: the serial path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hardware.arms import ServoArm
from hardware.calibrate import calibrate_arm, homing_offset
from hardware.calibration import MotorCalibration, load, save
from hardware.errors import Disconnected
from hardware.specs import ARMS
from tests.hardware.helpers import emulated, write_calibration
from vla.errors import VLAError


def _eventually(check: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Over a pty the emulator applies a broadcast write a moment after the host has sent it (there is
    no reply)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.mark.parametrize("robot", ["so101", "koch"])
def test_calibrate_then_drive(tmp_path: Path, robot: str) -> None:
    spec = ARMS[robot]
    with emulated(robot, time_constant_s=0.02) as (emu, port):
        arm = ServoArm(robot, port, calibration=str(tmp_path / "cal.json"), command_timeout_ms=None)
        arm.connect(calibrate=False)
        try:
            middle = {j.id: 1500.0 + 100 * j.id for j in spec.joints}  # where the user holds the arm
            for i, pos in middle.items():
                emu.servo(i).set_present_position(pos)
            moved = threading.Event()

            def hand() -> None:  # the user's hand: every joint -300 then +400 steps about the middle
                deadline = time.monotonic() + 5
                while all(emu.servo(i).register("Homing_Offset") == 0 for i in middle):
                    assert time.monotonic() < deadline  # the middle pose was read and the offsets written
                    time.sleep(0.005)
                time.sleep(0.05)
                for delta in (-300, 400):
                    for i, pos in middle.items():
                        emu.servo(i).set_present_position(pos + delta)
                    time.sleep(0.1)
                moved.set()

            prompts: list[str] = []

            def prompt(text: str) -> None:
                prompts.append(text)
                threading.Thread(target=hand, daemon=True).start()

            calibration = calibrate_arm(arm, prompt=prompt, range_done=moved.is_set)
        finally:
            arm.disconnect()
        assert len(prompts) == 1 and "middle" in prompts[0]
        for joint in spec.joints:
            cal = calibration[joint.name]
            assert cal.homing_offset == homing_offset(spec.protocol, int(middle[joint.id]))
            if joint.full_turn:
                assert (cal.range_min, cal.range_max) == (0, 4095)
            else:  # the middle reads 2047 after the offset; the hand went 300 below and 400 above
                assert (cal.range_min, cal.range_max) == (2047 - 300, 2047 + 400)
        assert _eventually(lambda: not emu.servo(1).torque_enabled)
        save(tmp_path / "cal.json", calibration)
        for i, pos in middle.items():  # the user lets go with the arm in the middle
            emu.servo(i).set_present_position(pos)

        arm = ServoArm(robot, port, calibration=str(tmp_path / "cal.json"), max_relative_target=None)
        arm.connect()
        try:
            assert _eventually(lambda: all(emu.servo(i).torque_enabled for i in emu.ids))
            state = arm.get_observation()["observation.state"]
            assert state.shape == (6,) and state.dtype == np.float32
            target = state.copy()
            target[0] += 10.0  # degrees
            target[5] = 50.0  # gripper half open
            sent = arm.send_action(target)
            np.testing.assert_allclose(sent, target, atol=1e-4)
            time.sleep(0.3)  # 15 time constants
            now = arm.get_observation()["observation.state"]
            np.testing.assert_allclose(now, target, atol=0.2)  # one encoder step is 0.09 degrees
            high = arm.joint_limits["elbow_flex.pos"][1]
            far = now.copy()
            far[2] = high + 50.0
            assert arm.send_action(far)[2] == pytest.approx(high)  # clipped to the calibrated range
        finally:
            arm.disconnect()
        assert _eventually(lambda: not any(emu.servo(i).torque_enabled for i in emu.ids))  # torque off


def test_step_clamp_and_deadline_hold(tmp_path: Path) -> None:
    cal = write_calibration(tmp_path / "cal.json", "so101")
    with emulated("so101", time_constant_s=1.0) as (emu, port):  # slow servos: far from the goal a while
        arm = ServoArm("so101", port, calibration=str(cal), max_relative_target=5.0, command_timeout_ms=100)
        arm.connect()
        try:
            start = arm.get_observation()["observation.state"]
            target = start.copy()
            target[1] += 40.0
            sent = arm.send_action(target)
            assert sent[1] == pytest.approx(start[1] + 5.0, abs=0.1) and arm.clipped == 1
            time.sleep(0.4)  # no command for 4 deadlines: the monitor holds where the arm is (once)
            assert arm.holds == 1
            goal = emu.servo(2).goal_position()
            assert abs(goal - emu.servo(2).present_position()) < 60  # goal := present at the hold
            assert goal < 2047 + 5.0 * 4095 / 360 - 1  # short of the commanded step
        finally:
            arm.disconnect()


def test_unplugged_cable_is_a_clear_error_fast(tmp_path: Path) -> None:
    cal = write_calibration(tmp_path / "cal.json", "so101")
    with emulated("so101", pty=True) as (emu, port):
        arm = ServoArm("so101", port, calibration=str(cal), command_timeout_ms=None)
        arm.connect()
        emu.unplug()
        started = time.monotonic()
        with pytest.raises(Disconnected):
            arm.get_observation()
        assert time.monotonic() - started < 0.1
        assert not arm.is_connected
        arm.disconnect()  # best effort, no hang, no exception


def test_calibration_problems_are_one_line_errors(tmp_path: Path) -> None:
    with emulated("so101") as (_, port):
        arm = ServoArm("so101", port, calibration=str(tmp_path / "none.json"))
        with pytest.raises(VLAError, match="run vla-calibrate first"):
            arm.connect()
        assert not arm.is_connected  # the port was closed again
        with pytest.raises(VLAError, match="robot='so102'"):
            ServoArm("so102", port)
        with pytest.raises(VLAError, match="max_relative_target=0"):
            ServoArm("so101", port, max_relative_target=0)


def test_a_lerobot_calibration_file_is_accepted(tmp_path: Path) -> None:
    """A file written by LeRobot's own code (SO101Follower._save_calibration) loads and drives our arm."""
    from lerobot.motors.motors_bus import MotorCalibration as LeRobotCal
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    theirs = SO101Follower(SO101FollowerConfig(port="/dev/null", id="arm", calibration_dir=tmp_path))
    theirs.calibration = {
        name: LeRobotCal(i + 1, 0, -100 + i, 1000 + i, 3000 - i) for i, name in enumerate(ARMS["so101"].ids)
    }
    theirs._save_calibration()
    path = tmp_path / "arm.json"
    ours = load(path, ARMS["so101"].ids)
    assert ours["elbow_flex"] == MotorCalibration(3, 0, -98, 1002, 2998)
    with emulated("so101") as (emu, port):
        arm = ServoArm("so101", port, calibration=str(path), command_timeout_ms=None)
        arm.connect()
        try:
            assert emu.servo(3).register("Homing_Offset") == -98
            assert emu.servo(3).register("Max_Position_Limit") == 2998
            assert arm.joint_limits["gripper.pos"] == (0.0, 100.0)
        finally:
            arm.disconnect()
