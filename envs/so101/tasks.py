"""The task suite: seeded layouts, instructions and success checks for touch, pick and bin."""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from envs.so101.model import BIN_HEIGHT, BIN_INNER_HALF, BIN_WALL, CUBE_COLOURS, CUBE_HALF
from vla.errors import VLAError

COLOURS: tuple[str, ...] = tuple(CUBE_COLOURS)


@dataclass(frozen=True)
class TaskSpec:
    """One task of the suite: its instruction template and its step limit at 30 Hz."""

    name: str
    instruction: str  # formatted with {colour}
    max_steps: int


TASK_SPECS: dict[str, TaskSpec] = {
    "touch": TaskSpec("touch", "touch the {colour} cube", 100),
    "pick": TaskSpec("pick", "pick up the {colour} cube", 150),
    "bin": TaskSpec("bin", "put the {colour} cube in the bin", 250),
}
TASKS: tuple[str, ...] = tuple(TASK_SPECS)

PICK_HEIGHT = 0.05  # the cube's bottom must be this far above the table


def task_spec(task: str) -> TaskSpec:
    """The spec of `task`, or a VLAError naming the choices."""
    if task not in TASK_SPECS:
        raise VLAError(f"robot.task={task!r} is not a task; choose one of: {', '.join(TASKS)}")
    return TASK_SPECS[task]


@dataclass(frozen=True)
class Layout:
    """Where things start: cube (x, y, yaw) per colour, the bin centre (x, y), the target colour."""

    cubes: dict[str, tuple[float, float, float]]
    bin_xy: tuple[float, float]
    target: str


# Workspace in polar coordinates around the pan axis (metres, radians): inside the arm's top-down reach.
CUBE_RADIUS = (0.14, 0.24)
CUBE_ANGLE = 0.95
BIN_RADIUS = (0.17, 0.22)
BIN_ANGLE = (0.45, 0.9)
MIN_CUBE_GAP = 0.065  # centre-to-centre: room for the open jaw between cubes
BIN_CLEARANCE = BIN_INNER_HALF + BIN_WALL + 0.045  # cube centre to bin centre, per axis


def sample_layout(rng: np.random.Generator) -> Layout:
    """A random layout: the bin on one side, three separated cubes elsewhere, a target colour."""
    side = rng.choice([-1.0, 1.0])
    r_bin = rng.uniform(*BIN_RADIUS)
    a_bin = side * rng.uniform(*BIN_ANGLE)
    bin_xy = (r_bin * math.cos(a_bin), r_bin * math.sin(a_bin))
    cubes: dict[str, tuple[float, float, float]] = {}
    for colour in COLOURS:
        for _ in range(1000):
            r = rng.uniform(*CUBE_RADIUS)
            a = rng.uniform(-CUBE_ANGLE, CUBE_ANGLE)
            x, y = r * math.cos(a), r * math.sin(a)
            far_from_bin = max(abs(x - bin_xy[0]), abs(y - bin_xy[1])) > BIN_CLEARANCE
            far_from_cubes = all(math.hypot(x - cx, y - cy) > MIN_CUBE_GAP for cx, cy, _ in cubes.values())
            if far_from_bin and far_from_cubes:
                break
        cubes[colour] = (x, y, rng.uniform(-math.pi / 4, math.pi / 4))
    target = str(rng.choice(list(COLOURS)))
    return Layout(cubes=cubes, bin_xy=bin_xy, target=target)


class SuccessJudge:
    """Decides success from the MuJoCo state; holds the geom ids it needs."""

    def __init__(self, model: mujoco.MjModel) -> None:
        gid = lambda name: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)  # noqa: E731
        self.model = model
        self.cube_geoms = {c: gid(f"cube_{c}") for c in COLOURS}
        self.cube_bodies = {c: model.geom_bodyid[g] for c, g in self.cube_geoms.items()}
        self.jaws = {gid("fixed_jaw"), gid("moving_jaw")}
        hand_bodies = {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in ("wrist", "gripper")}
        hand_bodies.add(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "moving_jaw"))
        self.hand_geoms = {g for g in range(model.ngeom) if model.geom_bodyid[g] in hand_bodies}
        self.bin_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "bin")
        # First dof of each cube's free joint: qvel[dof : dof + 3] is its linear velocity (world frame).
        self.cube_dofs = {c: int(model.jnt_dofadr[model.body_jntadr[b]]) for c, b in self.cube_bodies.items()}

    def _touching(self, data: mujoco.MjData, geom: int) -> set[int]:
        """Geoms in contact with `geom`."""
        out = set()
        for i in range(data.ncon):
            c = data.contact[i]
            if c.geom1 == geom:
                out.add(int(c.geom2))
            elif c.geom2 == geom:
                out.add(int(c.geom1))
        return out

    def touched(self, data: mujoco.MjData, colour: str) -> bool:
        return bool(self._touching(data, self.cube_geoms[colour]) & self.hand_geoms)

    def held(self, data: mujoco.MjData, colour: str) -> bool:
        """Both jaws touch the cube."""
        return self.jaws <= self._touching(data, self.cube_geoms[colour])

    def lifted(self, data: mujoco.MjData, colour: str) -> bool:
        z = data.xpos[self.cube_bodies[colour]][2]
        return bool(z - CUBE_HALF >= PICK_HEIGHT) and self.held(data, colour)

    def in_bin(self, data: mujoco.MjData, colour: str) -> bool:
        """At rest inside the bin's walls, below their top, and let go of."""
        body = self.cube_bodies[colour]
        pos = data.xpos[body]
        rel = pos[:2] - data.xpos[self.bin_body][:2]
        inside = bool(np.all(np.abs(rel) < BIN_INNER_HALF)) and pos[2] < BIN_HEIGHT
        dof = self.cube_dofs[colour]
        speed = float(np.linalg.norm(data.qvel[dof : dof + 3]))
        return inside and speed < 0.05 and not self.touched(data, colour)

    def success(self, task: str, data: mujoco.MjData, colour: str) -> bool:
        if task == "touch":
            return self.touched(data, colour)
        if task == "pick":
            return self.lifted(data, colour)
        return self.in_bin(data, colour)
