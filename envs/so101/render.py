"""Offscreen cameras: one `mujoco.Renderer` per image size, with the costly effects turned off."""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Sequence

import mujoco
import numpy as np

CAMERAS: tuple[str, ...] = ("front", "wrist")

# Live rigs, closed before interpreter teardown: an EGL context freed by the garbage collector after
# the GL library has been unloaded raises noisy errors at exit.
_LIVE: weakref.WeakSet[CameraRig] = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_all() -> None:
    for rig in list(_LIVE):
        rig.close()


def _register_close_at_exit() -> None:
    """Register after the first renderer exists: mujoco registers eglTerminate when it creates its first
    context, and atexit runs handlers last-in first-out, so ours must come later to run earlier."""
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(_close_all)
        _ATEXIT_REGISTERED = True


class CameraRig:
    """Renders the named cameras of a model to H x W x 3 uint8 frames.

    One renderer (one GL context) serves every camera of one size; it is made once and reused, since
    creating a context costs far more than a frame. Shadows, reflections and multisampling dominate
    llvmpipe's render time, so they are off (multisampling in the model: `offsamples = 0`).
    """

    def __init__(self, model: mujoco.MjModel, cameras: Sequence[str], height: int, width: int) -> None:
        for cam in cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam) < 0:
                raise ValueError(f"camera {cam!r} is not in the model; choose from {CAMERAS}")
        # The offscreen buffer must hold the requested size.
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        model.vis.quality.offsamples = 0
        self.cameras = tuple(cameras)
        self.height, self.width = height, width
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        flags = self._renderer.scene.flags
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
            mujoco.mjtRndFlag.mjRND_FOG,
        ):
            flags[flag] = 0
        self._option = mujoco.MjvOption()
        self._model = model
        self._segmenter: mujoco.Renderer | None = None  # made on the first segment() call
        self._closed = False
        _LIVE.add(self)
        _register_close_at_exit()

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """One frame per camera: {name: (H, W, 3) uint8}."""
        frames = {}
        for cam in self.cameras:
            self._renderer.update_scene(data, camera=cam, scene_option=self._option)
            frames[cam] = self._renderer.render()  # a fresh array each call
        return frames

    def segment(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Segmentation render per camera: {name: (H, W, 2) int32 (object id, object type; -1: nothing)}."""
        if self._segmenter is None:
            self._segmenter = mujoco.Renderer(self._model, height=self.height, width=self.width)
            self._segmenter.enable_segmentation_rendering()
        out = {}
        for cam in self.cameras:
            self._segmenter.update_scene(data, camera=cam, scene_option=self._option)
            out[cam] = self._segmenter.render()
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._renderer.close()
            if self._segmenter is not None:
                self._segmenter.close()
