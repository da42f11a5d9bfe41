"""Image-text samples for VLM pretraining, the sources that give them, and their collation.

A source is map-style: `source[i]` is a list of `VLMSample`s (a simulated scene gives several questions;
a JSONL line or a dataset frame gives one), `len(source)` items, `samples_per_item`, the camera (image)
names in order, and `vocabulary()`: texts covering every word its prompts and answers use, from which a
word-level tokenizer is built when no pretrained one is given.

    JsonlData(path)          a folder of images + a JSONL of {"image": ..., "prompt": ..., "answer": ...}
    LeRobotFrames(root)      a LeRobot dataset's frames, each answered with its task string
    envs.so101.grounding.GroundingData   generated SO-101 scenes with ground-truth answers
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from vla.errors import VLAError


@dataclass(frozen=True)
class PointTarget:
    """What one point slot of an answer must hit: the object's pixels in that image (None: not visible,
    the slot must say `none`). `label`: the word before the slot in answers with several slots
    ("front <loc..> wrist none", "red <loc..> bin <loc..>"); None for a one-slot answer."""

    camera: str
    obj: str
    mask: np.ndarray | None
    label: str | None = None


@dataclass
class VLMSample:
    images: list[np.ndarray]  # each (H, W, 3) uint8, in the source's camera order
    prompt: str
    answer: str
    kind: str = "caption"  # the question type, for per-type accuracy
    targets: tuple[PointTarget, ...] = ()  # evaluation only: one per point slot of the answer
    # Per image, an (H, W) uint8 map of object labels (0: none; k: the source's label_names[k - 1]), for
    # the optional dense patch objective (vlm.patch_loss_weight); sources without ground truth give None.
    labels: list[np.ndarray] | None = None
    # The object the question names, for the optional attention objective (vlm.attention_loss_weight):
    # (its label value in `labels`, the indices of the images it should be looked for in); None: no one.
    focus: tuple[int, tuple[int, ...]] | None = None


@runtime_checkable
class PretrainSource(Protocol):
    cameras: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> list[VLMSample]: ...

    @property
    def samples_per_item(self) -> int: ...

    def vocabulary(self) -> list[str]: ...


@runtime_checkable
class LabelledSource(PretrainSource, Protocol):
    """A source whose samples carry per-image object label maps (for the dense patch objective)."""

    label_names: tuple[str, ...]


def collate(items: Sequence[list[VLMSample]], image_size: int) -> dict[str, Any]:
    """Items (lists of samples) -> one batch: images [U, N, 3, S, S] float in [0, 1] (each image resized
    with padding to S; samples that share their images — the questions of one scene — share one entry),
    image_index [B] (sample -> entry), prompts, answers, kinds and targets as lists of length B."""
    from vla.model.backbone import resize_with_pad
    from vla.model.batch import image_tensor

    samples = [s for item in items for s in item]
    counts = {len(s.images) for s in samples}
    if len(counts) != 1:
        raise VLAError(f"pretraining samples must all have the same number of images, got {sorted(counts)}")
    pixels: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    index: list[int] = []
    seen: dict[tuple[int, ...], int] = {}
    with_labels = all(s.labels is not None for s in samples)
    for s in samples:
        key = tuple(id(im) for im in s.images)
        if key not in seen:
            seen[key] = len(pixels)
            if with_labels:
                assert s.labels is not None
                labels.append(torch.stack([_resize_labels(lab, image_size) for lab in s.labels]))
            per = [resize_with_pad(image_tensor(im)[None], image_size)[0] for im in s.images]
            pixels.append(torch.stack(per))  # [N, 3, S, S]
        index.append(seen[key])
    return {
        "images": torch.stack(pixels),  # [U, N, 3, S, S]
        "image_index": torch.tensor(index, dtype=torch.long),  # [B]
        "prompt": [s.prompt for s in samples],
        "answer": [s.answer for s in samples],
        "kind": [s.kind for s in samples],
        "targets": [s.targets for s in samples],
        **({"labels": torch.stack(labels)} if with_labels else {}),  # [U, N, S, S] uint8
        **(_focus(samples, len(samples[0].images)) if with_labels else {}),
    }


def _focus(samples: list[VLMSample], images: int) -> dict[str, torch.Tensor]:
    """focus_label [B] (0: the question names no object) and focus_images [B, N] bool."""
    label = torch.zeros(len(samples), dtype=torch.long)
    where = torch.zeros((len(samples), images), dtype=torch.bool)
    for i, s in enumerate(samples):
        if s.focus is not None:
            label[i] = s.focus[0]
            where[i, list(s.focus[1])] = True
    return {"focus_label": label, "focus_images": where}


def _resize_labels(labels: np.ndarray, size: int) -> torch.Tensor:
    """(H, W) label map -> (size, size), nearest, padded like its image (bottom/right) with 0."""
    import torch.nn.functional as F

    h, w = labels.shape
    x = torch.from_numpy(np.ascontiguousarray(labels))[None, None].float()
    if (h, w) != (size, size):
        scale = size / max(h, w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="nearest")
        x = F.pad(x, (0, size - new_w, 0, size - new_h))
    return x[0, 0].to(torch.uint8)


class Collate:
    """A picklable collate_fn for DataLoader workers."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size

    def __call__(self, items: Sequence[list[VLMSample]]) -> dict[str, Any]:
        return collate(items, self.image_size)


