"""LeRobot's own SO101Follower (their FeetechMotorsBus on the vendor SDK) on our emulated bus, driven
through our Robot protocol by the runner."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hardware.emulator import EmulatedBus
from hardware.lerobot_robot import LeRobotRobot
from hardware.specs import ARMS
from vla.errors import VLAError


def _their_calibration(root: Path, robot_id: str) -> None:
    from lerobot.motors.motors_bus import MotorCalibration
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    theirs = SO101Follower(SO101FollowerConfig(port="/dev/null", id=robot_id, calibration_dir=root))
    theirs.calibration = {
        name: MotorCalibration(i, 0, 0, 1047, 3047) for name, i in ARMS["so101"].ids.items()
    }
    theirs._save_calibration()


def test_lerobot_so101_follower_on_the_emulator(tmp_path: Path) -> None:
    spec = ARMS["so101"]
    _their_calibration(tmp_path, "arm")
    with EmulatedBus("feetech", {j.id: j.model for j in spec.joints}, time_constant_s=0.02) as emu:
        robot = LeRobotRobot(type="so101_follower", port=emu.port, id="arm", calibration_dir=str(tmp_path))
        assert robot.robot_type == "so_follower"
        assert robot.observation_features["observation.state"]["names"] == spec.feature_names
        robot.connect()  # their handshake, their calibration check; the file is written to the servos
        try:
            assert emu.servo(3).register("Min_Position_Limit") == 1047
            state = robot.get_observation()["observation.state"]
            assert state.shape == (6,) and np.isfinite(state).all()
            target = state.copy()
            target[0] += 5.0
            sent = robot.send_action(target)
            assert sent[0] == pytest.approx(target[0], abs=0.1)
            time.sleep(0.3)
            now = robot.get_observation()["observation.state"]
            assert now[0] == pytest.approx(target[0], abs=0.2)
        finally:
            robot.disconnect()
        assert not robot.is_connected


def test_unknown_lerobot_type_is_a_one_line_error() -> None:
    with pytest.raises(VLAError, match=r"robot\.type='so999_follower' is not a LeRobot robot"):
        LeRobotRobot(type="so999_follower", port="/dev/null")
    with pytest.raises(VLAError, match=r"robot\.type is required"):
        LeRobotRobot()
