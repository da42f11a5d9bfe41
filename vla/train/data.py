"""LeRobot v3.0 datasets for training: schema checks, action chunks through `delta_timestamps`, stats.

Cameras, state and action widths and fps come from the dataset's own metadata, so any LeRobot dataset
(ours, or one recorded by `lerobot-record` with other camera names and dims) trains without code changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.errors import VLAError
from vla.robot import ACTION, IMAGE_PREFIX, STATE

logger = logging.getLogger(__name__)


@dataclass
class DatasetSpec:
    """What the model needs to know about a dataset before it is built."""

    repo_id: str
    root: str | None
    fps: int
    cameras: list[str]  # short names: observation.images.<name>
    image_size: tuple[int, int] | None  # (H, W) shared by every camera; None: the cameras' sizes differ
    state_dim: int
    action_dim: int
    tasks: list[str]
    num_episodes: int
    num_frames: int
    episode_lengths: list[int] = field(repr=False)
    stats: dict[str, dict[str, np.ndarray]] = field(repr=False)

    @property
    def model_image_size(self) -> list[int] | None:
        """`model.image_size` for this data: the cameras' [H, W], or None when their sizes differ (the
        model then resizes each camera with padding to its backbone's input, as LeRobot does)."""
        return None if self.image_size is None else list(self.image_size)


def _metadata(repo_id: str, root: str | None) -> Any:
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    if root is not None:
        info = Path(root).expanduser() / "meta" / "info.json"
        if not info.is_file():
            raise VLAError(f"dataset.root={root}: no LeRobot dataset there (meta/info.json is missing)")
    try:
        return LeRobotDatasetMetadata(repo_id, root=root)
    except VLAError:
        raise
    except Exception as e:  # hub lookups fail in many ways offline; the user needs one line
        where = f"dataset.root={root}" if root else f"dataset.repo_id={repo_id}"
        hint = "" if root else " (offline? set dataset.root to a local copy)"
        raise VLAError(f"{where}: cannot open the dataset{hint}: {str(e).splitlines()[0][:200]}") from None


def inspect_dataset(repo_id: str, root: str | None, chunk_size: int) -> DatasetSpec:
    """Read metadata only; raise VLAError naming the problem for a dataset we cannot train on."""
    meta = _metadata(repo_id, root)
    features = meta.features
    where = f"dataset {root or repo_id}"
    if ACTION not in features:
        raise VLAError(f"{where} has no '{ACTION}' feature; a policy needs actions to learn from")
    if STATE not in features:
        raise VLAError(f"{where} has no '{STATE}' feature")
    cameras = [
        k for k in features if k.startswith(IMAGE_PREFIX) and features[k]["dtype"] in ("video", "image")
    ]
    if not cameras:
        raise VLAError(f"{where} has no camera ({IMAGE_PREFIX}<name>) feature")
    shapes = {tuple(features[k]["shape"][:2]) for k in cameras}
    lengths = [int(n) for n in meta.episodes["length"]]
    if not lengths:
        raise VLAError(f"{where} holds no episodes")
    if chunk_size > max(lengths):  # LeRobot trains on such data too: the steps past the end are masked
        logger.warning(
            "model.chunk_size=%d is longer than every episode of %s (longest: %d frames): every chunk ends "
            "in padding, masked out of the loss (action_is_pad)",
            chunk_size,
            where,
            max(lengths),
        )
    stats = {
        key: {name: np.asarray(value, dtype=np.float32) for name, value in meta.stats[key].items()}
        for key in (STATE, ACTION)
        if key in meta.stats
    }
    if ACTION not in stats or STATE not in stats:
        raise VLAError(f"{where}: meta/stats.json lacks statistics for '{STATE}' or '{ACTION}'")
    return DatasetSpec(
        repo_id=repo_id,
        root=root,
        fps=int(meta.fps),
        cameras=[k[len(IMAGE_PREFIX) :] for k in cameras],
        image_size=next(iter(shapes)) if len(shapes) == 1 else None,  # type: ignore[arg-type]
        state_dim=int(features[STATE]["shape"][0]),
        action_dim=int(features[ACTION]["shape"][0]),
        tasks=[str(t) for t in meta.tasks.index],
        num_episodes=int(meta.total_episodes),
        num_frames=int(meta.total_frames),
        episode_lengths=lengths,
        stats=stats,
    )


def open_dataset(spec: DatasetSpec, chunk_size: int, episodes: list[int] | None = None) -> Any:
    """LeRobotDataset returning `action` as a [chunk_size, A] chunk with `action_is_pad` at episode ends."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    delta = {ACTION: [i / spec.fps for i in range(chunk_size)]}
    return LeRobotDataset(spec.repo_id, root=spec.root, episodes=episodes, delta_timestamps=delta)


def model_batch(raw: dict[str, Any], cameras: list[str]) -> dict[str, Any]:
    """Keep what the model consumes from a collated LeRobot batch (drop indices and timestamps)."""
    keep = [STATE, ACTION, "action_is_pad", "task", *(IMAGE_PREFIX + c for c in cameras)]
    return {k: raw[k] for k in keep if k in raw}


def to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """The batch's tensors on `device` (asynchronously from pinned memory); other values as they are."""
    import torch

    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


def training_batch(raw: dict[str, Any], cameras: list[str], device: Any, augment: Any) -> dict[str, Any]:
    """A collated batch (LeRobot's features; action chunks with `action_is_pad`) -> what one training step
    feeds the model: its keys only, on the device, images augmented (`augment`: an AugmentConfig)."""
    from vla.train.augment import augment_images

    return augment_images(to_device(model_batch(raw, cameras), device), cameras, augment)


def sample_action_chunks(
    dataset: Any, spec: DatasetSpec, chunk_size: int, count: int, seed: int
) -> np.ndarray:
    """[N, chunk_size, A] action chunks from the parquet data alone (no video decoding): to fit FAST.

    Chunks near an episode end are padded with the episode's last action, as LeRobot pads.
    """
    table = dataset.hf_dataset.with_format("numpy")
    actions = np.stack(table[ACTION]).astype(np.float32)  # [T, A]
    episode = np.asarray(table["episode_index"])  # [T]
    rng = np.random.default_rng(seed)
    starts = rng.choice(len(actions), size=min(count, len(actions)), replace=False)
    chunks = np.empty((len(starts), chunk_size, spec.action_dim), np.float32)
    for n, s in enumerate(starts):
        idx = np.arange(s, s + chunk_size).clip(max=len(actions) - 1)
        same = episode[idx] == episode[s]
        idx = np.where(same, idx, idx[same][-1])
        chunks[n] = actions[idx]
    return chunks


def fresh_video_decoders(_worker_id: int) -> None:
    """DataLoader worker_init_fn: drop video decoders inherited from the parent process.

    LeRobot caches torchcodec decoders (with their open files) in a module-level cache. A worker forked
    after the parent decoded anything inherits those entries, and the shared file offsets corrupt both
    sides' reads ("Could not push packet to decoder: Invalid data found"). Each worker opens its own.
    """
    try:
        from lerobot.datasets import video_utils
    except ImportError:
        return
    cache = getattr(video_utils, "_default_decoder_cache", None)
    if cache is not None:
        cache.clear()
