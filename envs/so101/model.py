"""The SO-101 scene as an MJCF string: arm on a table edge, three cubes and a bin.

Kinematics (joint frames, axes, limits) follow the published SO-101 URDF (TheRobotStudio/SO-ARM100,
`Simulation/SO101/so101_new_calib.urdf`); the geometry is our own boxes and capsules. The world frame
has the table top at z = 0, the arm base at the origin and the workspace towards +x.
"""

from __future__ import annotations

import math

import numpy as np

ARM_JOINTS: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
GRIPPER_JOINT = "gripper"
JOINTS: tuple[str, ...] = (*ARM_JOINTS, GRIPPER_JOINT)

# Joint limits in radians, from the URDF (gripper: lower = closed, upper = fully open).
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "shoulder_pan": (-1.91986, 1.91986),
    "shoulder_lift": (-1.74533, 1.74533),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.65806, 1.65806),
    "wrist_roll": (-2.79253, 2.79253),
    "gripper": (-0.174533, 1.74533),
}

# (body, joint, parent body, joint origin xyz in the parent frame, rpy), straight from the URDF chain.
_CHAIN: tuple[tuple[str, str, str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("shoulder", "shoulder_pan", "base", (0.0207909, -0.0230745, 0.0948817), (-math.pi, 0.0, math.pi / 2)),
    (
        "upper_arm",
        "shoulder_lift",
        "shoulder",
        (-0.0303992, -0.0182778, -0.0542),
        (-math.pi / 2, -math.pi / 2, 0),
    ),
    ("lower_arm", "elbow_flex", "upper_arm", (-0.11257, -0.028, 0.0), (0.0, 0.0, math.pi / 2)),
    ("wrist", "wrist_flex", "lower_arm", (-0.1349, 0.0052, 0.0), (0.0, 0.0, -math.pi / 2)),
    ("gripper", "wrist_roll", "wrist", (0.0, -0.0611, 0.0181), (math.pi / 2, 0.0, math.pi)),
    ("moving_jaw", "gripper", "gripper", (0.0202, 0.0188, -0.0234), (math.pi / 2, 0.0, 0.0)),
)
# Link masses (kg) and centres of mass from the URDF; inertias are approximated as diagonal.
_INERTIAL: dict[str, tuple[float, tuple[float, float, float]]] = {
    "shoulder": (0.100, (-0.0307604, -1.66727e-05, -0.0252713)),
    "upper_arm": (0.103, (-0.0898471, -0.00838224, 0.0184089)),
    "lower_arm": (0.104, (-0.0980701, 0.00324376, 0.0182831)),
    "wrist": (0.079, (-0.000103312, -0.0386143, 0.0281156)),
    "gripper": (0.087, (0.000213627, 0.000245138, -0.025187)),
    "moving_jaw": (0.012, (-0.00157495, -0.0300244, 0.0192755)),
}
# The URDF's tool frame ("gripperframe") in the gripper link: between the jaw tips.
TCP_POS = (-0.0079, -0.000218, -0.0981274)
# Where a grasped cube's centre sits in the gripper link: against the fixed jaw, above the tips.
GRASP_POS = (-0.0005, 0.0, -0.089)

CUBE_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.1, 0.7, 0.2),
    "blue": (0.12, 0.25, 0.85),
}
CUBE_HALF = 0.0135  # 2.7 cm cubes
BIN_INNER_HALF = 0.045  # 9 cm square opening
BIN_WALL = 0.006
BIN_HEIGHT = 0.035
# The base is yawed so that pan = 0 points the arm along +x.
BASE_YAW = math.pi / 2

# The front camera faces the arm from across the table.
FRONT_EYE = (0.38, 0.0, 0.4)
FRONT_TARGET = (0.1, 0.0, 0.06)

CONTROL_HZ = 30
SUBSTEPS = 16
TIMESTEP = 1.0 / (CONTROL_HZ * SUBSTEPS)  # 2.083 ms: an integer number of substeps per control tick


