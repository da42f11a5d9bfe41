"""The arms we drive, as data: which servo sits at which id, and in which units each joint is reported.

Names, ids, models and units are LeRobot's for the same arms, so the features (and datasets) match:
SO-100 / SO-101 follower and leader (six Feetech STS3215, ids 1–6) and the Koch v1.1 follower and leader
(Dynamixel: XL430-W250 at ids 1–2 on the follower, XL330-M288 elsewhere; the leader is all XL330-M077).
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.calibration import DEGREES, RANGE_0_100
from hardware.protocol import Motor
from vla.robot import SO101_JOINTS, SO101_ROBOT_TYPE


@dataclass(frozen=True)
class JointSpec:
    name: str
    id: int
    model: str  # a key of hardware.tables (e.g. "sts3215", "xl430-w250")
    mode: str = DEGREES  # DEGREES | RANGE_0_100
    full_turn: bool = False  # no mechanical stop: its calibrated range is the whole encoder


@dataclass(frozen=True)
class ArmSpec:
    name: str  # robot=<name>
    robot_type: str  # what LeRobot writes into a dataset's info.json for this arm
    protocol: str  # feetech | dynamixel
    joints: tuple[JointSpec, ...]
    leader: bool = False  # a leader is moved by hand: torque stays off
    baudrate: int = 1_000_000

    @property
    def motors(self) -> dict[str, Motor]:
        """Joint name -> its servo (what a ServoBus or an emulator is built from)."""
        return {j.name: Motor(j.id, j.model) for j in self.joints}

    @property
    def ids(self) -> dict[str, int]:
        return {j.name: j.id for j in self.joints}

    @property
    def feature_names(self) -> list[str]:
        return [f"{j.name}.pos" for j in self.joints]


def _so(name: str, robot_type: str, leader: bool) -> ArmSpec:
    joints = tuple(
        JointSpec(
            joint,
            i + 1,
            "sts3215",
            RANGE_0_100 if joint == "gripper" else DEGREES,
            full_turn=joint == "wrist_roll",
        )
        for i, joint in enumerate(SO101_JOINTS)
    )
    return ArmSpec(name, robot_type, "feetech", joints, leader)


def _koch(name: str, robot_type: str, leader: bool) -> ArmSpec:
    models = ["xl330-m077"] * 6 if leader else ["xl430-w250"] * 2 + ["xl330-m288"] * 4
    joints = tuple(
        JointSpec(joint, i + 1, models[i], RANGE_0_100 if joint == "gripper" else DEGREES)
        for i, joint in enumerate(SO101_JOINTS)
    )
    return ArmSpec(name, robot_type, "dynamixel", joints, leader)


ARMS: dict[str, ArmSpec] = {
    spec.name: spec
    for spec in (
        _so("so101", SO101_ROBOT_TYPE, leader=False),
        _so("so100", SO101_ROBOT_TYPE, leader=False),
        _so("so101_leader", "so_leader", leader=True),
        _so("so100_leader", "so_leader", leader=True),
        _koch("koch", "koch_follower", leader=False),
        _koch("koch_leader", "koch_leader", leader=True),
    )
}