# ---------------------------------------------------------------------- from disk


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


class JsonlData:
    """A folder of images and a JSONL file, one sample per line:

        {"image": "imgs/0001.png", "prompt": "what colour is the cube", "answer": "red", "type": "colour"}

    `image` is a path relative to the JSONL's folder (or a list of paths: several images per sample, the
    same count on every line); `type` is optional (default "caption"). The file is checked line by line
    when the source is made: an empty file, a malformed line or a missing image is a VLAError naming it.
    `path` is the JSONL file or a folder holding exactly one `*.jsonl`.
    """

    samples_per_item = 1

    def __init__(self, path: str, split: str = "train", heldout_every: int = 0) -> None:
        file = Path(path).expanduser()
        if file.is_dir():
            found = sorted(file.glob("*.jsonl"))
            if len(found) != 1:
                raise VLAError(f"data.path={path}: a folder needs exactly one *.jsonl, found {len(found)}")
            file = found[0]
        if not file.is_file():
            raise VLAError(f"data.path={path}: no such JSONL file")
        if split not in ("train", "heldout"):
            raise VLAError(f"data.split={split!r}: choose train or heldout")
        if heldout_every < 0:
            raise VLAError(f"data.heldout_every={heldout_every}: must be ≥ 0 (0: no held-out lines)")
        self.file = file
        records = []
        counts: set[int] = set()
        with file.open() as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                records.append(self._check(line, n))
                counts.add(len(records[-1]["image"]))
        if not records:
            raise VLAError(f"data.path={file}: the JSONL holds no samples")
        if len(counts) != 1:
            raise VLAError(f"{file}: lines have different numbers of images {sorted(counts)}; use one count")
        if heldout_every:  # every k-th line is held out; the rest trains
            keep = (
                (lambda i: i % heldout_every == 0)
                if split == "heldout"
                else (lambda i: i % heldout_every != 0)
            )
            records = [r for i, r in enumerate(records) if keep(i)]
            if not records:
                raise VLAError(f"{file}: data.heldout_every={heldout_every} leaves no {split} samples")
        self.records = records
        self.cameras = tuple(f"image{i}" for i in range(counts.pop()))

    def _check(self, line: str, n: int) -> dict[str, Any]:
        where = f"{self.file}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise VLAError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise VLAError(f"{where}: each line must be a JSON object with image, prompt and answer")
        for key in ("image", "prompt", "answer"):
            if key not in rec:
                raise VLAError(f"{where}: missing {key!r}")
        for key in ("prompt", "answer"):
            if not isinstance(rec[key], str):
                raise VLAError(f"{where}: {key!r} must be a string")
        images = rec["image"] if isinstance(rec["image"], list) else [rec["image"]]
        if not images or not all(isinstance(p, str) for p in images):
            raise VLAError(f"{where}: 'image' must be a path or a non-empty list of paths")
        paths = [self.file.parent / p for p in images]
        for p in paths:
            if not p.is_file():
                raise VLAError(f"{where}: image {p} does not exist")
        kind = rec.get("type", "caption")
        if not isinstance(kind, str):
            raise VLAError(f"{where}: 'type' must be a string")
        return {"image": paths, "prompt": rec["prompt"], "answer": rec["answer"], "kind": kind}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> list[VLMSample]:
        r = self.records[index]
        return [VLMSample([_load_image(p) for p in r["image"]], r["prompt"], r["answer"], r["kind"])]

    def vocabulary(self) -> list[str]:
        return [t for r in self.records for t in (r["prompt"], r["answer"])]


class LeRobotFrames:
    """A LeRobot v3.0 dataset's frames as captioning samples: every `every`-th frame, all its cameras, the
    prompt `prompt`, the frame's task string as the answer (LeRobot's own LeRobotDataset reads it)."""

    samples_per_item = 1

    def __init__(
        self,
        root: str,
        repo_id: str = "local/dataset",
        prompt: str = "what is the robot doing",
        every: int = 10,
        split: str = "train",
        heldout_every: int = 0,
    ) -> None:
        from vla.train.data import inspect_dataset

        if every < 1:
            raise VLAError(f"data.every={every}: must be ≥ 1")
        spec = inspect_dataset(repo_id, root, 1)
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.dataset = LeRobotDataset(repo_id, root=root)
        self.cameras = tuple(spec.cameras)
        self.prompt = prompt
        self.tasks = spec.tasks
        frames = list(range(0, len(self.dataset), every))
        if heldout_every:
            held = split == "heldout"
            frames = [f for i, f in enumerate(frames) if (i % heldout_every == 0) == held]
        if not frames:
            raise VLAError(
                f"data.root={root}: no {split} frames (every={every}, heldout_every={heldout_every})"
            )
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> list[VLMSample]:
        item = self.dataset[self.frames[index]]
        images = [
            (item[f"observation.images.{c}"].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            for c in self.cameras
        ]
        return [VLMSample(images, self.prompt, str(item["task"]), "task")]

    def vocabulary(self) -> list[str]:
        return [self.prompt, *self.tasks]
