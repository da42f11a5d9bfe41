"""Scripted experts for the simulated SO-101: privileged state + inverse kinematics -> joint targets.

The expert keeps a commanded gripper pose (grasp-point position and yaw, jaws pointing down) that
moves towards the current phase's waypoint at a bounded speed; damped-least-squares IK on a private
MjData turns it into joint targets each tick. Waypoints are recomputed from the live cube and bin
poses, so the behaviour is closed-loop: a knocked or dropped cube is approached again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs.metaworld import METAWORLD_ROBOT_TYPE
from envs.sim_robot import SimulatedSO101
from envs.so101.env import ACTION_HIGH, ACTION_LOW, SO101Env, to_units
from envs.so101.kinematics import ArmIK
from envs.so101.model import BIN_HEIGHT, CUBE_HALF
from envs.so101.tasks import COLOURS
from vla.errors import VLAError
from vla.policy import Policy
from vla.robot import Robot

DT = 1.0 / 30.0
GRIP_OPEN = 55.0  # env units; jaw ~0.88 rad: a 4.5 cm gap, enough for a 2.7 cm cube
GRIP_CLOSED = 0.0
MAX_JOINT_STEP = math.radians(4.0)  # per 30 Hz tick


def _wrap(a: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (a + math.pi) % (2 * math.pi) - math.pi


def _yaw_of(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class ScriptedExpert:
    """Closed-loop IK expert for `touch`, `pick` and `bin` on a `SimRobot` (chunks of shape (1, 6)).

    Phases: approach above the target cube, descend, close the jaws, lift; for `bin` then carry over
    the bin, lower, open and back off; for `touch` descend with closed jaws until they touch the cube.
    """

    def __init__(
        self,
        robot: Robot,
        speed: float = 0.22,
        slow_speed: float = 0.12,
        hover: float = 0.07,
        lift_height: float = 0.13,
    ) -> None:
        # It plans from the simulator's privileged state: a SimRobot, or a robot wrapping one that exposes
        # its `env` (the virtual SO-101).
        if not isinstance(robot, SimulatedSO101):
            raise VLAError(f"policy=scripted needs a simulated robot (robot=sim); got {type(robot).__name__}")
        self.robot: SimulatedSO101 = robot
        self.speed = speed  # m/s in free space
        self.slow_speed = slow_speed  # m/s near the cube and the bin
        self.hover = hover  # approach height of the grasp point above the cube centre
        self.lift_height = lift_height  # grasp-point height when carrying
        self._layout: object | None = None
        self._ik: ArmIK | None = None

    @property
    def env(self) -> SO101Env:
        return self.robot.env

    @property
    def ik(self) -> ArmIK:
        assert self._ik is not None, "select_chunk() builds the IK on the first observation"
        return self._ik

    def reset(self, task: str | None = None) -> None:
        self._layout = None  # re-initialised from the scene on the next observation

    def _start(self) -> None:
        env = self.env
        if self._ik is None or self._ik.model is not env.model:
            self._ik = ArmIK(env.model)
        self._layout = env.layout
        self._q = env.joint_positions()[:5]
        self._pos, rot = self._ik.forward(self._q)
        self._yaw = math.atan2(rot[1, 0], rot[0, 0])
        self._grip = float(to_units(env.joint_positions())[5])
        self._phase = "approach"
        self._timer = 0
        self._grasp_yaw: float | None = None

    # -- waypoints -------------------------------------------------------------------------------------
    def _choose_grasp_yaw(self, cube: np.ndarray, cube_yaw: float) -> float:
        """Of the four face-aligned yaws, the one closest to the current yaw whose swinging jaw
        (the gripper's +x side) does not sweep into a neighbouring cube or the bin."""
        env = self.env
        others = [env.cube_pos(c)[:2] for c in COLOURS if c != env.target] + [env.bin_pos()[:2]]
        radial = math.atan2(cube[1], cube[0])
        best, best_cost = self._yaw, math.inf
        for k in range(4):
            yaw = _wrap(cube_yaw + k * math.pi / 2)
            # Roll needed relative to the arm's radial plane; the joint allows +-160 deg.
            cost = abs(_wrap(yaw - radial)) + 0.3 * abs(_wrap(yaw - self._yaw))
            axis = np.array([math.cos(yaw), math.sin(yaw)])
            for o in others:
                d = o - cube[:2]
                along, across = float(d @ axis), abs(float(d[0] * axis[1] - d[1] * axis[0]))
                if 0.0 < along < 0.10 and across < 0.045:
                    cost += 3.0
            if cost < best_cost:
                best, best_cost = yaw, cost
        return best

    def _plan(self) -> tuple[np.ndarray, float, float, float]:
        """(waypoint (3,), yaw, gripper command, speed) for this tick; advances the phase."""
        env = self.env
        task = env.task_name
        cube = env.cube_pos(env.target)
        cube_yaw = _yaw_of(env.cube_quat(env.target))
        site, _ = self.ik.forward(env.joint_positions()[:5])  # where the grasp point really is
        if self._grasp_yaw is None or self._phase == "approach":
            self._grasp_yaw = self._choose_grasp_yaw(cube, cube_yaw)
        yaw = self._grasp_yaw
        grip = GRIP_CLOSED if task == "touch" else GRIP_OPEN
        self._timer += 1
        phase = self._phase

        # Touch lands the fixed jaw (1.75 cm to the gripper's -x of the grasp point) on the cube's top.
        offset = np.zeros(3)
        if task == "touch":
            offset[:2] = 0.0175 * np.array([math.cos(yaw), math.sin(yaw)])
        if phase == "approach":
            goal = cube + offset + [0.0, 0.0, self.hover]
            if np.linalg.norm(self._pos - goal) < 0.01 and np.linalg.norm(site - goal) < 0.02:
                self._phase, self._timer = "descend", 0
            return goal, yaw, grip, self.speed
        if phase == "descend":
            # Touch: bring the jaw tips (1.5 cm below the grasp point) just into the cube's top.
            dz = CUBE_HALF + 0.01 if task == "touch" else 0.001
            goal = cube + offset + [0.0, 0.0, dz]
            if np.linalg.norm(goal[:2] - site[:2]) > 0.02:  # the cube moved away: go round again
                self._phase = "approach"
            elif task != "touch" and np.linalg.norm(site - goal) < 0.006:
                self._phase, self._timer = "close", 0
            return goal, yaw, grip, self.slow_speed
        if phase == "close":
            if self._timer >= 10:
                self._phase, self._timer = "lift", 0
            return self._pos.copy(), yaw, GRIP_CLOSED, self.slow_speed
        if phase in ("lift", "carry", "lower"):
            held = env.judge.held(env.data, env.target) or np.linalg.norm(cube - site) < 0.02
            if not held and self._timer > 5:
                self._phase, self._timer = "reopen", 0
                return self._pos.copy(), yaw, GRIP_OPEN, self.slow_speed
            if phase == "lift":
                goal = np.array([self._pos[0], self._pos[1], self.lift_height])
                if task == "bin" and site[2] > self.lift_height - 0.02:
                    self._phase, self._timer = "carry", 0
                return goal, yaw, GRIP_CLOSED, self.slow_speed
            bin_xy = env.bin_pos()[:2]
            if phase == "carry":
                goal = np.array([*bin_xy, self.lift_height])
                if np.linalg.norm(site[:2] - bin_xy) < 0.012:
                    self._phase, self._timer = "lower", 0
                return goal, yaw, GRIP_CLOSED, self.speed
            goal = np.array([*bin_xy, BIN_HEIGHT + CUBE_HALF + 0.025])
            if np.linalg.norm(site - goal) < 0.008:
                self._phase, self._timer = "release", 0
            return goal, yaw, GRIP_CLOSED, self.slow_speed
        if phase == "reopen":  # a failed grasp: open, rise, try again
            if self._timer >= 8:
                self._phase, self._timer = "approach", 0
            return self._pos + np.array([0.0, 0.0, 0.01]), yaw, GRIP_OPEN, self.slow_speed
        if phase == "release":
            if self._timer >= 10:
                self._phase, self._timer = "retreat", 0
            return self._pos.copy(), yaw, GRIP_OPEN, self.slow_speed
        # retreat: back off upwards, jaws open, and wait there.
        goal = np.array([self._pos[0], self._pos[1], self.lift_height + 0.02])
        return goal, yaw, GRIP_OPEN, self.slow_speed

    # -- Policy API ------------------------------------------------------------------------------------
    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One action: joint targets (1, 6) in env units."""
        if self._layout is not self.env.layout:
            self._start()
        goal, yaw, grip, speed = self._plan()
        # Move the commanded pose towards the waypoint: proportional, capped at `speed` (smooth starts
        # and stops, no teleporting).
        err = goal - self._pos
        dist = float(np.linalg.norm(err))
        step = min(speed * DT, 0.35 * dist)
        if dist > 1e-9:
            self._pos = self._pos + err * (step / dist)
        dyaw = _wrap(yaw - self._yaw)
        self._yaw = _wrap(self._yaw + float(np.clip(0.35 * dyaw, -2.5 * DT, 2.5 * DT)))
        # Gripper: at most ~10 units per tick, so the jaw visibly closes rather than snapping.
        self._grip += float(np.clip(grip - self._grip, -12.0, 12.0))
        # Rate-limit the joints (~120 deg/s) so that no target jumps, e.g. when levelling the start pose.
        q = self.ik.solve(self._q, self._pos, self._yaw)
        self._q = self._q + np.clip(q - self._q, -MAX_JOINT_STEP, MAX_JOINT_STEP)
        units = np.append(np.degrees(self._q), self._grip).astype(np.float32)  # (6,) env units
        return np.clip(units, ACTION_LOW, ACTION_HIGH)[None, :].astype(np.float32)  # (1, 6)


def scripted_policy(robot: Robot, **options: Any) -> Policy:
    """`policy=scripted`: the expert for this robot: on Meta-World the benchmark's bundled expert for its
    task, on the SO-101 (simulated or virtual) the inverse-kinematics `ScriptedExpert`."""
    if robot.robot_type == METAWORLD_ROBOT_TYPE:
        if options:
            raise VLAError(f"policy=scripted on Meta-World takes no options; got {sorted(options)}")
        from policies.metaworld_expert import MetaWorldExpert

        return MetaWorldExpert(robot)
    return ScriptedExpert(robot, **options)
