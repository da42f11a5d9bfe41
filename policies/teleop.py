"""Teleoperation devices as policies, so teleop runs through the same runner (rate, safety filter, watchdog,
metrics) as a trained policy: each call returns a one-action chunk.

    LeaderArmTeleop(leader)     a leader arm (hardware.arms.ServoArm with a *_leader spec): its joints,
                                in the follower's units (degrees, gripper 0-100), are the action
    KeyboardTeleop(robot)       keys move the gripper of a simulated SO-101 in Cartesian steps, through
                                the scripted expert's inverse kinematics:
                                  w/s: +x/-x   a/d: +y/-y   r/f: up/down   q/e: yaw   space: open/close
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from envs.sim_robot import SimulatedSO101
from vla.errors import VLAError
from vla.robot import ACTION, SO101_ROBOT_TYPE, STATE, ArmModelRobot, Robot
from vla.session.keys import TerminalKeys


def _family(name: str) -> str:
    """so100/so101 (and their leaders) are one family; koch another."""
    base = name.removesuffix("_leader")
    return "so10x" if base in ("so100", "so101") else base


class LeaderArmTeleop:
    chunk_size = 1

    def __init__(self, robot: Robot | None = None, leader: Any = None) -> None:
        if leader is None:
            raise VLAError(
                "teleop.leader is required (a leader arm: teleop=so101_leader teleop.leader.port=...)"
            )
        self.leader = leader
        if robot is not None:
            self.check_follower(robot)

    def check_follower(self, robot: Robot) -> None:
        """The leader must be of the follower's family, with the same joints."""
        ours = list(self.leader.action_features[ACTION]["names"])
        theirs = list(robot.action_features[ACTION]["names"])
        if isinstance(robot, ArmModelRobot):
            follower: str | None = robot.arm_model
        else:  # LeRobot's SO-100/SO-101 followers share one robot_type: their joints tell them apart
            follower = "so101" if theirs == ours and robot.robot_type == SO101_ROBOT_TYPE else None
        leader = self.leader.spec.name
        if ours != theirs or (follower is not None and _family(follower) != _family(leader)):
            raise VLAError(
                f"teleop leader {leader} ({', '.join(ours)}) cannot drive the follower "
                f"{follower or robot.robot_type} ({', '.join(theirs)}); use a leader of its kind"
            )

    def connect(self) -> None:
        if not self.leader.is_connected:
            self.leader.connect()

    def reset(self, task: str | None = None) -> None:
        pass

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.leader.get_observation()[STATE][None, :].astype(np.float32)  # [1, A]

    def close(self) -> None:
        self.leader.disconnect()

    @property
    def bus_stats(self) -> dict[str, Any]:
        return dict(self.leader.bus.stats.__dict__)


MOVES = {"w": (1, 0, 0), "s": (-1, 0, 0), "a": (0, 1, 0), "d": (0, -1, 0), "r": (0, 0, 1), "f": (0, 0, -1)}


class KeyboardTeleop:
    """Cartesian key steps for a simulated SO-101 (needs the sim's model for the IK)."""

    chunk_size = 1

    def __init__(
        self,
        robot: Robot,
        step_m: float = 0.01,
        yaw_step_deg: float = 10.0,
        keys: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        if not isinstance(robot, SimulatedSO101):
            raise VLAError(
                f"teleop=keyboard drives a simulated SO-101 (robot=sim or virtual_so101); got {type(robot).__name__}"
            )
        self.robot: SimulatedSO101 = robot
        self.step_m, self.yaw_step = float(step_m), math.radians(yaw_step_deg)
        self.keys = keys or TerminalKeys()
        self._ik: Any = None
        self._pos: np.ndarray = np.zeros(3)
        self._yaw, self._grip = 0.0, 30.0
        self._q: np.ndarray = np.zeros(5)

    def connect(self) -> None:
        pass

    def reset(self, task: str | None = None) -> None:
        self._ik = None  # re-anchored on the next observation

    def _anchor(self, state: np.ndarray) -> None:
        from envs.so101.kinematics import ArmIK

        self._ik = ArmIK(self.robot.env.model)
        self._q = np.radians(np.asarray(state[:5], dtype=np.float64))
        pos, rot = self._ik.forward(self._q)
        self._pos, self._yaw, self._grip = pos, math.atan2(rot[1, 0], rot[0, 0]), float(state[5])

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self._ik is None:
            self._anchor(observation[STATE])
        for key in self.keys():
            if key in MOVES:
                self._pos = self._pos + self.step_m * np.array(MOVES[key], dtype=np.float64)
            elif key in ("q", "e"):
                self._yaw += self.yaw_step if key == "q" else -self.yaw_step
            elif key == " ":
                self._grip = 0.0 if self._grip > 50 else 100.0
        self._q = self._ik.solve(self._q, self._pos, self._yaw)
        return np.append(np.degrees(self._q), self._grip).astype(np.float32)[None, :]  # [1, 6]

    def close(self) -> None:
        close = getattr(self.keys, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
