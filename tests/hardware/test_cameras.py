"""Cameras: the synthetic source behaves as an OpenCV camera would; a missing device is a clear error."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hardware.cameras import CameraError, OpenCVCamera, SyntheticCamera


def test_synthetic_camera_delivers_new_frames_at_its_rate_and_unplugs() -> None:
    cam = SyntheticCamera(width=32, height=24, fps=50, stale_after_s=0.2)
    cam.connect()
    try:
        first = cam.read()
        assert first.shape == (24, 32, 3) and first.dtype == np.uint8
        time.sleep(0.2)
        assert 5 <= cam.frames <= 20  # ~50 per second
        assert not np.array_equal(cam.read(), first)
        cam.unplug()
        time.sleep(0.3)
        with pytest.raises(CameraError, match="no new frame"):
            cam.read()
    finally:
        cam.disconnect()
    with pytest.raises(CameraError, match="not connected"):
        cam.read()


def test_missing_opencv_camera_is_a_one_line_error() -> None:
    cam = OpenCVCamera("/dev/video-nope", width=64, height=48)
    with pytest.raises(CameraError, match=r"camera /dev/video-nope: cannot open it"):
        cam.connect()
    with pytest.raises(CameraError, match="must be positive"):
        OpenCVCamera(0, width=0)
