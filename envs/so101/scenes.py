"""Random SO-101 tabletop scenes with ground truth: what the grounding data (envs/so101/grounding.py) asks
questions about.

A scene is the env's table with 1 to 3 of the cubes, the bin, and the arm in a random pose (the start
pose, above or next to a cube, or anywhere in a sampled joint range), sometimes a cube in the bin or held
in the jaws. It is rendered by the env's own `CameraRig` at the env's image size, so the pictures are
exactly what `SO101Env` gives a policy, and labelled from the simulator: a segmentation render per camera
gives each object's pixels, from which come its point (the mask pixel nearest the mask's centroid), its box
and its size in that image; 3-D positions come from MuJoCo's state.

The same (seed, split) always gives the same scene; the splits draw from disjoint random streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from envs.so101.env import ACTION_HIGH, ACTION_LOW, HOME, HOME_NOISE, to_radians
from envs.so101.kinematics import ArmIK
from envs.so101.model import BIN_INNER_HALF, CUBE_HALF, JOINTS, build_xml
from envs.so101.render import CAMERAS, CameraRig
from envs.so101.tasks import COLOURS, sample_layout
from vla.errors import VLAError

SPLITS = {"train": 0, "heldout": 1}
BIN = "bin"
GRIPPER = "gripper"
OBJECTS: tuple[str, ...] = (*COLOURS, BIN, GRIPPER)  # label k + 1 in a scene's label maps
MIN_PIXELS = 4  # fewer pixels than this in an image: the object counts as not visible there
CUBE_COUNTS = (1, 2, 3)
CUBE_COUNT_P = (0.15, 0.25, 0.6)  # the tasks always show three cubes: most scenes do too
# Arm pose modes and their probabilities: the start pose (where every episode begins), the hand above
# or beside an object (where a policy goes), or a random pose in a broad joint range.
POSE_MODES = ("home", "near", "random")
POSE_P = (0.25, 0.5, 0.25)
_HIDDEN = (0.25, 0.0, -0.3)
# Joint range (env units) of the "random" pose mode: the half of the workspace above the table.
_RANDOM_LO = np.array([-60.0, -60.0, -30.0, 20.0, -90.0, 0.0])
_RANDOM_HI = np.array(
    [60.0, 20.0, 60.0, 100.0, 90.0, 100.0]
)  # under the table top: absent cubes are out of every camera's sight


@dataclass
class ObjectView:
    """One object in one camera image: its pixel count, a point on it (x, y) and its box (x0, y0, x1, y1)."""

    pixels: int
    point: tuple[float, float] | None = None
    box: tuple[int, int, int, int] | None = None

    @property
    def visible(self) -> bool:
        return self.point is not None


@dataclass
class Scene:
    seed: int
    split: str
    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8, as SO101Env renders it
    labels: dict[str, np.ndarray]  # camera -> (H, W) uint8: 0 background, k + 1 = OBJECTS[k]
    cubes: dict[str, np.ndarray]  # colour of each cube on the table -> world centre (3,)
    gripper: np.ndarray  # the tool point between the jaw tips, world (3,)
    bin_xy: np.ndarray  # (2,)
    pose: str  # one of POSE_MODES
    gripper_opening: float = 0.0  # env units: 0 closed .. 100 open
    held: str | None = None  # a cube in the jaws
    in_bin: str | None = None  # a cube inside the bin
    views: dict[str, dict[str, ObjectView]] = field(default_factory=dict)  # camera -> object -> view

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        h, w = next(iter(self.images.values())).shape[:2]
        return h, w

    def mask(self, camera: str, obj: str) -> np.ndarray:
        """(H, W) bool: the pixels of `obj` in `camera`'s image."""
        return self.labels[camera] == OBJECTS.index(obj) + 1


