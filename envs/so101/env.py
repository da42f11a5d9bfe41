"""The gymnasium env: an SO-101 on a table with three cubes and a bin, driven by absolute joint targets.

Units are LeRobot's SO-101 units: arm joints in degrees (relative to the sim's zero pose), the
gripper 0-100 with 0 = closed and 100 = fully open. Control runs at 30 Hz with `SUBSTEPS` physics
steps per tick.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.so101.model import (
    ARM_JOINTS,
    CONTROL_HZ,
    CUBE_HALF,
    GRIPPER_JOINT,
    JOINT_LIMITS,
    JOINTS,
    SUBSTEPS,
    build_xml,
)
from envs.so101.render import CAMERAS, CameraRig
from envs.so101.tasks import COLOURS, Layout, SuccessJudge, sample_layout, task_spec
from vla.errors import VLAError
from vla.features import IMAGE_PREFIX, IS_SUCCESS, STATE, TASK

_LO = np.array([JOINT_LIMITS[j][0] for j in JOINTS])
_HI = np.array([JOINT_LIMITS[j][1] for j in JOINTS])
_GRIP_LO, _GRIP_HI = JOINT_LIMITS[GRIPPER_JOINT]

# Action/state limits in env units: degrees for the arm, 0-100 for the gripper.
ACTION_LOW = np.array([*np.degrees(_LO[:5]), 0.0], dtype=np.float32)
ACTION_HIGH = np.array([*np.degrees(_HI[:5]), 100.0], dtype=np.float32)

# Start pose (env units): gripper above the workspace, pointing down, jaws half open.
HOME = np.array([0.0, -30.0, 15.0, 85.0, 0.0, 30.0], dtype=np.float32)
HOME_NOISE = np.array([6.0, 4.0, 4.0, 4.0, 6.0, 5.0])


def to_radians(units: np.ndarray) -> np.ndarray:
    """Env units (6,) -> joint angles in radians (6,)."""
    q = np.radians(np.asarray(units, dtype=np.float64))
    q[5] = _GRIP_LO + float(units[5]) / 100.0 * (_GRIP_HI - _GRIP_LO)
    return q


def to_units(q: np.ndarray) -> np.ndarray:
    """Joint angles in radians (6,) -> env units (6,) float32."""
    out = np.degrees(np.asarray(q, dtype=np.float64))
    out[5] = (float(q[5]) - _GRIP_LO) / (_GRIP_HI - _GRIP_LO) * 100.0
    return out.astype(np.float32)


class SO101Env(gym.Env):
    """Language-conditioned tabletop tasks for a simulated SO-101 (see `envs.so101.tasks`)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}  # noqa: RUF012 (gymnasium's own type)

    def __init__(
        self,
        task: str = "pick",
        image_size: int | Sequence[int] = 96,
        cameras: Sequence[str] = CAMERAS,
        max_episode_steps: int | None = None,
        terminate_on_success: bool = True,
        success_hold_steps: int = 5,
        render_mode: str | None = None,
        targets_per_layout: int = 1,
    ) -> None:
        self.spec_task = task_spec(task)
        if not 1 <= int(targets_per_layout) <= len(COLOURS):
            raise VLAError(f"robot.targets_per_layout={targets_per_layout}: must be 1..{len(COLOURS)}")
        # k > 1: seeds s and s' with s // k == s' // k share a layout (and start pose) but name different
        # cubes -- recorded demonstrations then differ only by the instruction, so a policy cannot fit
        # them without reading it (bench/README.md, "Language-contrastive demonstrations"). 1: every seed
        # is its own layout (evaluation).
        self.targets_per_layout = int(targets_per_layout)
        self.task_name = task
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.image_shape = (int(h), int(w), 3)
        self.camera_names = tuple(cameras)
        self.max_episode_steps = max_episode_steps or self.spec_task.max_steps
        self.terminate_on_success = terminate_on_success
        self.success_hold_steps = success_hold_steps
        self.render_mode = render_mode

        self.model = mujoco.MjModel.from_xml_string(build_xml())
        self.data = mujoco.MjData(self.model)
        self.judge = SuccessJudge(self.model)
        self._qadr = np.array([self.model.jnt_qposadr[self.model.joint(j).id] for j in JOINTS])
        self._cube_qadr = {c: int(self.model.jnt_qposadr[self.model.joint(f"cube_{c}").id]) for c in COLOURS}
        self._bin_mocap = int(self.model.body_mocapid[self.model.body("bin").id])
        self._rig: CameraRig | None = None
        if self.camera_names or render_mode == "rgb_array":
            rig_cams = self.camera_names or ("front",)
            self._rig = CameraRig(self.model, rig_cams, self.image_shape[0], self.image_shape[1])

        spaces: dict[str, gym.Space] = {
            STATE: gym.spaces.Box(-np.inf, np.inf, shape=(len(JOINTS),), dtype=np.float32)
        }
        for cam in self.camera_names:
            spaces[IMAGE_PREFIX + cam] = gym.spaces.Box(0, 255, shape=self.image_shape, dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)

        self.layout: Layout | None = None
        self.instruction = ""
        self._steps = 0
        self._success_step: int | None = None
        self._first_touched: str | None = None

    # -- privileged state, for scripted experts ------------------------------------------------------
    @property
    def target(self) -> str:
        """The colour named in the instruction."""
        assert self.layout is not None, "reset() first"
        return self.layout.target

    def cube_pos(self, colour: str) -> np.ndarray:
        """World position of a cube's centre (3,)."""
        adr = self._cube_qadr[colour]
        return self.data.qpos[adr : adr + 3].copy()

    def cube_quat(self, colour: str) -> np.ndarray:
        adr = self._cube_qadr[colour]
        return self.data.qpos[adr + 3 : adr + 7].copy()

    def bin_pos(self) -> np.ndarray:
        return self.data.mocap_pos[self._bin_mocap].copy()

    def joint_positions(self) -> np.ndarray:
        """Current joints in radians (6,)."""
        return self.data.qpos[self._qadr].copy()

    # -- gymnasium API --------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        k = self.targets_per_layout
        super().reset(seed=seed if seed is None or k == 1 else seed // k)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        self.layout = sample_layout(rng)
        if k > 1 and seed is not None:
            shift = COLOURS.index(self.layout.target) + seed % k
            self.layout = dataclasses.replace(self.layout, target=COLOURS[shift % len(COLOURS)])
        self.instruction = self.spec_task.instruction.format(colour=self.layout.target)
        for colour, (x, y, yaw) in self.layout.cubes.items():
            adr = self._cube_qadr[colour]
            self.data.qpos[adr : adr + 7] = [x, y, CUBE_HALF, math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
        self.data.mocap_pos[self._bin_mocap] = [*self.layout.bin_xy, 0.0]
        start = np.clip(HOME + rng.uniform(-1, 1, size=6) * HOME_NOISE, ACTION_LOW, ACTION_HIGH)
        q = to_radians(start)
        self.data.qpos[self._qadr] = q
        self.data.ctrl[:] = q
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        self._success_step = None
        self._first_touched = None
        return self._observation(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        assert self.layout is not None, "reset() first"
        action = self.clip_action(action)
        self.data.ctrl[:] = to_radians(action)
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        self._steps += 1
        if self._first_touched is None:  # grounding: which cube the hand reached first (grasping touches)
            self._first_touched = next((c for c in COLOURS if self.judge.touched(self.data, c)), None)
        if self._success_step is None and self.judge.success(self.task_name, self.data, self.target):
            self._success_step = self._steps
        success = self._success_step is not None
        terminated = bool(
            success
            and self.terminate_on_success
            and self._steps - self._success_step >= self.success_hold_steps  # type: ignore[operator]
        )
        truncated = not terminated and self._steps >= self.max_episode_steps
        return self._observation(), float(success), terminated, truncated, self._info(success)

    def clip_action(self, action: np.ndarray) -> np.ndarray:
        """Absolute targets (6,) in env units, clipped to the joint limits."""
        action = np.asarray(action, dtype=np.float32).reshape(len(JOINTS))
        return np.clip(action, ACTION_LOW, ACTION_HIGH)

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self._rig is None:
            return None
        return self._rig.render(self.data)[self._rig.cameras[0]]

    def close(self) -> None:
        if self._rig is not None:
            self._rig.close()
            self._rig = None

    # -- internals ------------------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        obs = {STATE: to_units(self.data.qpos[self._qadr])}
        if self.camera_names and self._rig is not None:
            for cam, frame in self._rig.render(self.data).items():
                obs[IMAGE_PREFIX + cam] = frame
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        """`target`: the named cube; `first_touched`: the cube the hand touched first so far (None: none yet)."""
        return {
            IS_SUCCESS: bool(success),
            TASK: self.instruction,
            "steps": self._steps,
            "target": self.target,
            "first_touched": self._first_touched,
        }


__all__ = ["ACTION_HIGH", "ACTION_LOW", "ARM_JOINTS", "HOME", "SO101Env", "to_radians", "to_units"]
