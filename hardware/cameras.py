"""Cameras for real arms: OpenCV devices, and a synthetic source that behaves like one for tests.

    cam = OpenCVCamera(0, width=640, height=480, fps=30)      # or "/dev/video2"
    cam.connect()                 # opens it, checks it delivers frames of that size: a clear error if not
    frame = cam.read()            # the newest frame, H x W x 3 uint8 RGB, without waiting for the sensor
    cam.disconnect()

Both read frames in a background thread and hand out the newest one, so `read()` never blocks the control
loop for a sensor's frame period; a camera that stops delivering (unplugged) makes `read()` raise a
`CameraError` within `stale_after_s` instead of returning an old frame forever.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from vla.errors import VLAError


class CameraError(VLAError):
    """A camera that cannot be opened, delivers nothing, or went away."""


class _ThreadedCamera:
    """The shared part: a grabber thread keeps the newest frame; `read()` hands it out."""

    name = "camera"

    def __init__(self, width: int, height: int, fps: float, stale_after_s: float | None) -> None:
        if width < 1 or height < 1 or fps <= 0:
            raise CameraError(f"{self.name}: width={width}, height={height}, fps={fps} must be positive")
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.stale_after_s = stale_after_s if stale_after_s is not None else max(0.5, 10.0 / self.fps)
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._error: str | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    def _grab(self) -> np.ndarray | None:  # one frame from the device, or None when it delivers none
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def connect(self, timeout_s: float = 5.0) -> None:
        self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-grabber", daemon=True)
        self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None or self._error is not None, timeout_s):
                self.disconnect()
                raise CameraError(f"{self.name}: no frame within {timeout_s:.0f} s of opening it")
        if self._error is not None:
            error = self._error
            self.disconnect()
            raise CameraError(error)

    def _run(self) -> None:
        while not self._stop.is_set():
            error = None
            try:
                frame = self._grab()
            except Exception as e:  # the device failed: read() reports it
                frame, error = None, f"{self.name}: {e}"
            with self._cond:
                if frame is not None:
                    if frame.shape != (self.height, self.width, 3):
                        self._error = (
                            f"{self.name}: delivers {frame.shape[1]}x{frame.shape[0]} frames, "
                            f"configured {self.width}x{self.height}; set width/height to what it supports"
                        )
                        self._cond.notify_all()
                        return
                    self._frame, self._stamp = frame, time.monotonic()
                elif error is not None:
                    self._error = error
                self._cond.notify_all()
            if frame is None:
                time.sleep(0.5 / self.fps)

    def read(self) -> np.ndarray:
        """The newest frame [H, W, 3] uint8 RGB."""
        with self._cond:
            if self._thread is None:
                raise CameraError(f"{self.name}: not connected; call connect() first")
            if self._error is not None:
                raise CameraError(self._error)
            assert self._frame is not None
            age = time.monotonic() - self._stamp
            if age > self.stale_after_s:
                raise CameraError(f"{self.name}: no new frame for {age:.1f} s (unplugged?)")
            return self._frame

    def disconnect(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._close()


class OpenCVCamera(_ThreadedCamera):
    """A V4L2/USB camera through OpenCV: `index` (0, 1, …) or a device path."""

    def __init__(
        self,
        index: int | str = 0,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        stale_after_s: float | None = None,
    ) -> None:
        self.index = index
        self.name = f"camera {index}"
        super().__init__(width, height, fps, stale_after_s)
        self._cap: Any = None

    def _open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"{self.name}: cannot open it (is it connected? `ls /dev/video*` lists cameras)"
            )
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap

    def _grab(self) -> np.ndarray | None:
        import cv2

        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticCamera(_ThreadedCamera):
    """A camera for tests and dry runs: frames at `fps` (a moving gradient with the frame number), and
    `unplug()` to make it stop delivering as a pulled cable would."""

    def __init__(
        self,
        width: int = 64,
        height: int = 64,
        fps: float = 30.0,
        stale_after_s: float | None = None,
        name: str = "synthetic camera",
    ) -> None:
        self.name = name
        super().__init__(width, height, fps, stale_after_s)
        self.frames = 0
        self._unplugged = threading.Event()
        self._next = 0.0

    def _open(self) -> None:
        self._unplugged.clear()
        self._next = time.monotonic()

    def _grab(self) -> np.ndarray | None:
        if self._unplugged.is_set():
            return None
        self._next += 1.0 / self.fps
        time.sleep(max(0.0, self._next - time.monotonic()))  # the sensor's frame period
        self.frames += 1
        x = (np.arange(self.width, dtype=np.int64)[None, :] + self.frames) % 256
        y = np.arange(self.height, dtype=np.int64)[:, None] % 256
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        frame[..., 0], frame[..., 1], frame[..., 2] = x, y, self.frames % 256
        return frame

    def unplug(self) -> None:
        self._unplugged.set()