class SceneGenerator:
    """Renders scenes for `seed`s. Holds one MuJoCo model, the colour rig and a segmentation renderer."""

    def __init__(self, image_size: int | Sequence[int] = 96, cameras: Sequence[str] = CAMERAS) -> None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown or not cameras:
            raise VLAError(f"cameras={list(cameras)}: choose one or more of {list(CAMERAS)}")
        self.height, self.width = int(h), int(w)
        self.cameras = tuple(cameras)
        self.model = mujoco.MjModel.from_xml_string(build_xml())
        self.data = mujoco.MjData(self.model)
        self.rig = CameraRig(self.model, self.cameras, self.height, self.width)
        self.ik = ArmIK(self.model)
        m = self.model
        self._qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in JOINTS])
        self._cube_qadr = {c: int(m.jnt_qposadr[m.joint(f"cube_{c}").id]) for c in COLOURS}
        self._bin_mocap = int(m.body_mocapid[m.body(BIN).id])
        self._tcp = m.site("tcp").id
        self._grasp = m.site("grasp").id
        self._gripper_body = m.body(GRIPPER).id
        self._wrist_cam = m.camera("wrist").id
        self._geom_label = np.zeros(m.ngeom + 1, dtype=np.uint8)  # geom id -> label (0: background)
        hand = {m.body(b).id for b in (GRIPPER, "moving_jaw")}
        for g in range(m.ngeom):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            body = int(m.geom_bodyid[g])
            if name.startswith("cube_"):
                self._geom_label[g] = OBJECTS.index(name[len("cube_") :]) + 1
            elif body == m.body(BIN).id:
                self._geom_label[g] = OBJECTS.index(BIN) + 1
            elif body in hand:
                self._geom_label[g] = OBJECTS.index(GRIPPER) + 1

    # ------------------------------------------------------------------ sampling

    def scene(self, seed: int, split: str = "train") -> Scene:
        if split not in SPLITS:
            raise VLAError(f"split={split!r}: choose one of {list(SPLITS)}")
        rng = np.random.default_rng([SPLITS[split], int(seed)])
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        layout = sample_layout(rng)
        count = int(rng.choice(CUBE_COUNTS, p=CUBE_COUNT_P))
        present = [str(c) for c in rng.choice(COLOURS, size=count, replace=False)]
        for colour in COLOURS:
            x, y, yaw = layout.cubes[colour] if colour in present else (*_HIDDEN[:2], 0.0)
            z = CUBE_HALF if colour in present else _HIDDEN[2]
            self._place_cube(colour, np.array([x, y, z]), yaw)
        d.mocap_pos[self._bin_mocap] = [*layout.bin_xy, 0.0]
        in_bin = None
        if len(present) > 1 and rng.random() < 0.1:
            in_bin = present[int(rng.integers(len(present)))]
            offset = rng.uniform(-1, 1, size=2) * (BIN_INNER_HALF - CUBE_HALF - 0.004)
            self._place_cube(in_bin, np.array([*(np.asarray(layout.bin_xy) + offset), CUBE_HALF]), 0.0)
        pose = str(rng.choice(POSE_MODES, p=POSE_P))
        joints = self._sample_pose(pose, rng, layout.bin_xy, [c for c in present if c != in_bin])
        d.qpos[self._qadr] = to_radians(joints)
        mujoco.mj_forward(m, d)
        held = None
        if pose == "near" and rng.random() < 0.15:
            candidates = [c for c in present if c != in_bin]
            if candidates:
                held = candidates[int(rng.integers(len(candidates)))]
                joints[5] = rng.uniform(20.0, 30.0)  # jaws closed on a 2.7 cm cube
                d.qpos[self._qadr] = to_radians(joints)
                mujoco.mj_forward(m, d)
                self._hold(held)
        mujoco.mj_forward(m, d)
        images = self.rig.render(d)
        labels = {cam: self._labels(seg) for cam, seg in self.rig.segment(d).items()}
        scene = Scene(
            seed=int(seed),
            split=split,
            images=images,
            labels=labels,
            cubes={c: d.xpos[m.body(f"cube_{c}").id].copy() for c in present},
            gripper=d.site_xpos[self._tcp].copy(),
            bin_xy=np.asarray(layout.bin_xy, dtype=np.float64),
            pose=pose,
            gripper_opening=float(joints[5]),
            held=held,
            in_bin=in_bin,
        )
        objects = [*present, BIN, GRIPPER]
        scene.views = {cam: {o: _view(scene.mask(cam, o)) for o in objects} for cam in self.cameras}
        return scene

    def _sample_pose(
        self, mode: str, rng: np.random.Generator, bin_xy: tuple[float, float], cubes: list[str]
    ) -> np.ndarray:
        """Joint targets in env units (6,) for the pose mode; poses that put the hand below the cubes' tops
        or point the wrist camera at the sky are drawn again (the start pose after 20 tries)."""
        start = np.clip(HOME + rng.uniform(-1, 1, size=6) * HOME_NOISE, ACTION_LOW, ACTION_HIGH)
        start[5] = rng.uniform(0.0, 100.0)
        if mode == "home":
            return start
        for _ in range(20):
            if mode == "random":
                q = rng.uniform(_RANDOM_LO, _RANDOM_HI).astype(np.float32)
            else:  # near: the grasp point above or beside a cube (or the bin), jaws down at a random yaw
                if cubes and rng.random() < 0.85:
                    body = self.model.body(f"cube_{cubes[int(rng.integers(len(cubes)))]}").id
                    xy = self.data.xpos[body][:2] + rng.normal(0.0, 0.02, size=2)
                else:
                    xy = np.asarray(bin_xy) + rng.normal(0.0, 0.02, size=2)
                goal = np.array([*xy, rng.uniform(2 * CUBE_HALF + 0.012, 0.15)])
                arm = self.ik.solve(to_radians(start)[:5], goal, float(rng.uniform(-math.pi, math.pi)))
                if np.linalg.norm(self.ik.forward(arm)[0] - goal) > 0.01:
                    continue
                q = start.copy()
                q[:5] = np.degrees(arm)
            if self._plausible(q):
                return q
        return start

    def _plausible(self, q: np.ndarray) -> bool:
        """The hand above the cubes' tops and the wrist camera looking down at the table."""
        d = self.data
        d.qpos[self._qadr] = to_radians(q)
        mujoco.mj_kinematics(self.model, d)
        forward = -d.cam_xmat[self._wrist_cam].reshape(3, 3)[:, 2]  # a MuJoCo camera looks along -z
        low = min(float(d.site_xpos[self._tcp][2]), float(d.xpos[self._gripper_body][2]))
        return low > 2 * CUBE_HALF + 0.005 and forward[2] < -0.3

    def _place_cube(self, colour: str, pos: np.ndarray, yaw: float) -> None:
        adr = self._cube_qadr[colour]
        self.data.qpos[adr : adr + 7] = [*pos, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]

    def _hold(self, colour: str) -> None:
        """Put the cube between the jaws, aligned with the gripper."""
        d = self.data
        pos = d.site_xpos[self._grasp]
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.xmat[self._gripper_body])
        adr = self._cube_qadr[colour]
        d.qpos[adr : adr + 3] = pos
        d.qpos[adr + 3 : adr + 7] = quat
        mujoco.mj_forward(self.model, d)

    # ------------------------------------------------------------------ ground truth

    def _labels(self, seg: np.ndarray) -> np.ndarray:
        """Segmentation render (H, W, 2) (object id, object type) -> (H, W) uint8 object labels."""
        ids = seg[..., 0]
        is_geom = (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids >= 0)
        return np.where(is_geom, self._geom_label[np.clip(ids, 0, len(self._geom_label) - 1)], 0).astype(
            np.uint8
        )

    def close(self) -> None:
        self.rig.close()


def _view(mask: np.ndarray) -> ObjectView:
    """An object's point and box from its mask: the pixel nearest the centroid, so the point is always on it."""
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_PIXELS:
        return ObjectView(len(xs))
    cx, cy = xs.mean(), ys.mean()
    k = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    point = (float(xs[k]) + 0.5, float(ys[k]) + 0.5)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return ObjectView(len(xs), point, box)
