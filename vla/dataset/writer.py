"""Recording episodes into a LeRobotDataset v3.0 through LeRobot's own API.

`open_for_recording` validates the root before anything is written (writable, empty or a dataset of
the same schema when resuming), then `EpisodeWriter` adds frames, saves or drops whole episodes, and
always finalises, so the parquet files are complete whatever stops the recording.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vla.errors import VLAError
from vla.features import ACTION, TASK, Features, camera_keys

# SVT-AV1 (LeRobot's default video codec) logs a screenful per episode unless told otherwise.
os.environ.setdefault("SVT_LOG", "1")
# SVT-AV1 crashes its encoder process on tiny frames (seen at 16x16); 64 px is known to work.
MIN_VIDEO_SIDE = 64


class DatasetWriterError(VLAError):
    """The dataset root cannot be used as asked."""


def _normalise_feature(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "dtype": spec["dtype"],
        "shape": tuple(int(s) for s in spec["shape"]),
        "names": list(spec["names"]) if spec.get("names") is not None else None,
    }


def dataset_schema(features: Features, fps: int, robot_type: str | None) -> dict[str, Any]:
    """The parts of a dataset that must agree for episodes to be appended to it."""
    return {
        "fps": int(fps),
        "robot_type": robot_type,
        "features": {k: _normalise_feature(v) for k, v in features.items()},
    }


def _existing_schema(root: Path) -> dict[str, Any]:
    from lerobot.utils.constants import DEFAULT_FEATURES

    info = json.loads((root / "meta" / "info.json").read_text())
    features = {k: v for k, v in info["features"].items() if k not in DEFAULT_FEATURES}
    return dataset_schema(features, info["fps"], info.get("robot_type"))


def _schema_difference(want: dict[str, Any], have: dict[str, Any]) -> str:
    if want["fps"] != have["fps"]:
        return f"fps {want['fps']} vs {have['fps']} in the dataset"
    if want["robot_type"] != have["robot_type"]:
        return f"robot_type {want['robot_type']!r} vs {have['robot_type']!r} in the dataset"
    missing = sorted(set(have["features"]) - set(want["features"]))
    extra = sorted(set(want["features"]) - set(have["features"]))
    if missing or extra:
        return f"features differ (dataset only: {missing}, robot only: {extra})"
    for key, spec in want["features"].items():
        for attr in ("dtype", "shape", "names"):
            if spec[attr] != have["features"][key][attr]:
                return f"{key} has {attr} {spec[attr]} here but {have['features'][key][attr]} in the dataset"
    return ""


def _check_writable(root: Path) -> None:
    """Fail early, before a robot moves, if nothing can be written at or under `root`."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DatasetWriterError(f"dataset.root={root}: cannot write there ({existing} is a file)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vla-write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DatasetWriterError(f"dataset.root={root}: cannot write there ({e.strerror or e})") from None


def _is_dataset(root: Path) -> bool:
    return (root / "meta" / "info.json").is_file()


class EpisodeWriter:
    """Adds frames to a LeRobotDataset in write mode; episodes are saved or dropped whole."""

    def __init__(self, dataset: Any, features: Features, created: bool, episodes_before: int) -> None:
        self.dataset = dataset
        self.features = features
        self.created = created
        self.episodes_before = episodes_before
        self.episodes_saved = 0
        self.frames_saved = 0
        self._pending = 0
        self._closed = False

    @property
    def root(self) -> Path:
        return Path(self.dataset.root)

    @property
    def repo_id(self) -> str:
        return str(self.dataset.repo_id)

    def add_frame(self, observation: dict[str, np.ndarray], action: np.ndarray, task: str) -> None:
        frame: dict[str, Any] = {k: observation[k] for k in self.features if k != ACTION}
        frame[ACTION] = np.asarray(action, dtype=np.float32)
        frame[TASK] = task
        self.dataset.add_frame(frame)
        self._pending += 1

    def save_episode(self) -> None:
        if self._pending == 0:
            return
        self.dataset.save_episode()
        self.episodes_saved += 1
        self.frames_saved += self._pending
        self._pending = 0

    def drop_episode(self) -> None:
        if self._pending:
            self.dataset.clear_episode_buffer()
        self._pending = 0

    def close(self) -> None:
        """Drop an unfinished episode and finalise; a dataset we created and left empty is removed."""
        if self._closed:
            return
        self._closed = True
        self.drop_episode()
        self.dataset.finalize()
        if self.created and self.episodes_saved == 0:
            shutil.rmtree(self.root, ignore_errors=True)


def open_for_recording(
    root: str | Path,
    repo_id: str,
    features: Features,
    fps: int,
    robot_type: str | None,
    resume: bool,
    use_videos: bool = True,
) -> EpisodeWriter:
    """Create a dataset at `root`, or append to the one there when `resume` is true.

    Raises DatasetWriterError, naming the field and the fix, for a root that cannot be written, one that
    already holds a dataset without `resume=true`, or one whose dataset has another schema.
    """
    import datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    datasets.disable_progress_bars()  # one progress bar (ours), not one per saved episode
    root = Path(root).expanduser().absolute()
    if use_videos:
        for key in camera_keys(features):
            h, w = features[key]["shape"][:2]
            if min(h, w) < MIN_VIDEO_SIDE:
                raise DatasetWriterError(
                    f"{key} is {h}x{w}: video encoding needs at least {MIN_VIDEO_SIDE} px a side; "
                    "use a larger image_size or dataset.video=false"
                )
    else:  # frames stored as PNG images inside the parquet files
        features = {
            k: {**v, "dtype": "image"} if k in camera_keys(features) else v for k, v in features.items()
        }
    if root.exists() and not root.is_dir():
        raise DatasetWriterError(f"dataset.root={root}: exists and is not a directory")
    _check_writable(root)
    want = dataset_schema(features, fps, robot_type)
    if _is_dataset(root):
        try:
            have = _existing_schema(root)
        except (OSError, ValueError, KeyError) as e:
            raise DatasetWriterError(f"dataset.root={root}: meta/info.json is unreadable ({e})") from None
        diff = _schema_difference(want, have)
        if diff:
            raise DatasetWriterError(
                f"dataset.root={root} holds a dataset of another schema ({diff}); choose another dataset.root"
            )
        if not resume:
            raise DatasetWriterError(
                f"dataset.root={root} already holds a dataset; pass resume=true to append to it "
                "or choose another dataset.root"
            )
        dataset = LeRobotDataset.resume(repo_id, root=root)
        return EpisodeWriter(dataset, features, created=False, episodes_before=dataset.meta.total_episodes)
    if root.exists() and any(root.iterdir()):
        raise DatasetWriterError(
            f"dataset.root={root} is not empty and holds no dataset; choose another root"
        )
    if root.exists():
        root.rmdir()  # LeRobot creates the root itself and refuses an existing one
    dataset = LeRobotDataset.create(
        repo_id,
        fps,
        {k: dict(v) for k, v in features.items()},
        root=root,
        robot_type=robot_type,
        use_videos=use_videos,
    )
    return EpisodeWriter(dataset, features, created=True, episodes_before=0)
