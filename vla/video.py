"""Writing RGB frames to an mp4 file with PyAV, atomically (temp name, then rename).

    with VideoWriter("ep0.mp4", fps=30) as video:
        for frame in frames:          # H x W x 3 uint8, all the same size
            video.add(frame)

h264 (libx264) when PyAV's FFmpeg has it, else the first available of the fallbacks; the chosen codec is
`VideoWriter.codec`. A writer that is closed by an exception (or `discard()`) leaves no file behind.
"""

from __future__ import annotations

import contextlib
import functools
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vla.errors import VLAError
from vla.io import move_into_place, temporary_path

# In order of preference: h264 plays everywhere; mpeg4 part 2 is in every FFmpeg build.
CODECS: tuple[str, ...] = ("libx264", "h264", "libopenh264", "mpeg4")


@functools.cache
def pick_codec() -> str:
    """The first codec of `CODECS` that PyAV can encode with."""
    import av

    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # av raises UnknownCodecError (or ValueError in older versions)
            continue
        return name
    raise VLAError(f"no mp4 video encoder in PyAV's FFmpeg (tried {', '.join(CODECS)})")


def side_by_side(frames: list[np.ndarray]) -> np.ndarray:
    """Camera views [H_i, W_i, 3] -> one frame [max H, sum W, 3]; shorter views are padded with black."""
    height = max(f.shape[0] for f in frames)
    padded = [
        f if f.shape[0] == height else np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0))) for f in frames
    ]
    return np.concatenate(padded, axis=1)


class VideoWriter:
    """An mp4 written frame by frame; the file appears at `path` only when `close()` succeeds.

    The stream is opened on the first frame (its size fixes the video's); frames of odd size are padded
    by one black row/column because yuv420p needs even dimensions.
    """

    def __init__(self, path: str | Path, fps: int, codec: str | None = None, crf: int = 23) -> None:
        self.path = Path(path)
        self.fps = int(fps)
        self.codec = codec or pick_codec()
        self.crf = crf
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (height, width) of the stored video
        # A hidden sibling, so the rename is atomic (same file system) and a partial file is never listed.
        self._tmp = temporary_path(self.path)
        self._container: Any = None
        self._stream: Any = None

    def _open(self, height: int, width: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        stream = self._container.add_stream(self.codec, rate=Fraction(self.fps))
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, self.fps)
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        elif self.codec == "mpeg4":
            stream.options = {"qscale": "3"}  # mpeg4's default bitrate smears small frames
        self._stream = stream
        self.size = (stream.height, stream.width)

    def add(self, frame: np.ndarray) -> None:
        """Append one RGB frame [H, W, 3] uint8."""
        import av

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a video frame must be H x W x 3 uint8; got {frame.shape} {frame.dtype}")
        if self._container is None:
            self._open(frame.shape[0], frame.shape[1])
        assert self.size is not None
        height, width = self.size
        if frame.shape[0] > height or frame.shape[1] > width:
            raise ValueError(f"frame {frame.shape[:2]} is larger than the video's {self.size}")
        if frame.shape[:2] != (height, width):
            frame = np.pad(frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0)))
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames
        self._container.mux(self._stream.encode(video_frame))
        self.frames += 1

    def close(self, final_path: str | Path | None = None) -> Path | None:
        """Flush and move the file into place (at `final_path` if given); None when no frame was added."""
        if self._container is None:
            return None
        try:
            self._container.mux(self._stream.encode())  # flush the encoder's delayed frames
        finally:
            self._container.close()
            self._container = None
        target = Path(final_path) if final_path is not None else self.path
        move_into_place(self._tmp, target)
        self.path = target
        return target

    def discard(self) -> None:
        """Drop the video being written (an interrupted or failed episode)."""
        if self._container is not None:
            with contextlib.suppress(Exception):  # the file is removed anyway; a flush error is not the news
                self._container.close()
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()
