"""The virtual SO-101: the real-robot code path (ServoArm -> ServoBus -> Feetech packets on a serial port)
driving emulated STS3215 servos whose joints are the MuJoCo SO-101's, with rendered cameras.

    robot = VirtualSO101(task="pick")        # or: vla-rollout robot=virtual_so101 ...
    obs = robot.reset(seed=0)                # the sim resets; the servos report the new pose
    robot.send_action(target)                # degrees / 0-100 -> ServoArm (limits, step clamp) -> packets
                                             # -> emulated servos -> one 30 Hz physics tick

One `send_action` is one physics tick (as `envs.sim_robot.SimRobot`), so the runner's clock sets the pace
and evaluations are reproducible; the servo goals the bus wrote are what the simulated motors track, and
the simulated joint angles are what the servos report. Faults on the emulated bus (`faults=`) exercise
the driver's retries under physics. Episodic like the sim (reset, task, info, episode_done), so the same
evaluation runs through either.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardware.arms import RESOLUTION, ServoArm
from hardware.calibration import HALF_TURN, MotorCalibration, save
from hardware.emulator import EmulatedBus, Faults
from hardware.specs import ARMS
from vla.robot import IMAGE_PREFIX, SO101_ROBOT_TYPE, STATE, Features

GRIPPER_HALF_RANGE = 700  # encoder steps either side of the middle for the gripper's 0-100


class _SimCamera:
    """One rendered camera of the simulation, presented as a hardware camera."""

    def __init__(self, robot: VirtualSO101, name: str, size: int) -> None:
        self.robot, self.name = robot, name
        self.height = self.width = size

    def connect(self) -> None:
        pass

    def read(self) -> np.ndarray:
        return self.robot._frames[IMAGE_PREFIX + self.name]

    def disconnect(self) -> None:
        pass


def virtual_calibration(low: np.ndarray, high: np.ndarray) -> dict[str, MotorCalibration]:
    """A calibration whose degrees are the sim's: no homing offset, each range centred on the half turn
    and wide enough for the sim's joint limits (degrees); the gripper's range maps onto 0-100."""
    spec = ARMS["so101"]
    out = {}
    for i, joint in enumerate(spec.joints):
        if joint.name == "gripper":
            half = GRIPPER_HALF_RANGE
        else:
            half = math.ceil(max(abs(low[i]), abs(high[i])) * (RESOLUTION - 1) / 360.0) + 1
        out[joint.name] = MotorCalibration(joint.id, 0, 0, HALF_TURN - half, HALF_TURN + half)
    return out


class VirtualSO101:
    robot_type = SO101_ROBOT_TYPE
    fps = 30

    def __init__(
        self,
        task: str = "pick",
        image_size: int = 96,
        cameras: Sequence[str] = ("front", "wrist"),
        max_episode_steps: int | None = None,
        seed: int | None = None,
        faults: dict[str, Any] | None = None,
        max_relative_target: float | None = None,
        command_timeout_ms: float | None = None,
        retries: int = 5,
    ) -> None:
        from envs.sim_robot import SimRobot

        self.sim = SimRobot(task, image_size, cameras, max_episode_steps, seed)
        self.faults = Faults(**(faults or {}))
        self.seed = seed
        self._cal_dir = tempfile.TemporaryDirectory(prefix="virtual-so101-")
        self._cameras = {name: _SimCamera(self, name, int(image_size)) for name in cameras}
        self._arm_options = {
            "max_relative_target": max_relative_target,
            "command_timeout_ms": command_timeout_ms,
            "retries": retries,
        }
        self.emulator: EmulatedBus | None = None
        self.arm: ServoArm | None = None
        self._frames: dict[str, np.ndarray] = {}
        self._calibration: dict[str, MotorCalibration] = {}

    # ------------------------------------------------------------------ schema

    @property
    def observation_features(self) -> Features:
        return self.sim.observation_features

    @property
    def action_features(self) -> Features:
        return self.sim.action_features

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        return {} if self.arm is None else self.arm.joint_limits

    @property
    def env(self) -> Any:
        """The simulation's env: privileged state for the scripted experts (never for a policy)."""
        return self.sim.env

    @property
    def port(self) -> str | None:
        return None if self.emulator is None else self.emulator.port

    # ------------------------------------------------------------------ life cycle

    @property
    def is_connected(self) -> bool:
        return self.arm is not None and self.arm.is_connected

    def connect(self) -> None:
        if self.is_connected:
            return
        from envs.so101.env import ACTION_HIGH, ACTION_LOW

        self.sim.connect()
        spec = ARMS["so101"]
        self.emulator = EmulatedBus(
            spec.protocol, {j.id: j.model for j in spec.joints}, faults=self.faults, dynamics="external"
        )
        port = self.emulator.start()
        self._calibration = virtual_calibration(ACTION_LOW, ACTION_HIGH)
        path = save(Path(self._cal_dir.name) / "so101.json", self._calibration)
        self.arm = ServoArm(spec, port, calibration=str(path), cameras=self._cameras, **self._arm_options)  # type: ignore[arg-type]
        self._sync_servos(self.sim.get_observation(), set_goals=True)
        self.arm.connect()

    def disconnect(self) -> None:
        if self.arm is not None:
            self.arm.disconnect()
            self.arm = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        self.sim.disconnect()

    # ------------------------------------------------------------------ episodes

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if not self.is_connected:
            self.connect()
        self._sync_servos(self.sim.reset(seed), set_goals=True)  # the arm "is" at the new pose
        return self.get_observation()

    @property
    def task(self) -> str:
        return self.sim.task

    @property
    def info(self) -> dict[str, Any]:
        return self.sim.info

    @property
    def episode_done(self) -> bool:
        return self.sim.episode_done

    # ------------------------------------------------------------------ control

    def get_observation(self) -> dict[str, np.ndarray]:
        assert self.arm is not None, "connect() first"
        return self.arm.get_observation()  # the state through the bus, the frames from the renderer

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """The arm writes the goals over the bus; the simulated motors track them for one tick."""
        assert self.arm is not None and self.emulator is not None, "connect() first"
        sent = self.arm.send_action(action)
        self.arm.bus.sync_read("Goal_Position")  # a reply comes only after the goals were applied
        goals = np.array([self.emulator.servo(j.id).goal_position() for j in self.arm.spec.joints])
        if self.emulator.servo(1).torque_enabled:
            target = self._to_units(goals)
        else:  # torque off: nothing drives the joints; hold them where they are
            target = np.asarray(self.sim.get_observation()[STATE], dtype=np.float64)
        self.sim.send_action(target.astype(np.float32))
        self._sync_servos(self.sim.get_observation(), set_goals=False)
        return sent

    def safe_stop(self) -> None:
        if self.arm is not None:
            self.arm.safe_stop()

    def resume(self) -> None:
        if self.arm is not None:
            self.arm.resume()

    # ------------------------------------------------------------------ internals

    def _to_units(self, raw: np.ndarray) -> np.ndarray:
        from hardware.calibration import to_units

        joints = ARMS["so101"].joints
        return np.array(
            [
                to_units(float(r), self._calibration[j.name], j.mode, RESOLUTION)
                for r, j in zip(raw, joints, strict=True)
            ]
        )

    def _sync_servos(self, obs: dict[str, np.ndarray], set_goals: bool) -> None:
        """The sim's joint angles into the servos' encoders (and, after a reset, their goals)."""
        from hardware.calibration import to_raw

        assert self.emulator is not None
        self._frames = {k: v for k, v in obs.items() if k.startswith(IMAGE_PREFIX)}
        for value, joint in zip(obs[STATE], ARMS["so101"].joints, strict=True):
            raw = to_raw(float(value), self._calibration[joint.name], joint.mode, RESOLUTION)
            servo = self.emulator.servo(joint.id)
            servo.set_present_position(raw)
            if set_goals:
                servo.set_register("Goal_Position", raw)
