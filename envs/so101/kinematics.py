"""Inverse kinematics of the simulated SO-101: damped least squares for the grasp site, jaws pointing down.

Used by the scripted experts (policies/scripted.py), keyboard teleoperation and the grounding-scene
generator (envs/so101/scenes.py), which puts the hand near and above the cubes.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from envs.so101.model import ARM_JOINTS, JOINT_LIMITS


class ArmIK:
    """Damped least squares IK for the grasp site on a private copy of the model's data.

    The target pose is the grasp point (3,) with the jaws pointing straight down and the closing
    axis (the gripper link's x) at a given yaw about the vertical.
    """

    def __init__(self, model: mujoco.MjModel, site: str = "grasp", damping: float = 0.02) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(site).id
        self.qadr = np.array([model.jnt_qposadr[model.joint(j).id] for j in ARM_JOINTS])
        self.dofs = np.array([model.jnt_dofadr[model.joint(j).id] for j in ARM_JOINTS])
        self.lo = np.array([JOINT_LIMITS[j][0] for j in ARM_JOINTS])
        self.hi = np.array([JOINT_LIMITS[j][1] for j in ARM_JOINTS])
        self.damping = damping
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arm joints (5,) rad -> grasp-site position (3,) and rotation (3, 3)."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # cdof, needed by mj_jacSite
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    @staticmethod
    def down_rotation(yaw: float) -> np.ndarray:
        """Site rotation (3, 3) with the jaws pointing down (site -z = world -z) and site x at `yaw`."""
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def solve(self, q0: np.ndarray, pos: np.ndarray, yaw: float, iters: int = 40) -> np.ndarray:
        """Joints (5,) rad near `q0` that put the grasp site at `pos` pointing down at `yaw`."""
        q = np.clip(np.array(q0, dtype=np.float64), self.lo, self.hi)
        target_rot = self.down_rotation(yaw)
        rot_weight = 0.1  # metres per radian: where top-down is out of reach, tilt rather than miss
        err_quat = np.zeros(4)
        cur_quat = np.zeros(4)
        tgt_quat = np.zeros(4)
        mujoco.mju_mat2Quat(tgt_quat, target_rot.ravel())
        for _ in range(iters):
            p, rot = self.forward(q)
            e_pos = pos - p
            mujoco.mju_mat2Quat(cur_quat, rot.ravel())
            # Rotation error as a world-frame rotation vector taking current to target.
            e_rot = np.zeros(3)
            mujoco.mju_negQuat(err_quat, cur_quat)
            mujoco.mju_mulQuat(err_quat, tgt_quat, err_quat)
            mujoco.mju_quat2Vel(e_rot, err_quat, 1.0)
            err = np.concatenate([e_pos, rot_weight * e_rot])  # (6,)
            if np.linalg.norm(e_pos) < 2e-4 and np.linalg.norm(e_rot) < 2e-3:
                break
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            jac = np.vstack([self._jacp[:, self.dofs], rot_weight * self._jacr[:, self.dofs]])  # (6, 5)
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
            q = np.clip(q + dq, self.lo, self.hi)
        return q
