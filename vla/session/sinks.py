"""What an episode produces, as `EpisodeSink`s of the driver: a LeRobot dataset, mp4 videos, a live view."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from vla.dataset import EpisodeWriter, open_for_recording
from vla.errors import VLAError
from vla.robot import EpisodicRobot, Robot, camera_keys
from vla.runner.result import EpisodeResult
from vla.session.driver import Episode

KEEP = ("all", "success")


def open_dataset(
    robot: Robot, root: str, repo_id: str, fps: float, resume: bool, video: bool = True
) -> EpisodeWriter:
    """A LeRobotDataset v3.0 at `root` with the robot's features, recorded at `fps` frames per second."""
    frames_per_s = round(fps)
    if not math.isclose(frames_per_s, fps):
        raise VLAError(f"runner.rate_hz={fps}: a recorded dataset needs a whole number of frames per second")
    features = {**robot.observation_features, **robot.action_features}
    return open_for_recording(
        root, repo_id, features, frames_per_s, robot.robot_type, resume, use_videos=video
    )


class DatasetSink:
    """Every frame (the observation and the action actually sent) into a LeRobotDataset.

    keep: all | success (a failed episode is dropped). task: the instruction recorded with each frame
    (None: the simulated robot's own, per episode). The writer is finalised on close, so an interrupted
    recording is still a loadable dataset of its finished episodes."""

    def __init__(
        self, writer: EpisodeWriter, robot: Robot, keep: str = "all", task: str | None = None
    ) -> None:
        if keep not in KEEP:
            raise VLAError(f"keep={keep}: choose one of {', '.join(KEEP)}")
        self.writer, self.keep, self.task = writer, keep, task or ""
        self.robot = robot if isinstance(robot, EpisodicRobot) else None

    def begin(self, episode: Episode) -> None:
        pass

    def step(self, observation: dict[str, np.ndarray], action: np.ndarray) -> None:
        task = self.task or (str(self.robot.task) if self.robot is not None else "")
        self.writer.add_frame(observation, action, task)

    def end(self, episode: Episode, result: EpisodeResult) -> dict[str, Any]:
        kept = result.success or self.keep == "all"
        if kept:
            self.writer.save_episode()
        else:
            self.writer.drop_episode()
        return {"kept": kept}

    def drop(self, episode: Episode) -> None:
        self.writer.drop_episode()

    def close(self) -> None:
        self.writer.close()

    def summary(self) -> dict[str, Any]:
        w = self.writer
        return {
            "root": str(w.root),
            "repo_id": w.repo_id,
            "episodes_saved": w.episodes_saved,
            "frames_saved": w.frames_saved,
            "episodes_in_dataset": w.episodes_before + w.episodes_saved,
        }


class VideoSink:
    """The first `count` episodes as mp4 (the cameras side by side, one frame per tick), named
    `<prefix>_ep<i>_<success|fail>.mp4` under `out_dir / folder`; the record gets the path relative to
    `out_dir` (None for the episodes not filmed)."""

    def __init__(self, out_dir: Path, folder: Path, prefix: str, count: int, fps: int, robot: Robot) -> None:
        self.out_dir, self.folder, self.prefix, self.count, self.fps = out_dir, folder, prefix, count, fps
        self.cams = camera_keys(robot.observation_features)
        self._video: Any = None

    def begin(self, episode: Episode) -> None:
        from vla.video import VideoWriter

        if episode.index < self.count:
            path = self.out_dir / self.folder / f"{self.prefix}_ep{episode.index}.mp4"
            self._video = VideoWriter(path, self.fps)

    def step(self, observation: dict[str, np.ndarray], action: np.ndarray) -> None:
        from vla.video import side_by_side

        if self._video is not None and self.cams:
            self._video.add(side_by_side([observation[k] for k in self.cams]))  # [H, W_front + W_wrist, 3]

    def end(self, episode: Episode, result: EpisodeResult) -> dict[str, Any]:
        video, self._video = self._video, None
        if video is None:
            return {"video": None}
        # the outcome goes into the name, so a folder listing tells it
        name = self.folder / f"{self.prefix}_ep{episode.index}_{'success' if result.success else 'fail'}.mp4"
        video.close(self.out_dir / name)
        return {"video": str(name)}

    def drop(self, episode: Episode) -> None:
        self.close()

    def close(self) -> None:
        if self._video is not None:  # no partial video is left behind
            self._video.discard()
            self._video = None


class ViewerSink:
    """A live view of the robot's cameras (an OpenCV window); a clear error without a display."""

    def __init__(self, robot: Robot) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise VLAError("display=true needs a graphical display (DISPLAY is not set); run without it")
        self.keys = camera_keys(robot.observation_features)

    def begin(self, episode: Episode) -> None:
        pass

    def step(self, observation: dict[str, np.ndarray], action: np.ndarray) -> None:
        import cv2

        frames = [np.asarray(observation[k]) for k in self.keys if k in observation]
        if frames:
            height = max(f.shape[0] for f in frames)
            padded = [np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0))) for f in frames]
            cv2.imshow("vla", cv2.cvtColor(np.concatenate(padded, axis=1), cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)

    def end(self, episode: Episode, result: EpisodeResult) -> dict[str, Any]:
        return {}

    def drop(self, episode: Episode) -> None:
        pass

    def close(self) -> None:
        pass
