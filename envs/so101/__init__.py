"""The simulated SO-101 tabletop: model, task suite, cameras and the gymnasium env."""

import os

# We only render offscreen: default to EGL (headless, CPU via Mesa llvmpipe when there is no GPU) unless
# the caller chose a backend. MuJoCo reads this when it is first imported, hence here.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