def rpy_to_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis rpy (R = Rz(yaw) Ry(pitch) Rx(roll)) as a MuJoCo quaternion (w, x, y, z)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


def look_at(eye: tuple[float, float, float], target: tuple[float, float, float]) -> str:
    """MJCF `xyaxes` for a camera at `eye` looking at `target` with the image's up towards +z."""
    forward = np.subtract(target, eye, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return _v(np.concatenate([right, up]))


def _v(values: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(f"{x:.6g}" for x in values)


# Geometry per link in its own frame: capsules from the joint origin to the next joint origin.
# Only the wrist, the gripper and the jaws collide (class "hand"); the rest is visual ("link").
_LINK_GEOMS: dict[str, str] = {
    "shoulder": """
        <geom class="link" type="box" size="0.022 0.018 0.03" pos="-0.02 -0.01 -0.03"/>""",
    "upper_arm": """
        <geom class="link" type="capsule" size="0.016" fromto="0 0 0.018 -0.11257 -0.028 0.018"/>""",
    "lower_arm": """
        <geom class="link" type="capsule" size="0.014" fromto="0 0 0.018 -0.1349 0.0052 0.018"/>""",
    "wrist": """
        <geom class="hand" type="box" size="0.016 0.02 0.017" pos="0 -0.035 0.018"/>""",
    "gripper": """
        <geom class="hand" type="box" size="0.02 0.018 0.018" pos="0.004 0 -0.022"/>
        <geom name="fixed_jaw" class="jaw" type="box" size="0.004 0.012 0.032" pos="-0.018 0 -0.072"/>
        <site name="tcp" pos="{tcp}" size="0.004" rgba="1 0 1 0"/>
        <site name="grasp" pos="{grasp}" size="0.004" rgba="0 1 1 0"/>
        <camera name="wrist" pos="0 -0.045 -0.035" xyaxes="1 0 0 0 0.906 0.423" fovy="75"/>""",
    "moving_jaw": """
        <geom name="moving_jaw" class="jaw" type="box" size="0.004 0.032 0.012" pos="-0.0282 -0.045 0.0189"/>""",
}


def _arm_xml() -> str:
    """Nested bodies for the chain; returns the <body> subtree of the base."""
    children: dict[str, list[int]] = {}
    for i, (_body, _joint, parent, _pos, _rpy) in enumerate(_CHAIN):
        children.setdefault(parent, []).append(i)

    def body(i: int, indent: str) -> str:
        name, joint, _parent, pos, rpy = _CHAIN[i]
        lo, hi = JOINT_LIMITS[joint]
        cls = "gripper" if joint == GRIPPER_JOINT else "arm"
        geoms = _LINK_GEOMS[name].replace("{tcp}", _v(TCP_POS)).replace("{grasp}", _v(GRASP_POS))
        mass, com = _INERTIAL[name]
        inertia = max(mass * 0.03**2, 2e-6)
        inner = "".join(body(j, indent + "  ") for j in children.get(name, []))
        return (
            f'\n{indent}<body name="{name}" pos="{_v(pos)}" quat="{_v(rpy_to_quat(*rpy))}" gravcomp="1">'
            f'\n{indent}  <joint name="{joint}" class="{cls}" range="{lo:.6g} {hi:.6g}"/>'
            f'\n{indent}  <inertial pos="{_v(com)}" mass="{mass}" diaginertia="{inertia:.3g} {inertia:.3g} {inertia:.3g}"/>'
            f"{geoms}{inner}\n{indent}</body>"
        )

    return "".join(body(i, "      ") for i in children["base"])


def _bin_xml() -> str:
    h, w, t = BIN_HEIGHT / 2, BIN_INNER_HALF, BIN_WALL / 2
    walls = [
        (0, w + t, h, w + 2 * t, t, h),
        (0, -(w + t), h, w + 2 * t, t, h),
        (w + t, 0, h, t, w, h),
        (-(w + t), 0, h, t, w, h),
    ]
    geoms = "".join(
        f'\n      <geom class="bin" type="box" pos="{x:.5g} {y:.5g} {z:.5g}" size="{sx:.5g} {sy:.5g} {sz:.5g}"/>'
        for x, y, z, sx, sy, sz in walls
    )
    return f'<body name="bin" mocap="true" pos="0.2 -0.15 0">{geoms}\n    </body>'


def _cubes_xml() -> str:
    out = []
    for i, (colour, rgb) in enumerate(CUBE_COLOURS.items()):
        out.append(
            f'<body name="cube_{colour}" pos="{0.15 + 0.05 * i} 0.1 {CUBE_HALF}">'
            f'<freejoint name="cube_{colour}"/>'
            f'<geom name="cube_{colour}" class="cube" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" '
            f'rgba="{_v(rgb)} 1"/></body>'
        )
    return "\n    ".join(out)


def build_xml() -> str:
    """The whole scene as an MJCF string."""
    return f"""<mujoco model="so101_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP:.9g}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="640" offheight="480"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0 0 0"/>
  </visual>
  <default>
    <!-- arm joints: position servos; armature and damping keep 30 Hz target jumps stable -->
    <default class="arm">
      <joint axis="0 0 1" damping="1.0" armature="0.01" frictionloss="0.01"/>
      <position kp="30" forcerange="-6 6"/>
    </default>
    <default class="gripper">
      <joint axis="0 0 1" damping="0.3" armature="0.005"/>
      <position kp="8" forcerange="-2.5 2.5"/>
    </default>
    <default class="link">
      <geom contype="0" conaffinity="0" rgba="0.95 0.75 0.15 1" density="0"/>
    </default>
    <!-- arm geoms collide with the scene (bit 1) but not with each other (contype 2 vs conaffinity 1) -->
    <default class="hand">
      <geom contype="2" conaffinity="1" rgba="0.2 0.2 0.2 1" density="0"/>
    </default>
    <default class="jaw">
      <geom contype="2" conaffinity="1" rgba="0.95 0.75 0.15 1" density="0" friction="1.5 0.02 0.002"
            condim="4" solref="0.004 1"/>
    </default>
    <default class="cube">
      <geom type="box" contype="1" conaffinity="3" mass="0.03" friction="1.2 0.02 0.002" condim="4"
            solref="0.004 1"/>
    </default>
    <default class="bin">
      <geom contype="1" conaffinity="3" rgba="0.55 0.4 0.25 1"/>
    </default>
  </default>
  <worldbody>
    <geom name="table" type="box" pos="0.25 0 -0.02" size="0.45 0.5 0.02" rgba="0.78 0.76 0.72 1"
          contype="1" conaffinity="3"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="2 2 0.1" rgba="0.35 0.35 0.38 1"
          contype="0" conaffinity="0"/>
    <light pos="0.2 0 1.2" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <camera name="front" pos="{_v(FRONT_EYE)}" xyaxes="{look_at(FRONT_EYE, FRONT_TARGET)}" fovy="62"/>
    <body name="base" pos="-0.0231 -0.0208 0" quat="{_v(rpy_to_quat(0, 0, BASE_YAW))}">
      <geom class="link" type="box" size="0.035 0.035 0.04" pos="0.02 -0.023 0.04" rgba="0.2 0.2 0.2 1"/>{
        _arm_xml()
    }
    </body>
    {_bin_xml()}
    {_cubes_xml()}
  </worldbody>
  <actuator>
{
        "".join(
            f'    <position name="{j}" joint="{j}" class="{"gripper" if j == GRIPPER_JOINT else "arm"}" ctrlrange="{JOINT_LIMITS[j][0]:.6g} {JOINT_LIMITS[j][1]:.6g}"/>{chr(10)}'
            for j in JOINTS
        )
    }  </actuator>
</mujoco>
"""
