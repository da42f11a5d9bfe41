"""Any LeRobot `Robot` (their SO101Follower, Koch, LeKiwi, … zoo) behind our Robot protocol, so the runner,
vla-record and vla-deploy drive it like our own arms.

    robot = LeRobotRobot(type="so101_follower", port="/dev/ttyACM0", id="my_arm")   # built from its config
    robot = LeRobotRobot(robot=their_robot)                                          # or one already built

LeRobot's flat dicts become our features: every scalar feature (`shoulder_pan.pos`, …, in their order)
goes into `observation.state` / `action`, every (H, W, C) feature becomes `observation.images.<name>`.
Their `send_action` returns the action actually sent (after their clipping), and so does ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla.errors import VLAError
from vla.robot import ACTION, IMAGE_PREFIX, STATE, Features, camera_feature, vector_feature


def build_lerobot_robot(type: str, **fields: Any) -> Any:
    """A LeRobot robot from its registered config type (`so101_follower`, `koch_follower`, …)."""
    from lerobot.robots import RobotConfig, make_robot_from_config

    try:
        config_cls = RobotConfig.get_choice_class(type)
    except (KeyError, ValueError):
        known = ", ".join(sorted(RobotConfig.get_known_choices()))
        raise VLAError(f"robot.type={type!r} is not a LeRobot robot; choose one of {known}") from None
    if fields.get("calibration_dir") is not None:
        fields["calibration_dir"] = Path(fields["calibration_dir"]).expanduser()
    try:
        config = config_cls(**fields)
    except TypeError as e:
        raise VLAError(f"robot.type={type}: {e}") from None
    return make_robot_from_config(config)


class LeRobotRobot:
    def __init__(
        self,
        robot: Any = None,
        type: str | None = None,
        fps: int = 30,
        calibrate: bool = False,
        **fields: Any,
    ) -> None:
        if robot is None:
            if type is None:
                raise VLAError("robot.type is required (a LeRobot robot type, e.g. so101_follower)")
            robot = build_lerobot_robot(type, **fields)
        self.robot = robot
        self.robot_type = str(getattr(robot, "name", type or "lerobot"))
        self.fps = int(fps)
        self.calibrate = bool(calibrate)  # False: a missing calibration is an error, never an input() prompt
        features = dict(robot.observation_features)
        self.state_names = [k for k, v in features.items() if not isinstance(v, tuple)]
        self.camera_names = [k for k, v in features.items() if isinstance(v, tuple)]
        self.action_names = list(robot.action_features)
        self._camera_shapes = {k: tuple(features[k]) for k in self.camera_names}

    @property
    def observation_features(self) -> Features:
        out: Features = {STATE: vector_feature(self.state_names)}
        for name in self.camera_names:
            h, w = self._camera_shapes[name][:2]
            out[IMAGE_PREFIX + name] = camera_feature(int(h), int(w))
        return out

    @property
    def action_features(self) -> Features:
        return {ACTION: vector_feature(self.action_names)}

    @property
    def is_connected(self) -> bool:
        return bool(self.robot.is_connected)

    def connect(self) -> None:
        if not self.calibrate and hasattr(type(self.robot), "is_calibrated"):  # (a property: not read here)
            # LeRobot asks on stdin when the file and the servos disagree; we refuse instead of blocking.
            self.robot.connect(calibrate=False)
            bus: Any = getattr(self.robot, "bus", None)
            calibration = getattr(self.robot, "calibration", None)
            if not self.robot.is_calibrated and calibration and hasattr(bus, "torque_disabled"):
                with bus.torque_disabled():  # the file wins, as when one presses ENTER at LeRobot's prompt
                    bus.write_calibration(calibration)
            if not self.robot.is_calibrated:
                self.robot.disconnect()
                raise VLAError(
                    f"{self.robot} is not calibrated (no calibration file, or the servos disagree with it); "
                    "calibrate it (lerobot-calibrate or vla-calibrate) or pass robot.calibrate=true"
                )
            return
        self.robot.connect(calibrate=True)

    def get_observation(self) -> dict[str, np.ndarray]:
        raw = self.robot.get_observation()
        obs = {STATE: np.array([raw[k] for k in self.state_names], dtype=np.float32)}
        for name in self.camera_names:
            obs[IMAGE_PREFIX + name] = np.asarray(raw[name])
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape != (len(self.action_names),):
            raise VLAError(f"send_action needs {len(self.action_names)} values ({self.action_names})")
        sent = self.robot.send_action({k: float(v) for k, v in zip(self.action_names, values, strict=True)})
        return np.array([sent.get(k, v) for k, v in zip(self.action_names, values, strict=True)], np.float32)

    def disconnect(self) -> None:
        if self.robot.is_connected:
            self.robot.disconnect()
