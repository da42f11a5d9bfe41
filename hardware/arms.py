"""Serial arms behind the Robot protocol: SO-100/SO-101 (Feetech) and Koch (Dynamixel), follower or leader.

    arm = ServoArm("so101", port="/dev/ttyACM0", calibration="~/.cache/vla/calibration/so_follower/arm.json")
    arm.connect()                        # checks every servo, writes the calibration, torque on
    obs = arm.get_observation()          # {"observation.state": degrees (gripper 0-100), cameras...}
    sent = arm.send_action(target)       # clipped to the calibrated limits and a step per command
    arm.disconnect()                     # torque off

Safety, on the arm's side of the runner's own filter: software joint limits from the calibration, a
maximum change of the target per command relative to where the joint is, torque off on disconnect, on
an exception inside a bus call, at interpreter exit and on SIGTERM; the Dynamixel bus watchdog where the
servo has one; and a host-side deadline: when no command came for `command_timeout_ms`, a monitor thread
holds the joints where they are (goal := present) until the next command.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
import time
import weakref
from typing import Any, ClassVar

import numpy as np

from hardware.bus import ServoBus
from hardware.calibration import (
    MotorCalibration,
    default_path,
    limits,
    load,
    to_raw,
    to_units,
)
from hardware.errors import BusError
from hardware.specs import ARMS, ArmSpec
from hardware.transport import Transport
from vla.errors import VLAError
from vla.robot import ACTION, IMAGE_PREFIX, STATE, Features, camera_feature, vector_feature

RESOLUTION = 4096  # STS3215, XL330 and XL430 alike
POSITION_MODE = {"feetech": 0, "dynamixel": 3}  # Operating_Mode value for position control
DYNAMIXEL_WATCHDOG_UNIT_MS = 20


def arm_spec(name: str | ArmSpec) -> ArmSpec:
    if isinstance(name, ArmSpec):
        return name
    if name not in ARMS:
        raise VLAError(f"robot={name!r} is not an arm we know; choose one of {', '.join(ARMS)}")
    return ARMS[name]


class _Shutdown:
    """Torque off for every connected arm at interpreter exit and on SIGTERM (Python's default SIGTERM
    skips `finally` blocks; this turns it into SystemExit so they run, when nobody else handles it)."""

    arms: ClassVar[weakref.WeakSet[ServoArm]] = weakref.WeakSet()
    installed: ClassVar[bool] = False

    @classmethod
    def register(cls, arm: ServoArm) -> None:
        cls.arms.add(arm)
        if cls.installed:
            return
        cls.installed = True
        atexit.register(cls.all_off)
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, cls._on_sigterm)

    @classmethod
    def all_off(cls) -> None:
        for arm in list(cls.arms):
            with contextlib.suppress(Exception):
                arm.disconnect()

    @staticmethod
    def _on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)


class ServoArm:
    """One arm on one serial port (`port`: its path, or any `hardware.transport.Transport`).
    `calibration`: a JSON path (ours or LeRobot's), or None for the default place of `robot_id` (see
    hardware.calibration.default_path). `cameras`: name -> an object with `connect()`, `read()`
    (H x W x 3 uint8), `disconnect()`, `height`, `width`."""

    def __init__(
        self,
        robot: str | ArmSpec,
        port: str | Transport,
        calibration: str | None = None,
        robot_id: str = "default",
        cameras: dict[str, Any] | None = None,
        fps: int = 30,
        max_relative_target: float | None = 20.0,
        command_timeout_ms: float | None = 500.0,
        torque_limit: int | None = None,
        retries: int = 5,
        baudrate: int | None = None,
    ) -> None:
        self.spec = arm_spec(robot)
        self.robot_type = self.spec.robot_type
        self.arm_model = self.spec.name  # vla.robot.ArmModelRobot
        self.fps = int(fps)
        self.calibration_path = calibration or str(
            default_path(self.spec.robot_type, robot_id, self.spec.leader)
        )
        self.cameras = dict(cameras or {})
        if max_relative_target is not None and not max_relative_target > 0:
            raise VLAError(f"max_relative_target={max_relative_target}: must be > 0 (or null for none)")
        self.max_relative_target = max_relative_target
        self.command_timeout_s = None if command_timeout_ms is None else command_timeout_ms / 1000.0
        self.torque_limit = torque_limit
        self.bus = ServoBus(
            port,
            self.spec.protocol,
            self.spec.motors,
            baudrate=baudrate or self.spec.baudrate,
            retries=retries,
        )
        self.port = self.bus.port  # its name, for messages
        self.calibration: dict[str, MotorCalibration] = {}
        self.joint_limits: dict[str, tuple[float, float]] = {}
        self.holds = 0  # host-side deadline holds
        self.clipped = 0  # commands changed by the limits or the step clamp
        self._torque = False
        self._last_command = time.monotonic()
        self._lock = threading.Lock()  # the monitor thread and the caller share the bus
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ features

    @property
    def observation_features(self) -> Features:
        features: Features = {STATE: vector_feature(self.spec.feature_names)}
        for name, cam in self.cameras.items():
            features[IMAGE_PREFIX + name] = camera_feature(int(cam.height), int(cam.width))
        return features

    @property
    def action_features(self) -> Features:
        return {ACTION: vector_feature(self.spec.feature_names)}

    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected

    # ------------------------------------------------------------------ life cycle

    def connect(self, calibrate: bool = True) -> None:
        """Open the bus (every servo must answer with its model), write the calibration, configure
        position control and, on a follower, turn torque on. `calibrate=False` (vla-calibrate) skips
        the calibration file and leaves torque off."""
        self.bus.connect()
        try:
            _Shutdown.register(self)
            self._set_torque(False)
            if calibrate:
                self.calibration = load(self.calibration_path, self.spec.ids)
                self.write_calibration(self.calibration)
            self._configure()
            for cam in self.cameras.values():
                cam.connect()
            if calibrate and not self.spec.leader:
                self._hold_here()
                self._set_torque(True)
                self._start_monitor()
        except BaseException:
            self.disconnect()
            raise

    def write_calibration(self, calibration: dict[str, MotorCalibration]) -> None:
        """Homing offsets and position limits into the servos; software limits from the ranges."""
        self.calibration = calibration
        for joint in self.spec.joints:
            cal = calibration[joint.name]
            self.bus.write("Homing_Offset", joint.name, cal.homing_offset)
            self.bus.write("Min_Position_Limit", joint.name, cal.range_min)
            self.bus.write("Max_Position_Limit", joint.name, cal.range_max)
        self.joint_limits = {
            f"{j.name}.pos": limits(calibration[j.name], j.mode, RESOLUTION) for j in self.spec.joints
        }

    def _configure(self) -> None:
        names = [j.name for j in self.spec.joints]
        for name in names:
            self.bus.write("Operating_Mode", name, POSITION_MODE[self.spec.protocol])
            self.bus.write("Return_Delay_Time", name, 0)  # reply at once: the factory 500 µs per servo
            if self.torque_limit is not None and self.spec.protocol == "feetech":
                self.bus.write("Max_Torque_Limit", name, int(self.torque_limit))
        if self.spec.protocol == "dynamixel" and self.command_timeout_s is not None and not self.spec.leader:
            # The servo's own watchdog: no packet for this long and it drops torque (cleared on re-enable).
            units = max(1, min(127, round(self.command_timeout_s * 1000 / DYNAMIXEL_WATCHDOG_UNIT_MS)))
            for name in names:
                self.bus.write("Bus_Watchdog", name, 0)
                self.bus.write("Bus_Watchdog", name, units)

    def disconnect(self) -> None:
        """Torque off (best effort: the port may be gone), stop the monitor, close cameras and the port."""
        self._stop.set()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=1.0)
        self._monitor = None
        if self.bus.is_connected:
            with contextlib.suppress(BusError, OSError):
                self._set_torque(False)
        for cam in self.cameras.values():
            with contextlib.suppress(Exception):
                cam.disconnect()
        self.bus.disconnect()

    # ------------------------------------------------------------------ Robot protocol

    def _positions(self) -> np.ndarray:
        raw = self.bus.sync_read("Present_Position")
        return np.array(
            [to_units(raw[j.name], self.calibration[j.name], j.mode, RESOLUTION) for j in self.spec.joints],
            dtype=np.float32,
        )

    def get_observation(self) -> dict[str, np.ndarray]:
        self._need_calibration()
        with self._lock:
            obs: dict[str, np.ndarray] = {STATE: self._positions()}
        for name, cam in self.cameras.items():
            obs[IMAGE_PREFIX + name] = cam.read()
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Clip to the calibrated limits and, relative to the present position, to max_relative_target
        per command; write the goals. Returns the action actually sent (robot units)."""
        self._need_calibration()
        target = np.asarray(action, dtype=np.float64).reshape(-1)
        if target.shape != (len(self.spec.joints),) or not np.isfinite(target).all():
            raise VLAError(f"send_action needs {len(self.spec.joints)} finite values, got {action!r}")
        lo = np.array([self.joint_limits[n][0] for n in self.spec.feature_names])
        hi = np.array([self.joint_limits[n][1] for n in self.spec.feature_names])
        with self._lock:
            safe = np.clip(target, lo, hi)
            if self.max_relative_target is not None:
                present = self._positions().astype(np.float64)
                step = self.max_relative_target
                safe = np.clip(safe, present - step, present + step)
            if not np.allclose(safe, target):
                self.clipped += 1
            self._write_goals(safe)
            self._last_command = time.monotonic()
        return safe.astype(np.float32)

    def safe_stop(self) -> None:
        """The runner's safe stop: torque off (the arm goes limp; a real arm should be in a safe pose)."""
        with self._lock:
            self._set_torque(False)

    def resume(self) -> None:
        """After a safe stop: hold where the arm is now, then torque on."""
        with self._lock:
            self._hold_here()
            self._set_torque(True)
            self._last_command = time.monotonic()

    # ------------------------------------------------------------------ internals

    def _need_calibration(self) -> None:
        if not self.calibration:
            raise VLAError(f"{self.spec.name} on {self.port} is not calibrated; connect() it first")

    def _write_goals(self, values: np.ndarray) -> None:
        goals = {}
        for joint, value in zip(self.spec.joints, values, strict=True):
            raw = to_raw(float(value), self.calibration[joint.name], joint.mode, RESOLUTION)
            goals[joint.name] = int(min(RESOLUTION - 1, max(0, raw)))
        self.bus.sync_write("Goal_Position", goals)

    def _hold_here(self) -> None:
        present = self.bus.sync_read("Present_Position")
        self.bus.sync_write(
            "Goal_Position", {n: int(min(RESOLUTION - 1, max(0, v))) for n, v in present.items()}
        )

    def _set_torque(self, on: bool) -> None:
        names = [j.name for j in self.spec.joints]
        self.bus.sync_write("Torque_Enable", dict.fromkeys(names, int(on)))
        if self.spec.protocol == "feetech":  # STS: EEPROM writes (calibration) need the lock open
            self.bus.sync_write("Lock", dict.fromkeys(names, int(on)))
        self._torque = on

    def _start_monitor(self) -> None:
        if self.command_timeout_s is None:
            return
        self._stop.clear()
        self._last_command = time.monotonic()
        self._monitor = threading.Thread(target=self._watch, name=f"{self.spec.name}-deadline", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        """No command for command_timeout_s: hold where the joints are (once per silence)."""
        timeout = self.command_timeout_s
        assert timeout is not None
        held_at: float | None = None
        while not self._stop.wait(timeout / 4):
            silent_since = self._last_command
            if time.monotonic() - silent_since < timeout or held_at == silent_since or not self._torque:
                continue
            try:
                with self._lock:
                    self._hold_here()
                self.holds += 1
                held_at = silent_since
            except BusError:
                return  # the port is gone: the caller's next call raises
