"""The batch contract (LeRobot's feature names) and its validation.

What the trainer feeds and the policy passes at inference:

    observation.images.<cam>  float [B, 3, H, W] in [0, 1], one per configured camera
    observation.state         float [B, S], S <= max_state_dim (padded inside, with a mask)
    task                      list[str] of length B (a single str is broadcast)
    action                    float [B, chunk_size, A], A <= max_action_dim      (training only)
    action_is_pad             bool  [B, chunk_size]                              (training only, optional)

A user mistake raises `BatchError` (a ValueError and the project's VLAError) whose message names the field.
`ModelInputs` is the validated, normalised, tokenised, padded form: tensors of static shapes only, so
everything after it can be compiled or captured in a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla.errors import VLAError
from vla.model.config import VLAConfig

IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
ACTION = "action"
ACTION_IS_PAD = "action_is_pad"
TASK = "task"


def image_tensor(pixels: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Camera frames as a Robot gives them, uint8 [..., H, W, 3], -> the model's float [..., 3, H, W] in
    [0, 1]. A tensor keeps its device (a frame copied to the GPU as uint8 is converted there)."""
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.ascontiguousarray(pixels))
    return pixels.movedim(-1, -3).float() / 255.0


def state_tensor(state: np.ndarray | Any) -> torch.Tensor:
    """A Robot's `observation.state` (array or list of numbers) -> float32 tensor [..., S] on the host."""
    return torch.from_numpy(np.asarray(state, dtype=np.float32))


class BatchError(VLAError, ValueError):
    """A batch that breaks the contract; the message names the field."""


@dataclass
class ModelInputs:
    images: torch.Tensor  # [B, N_cam, 3, H, W] in [0, 1]
    text_ids: torch.Tensor  # [B, L] long, left-padded
    text_valid: torch.Tensor  # [B, L] bool
    state: torch.Tensor  # [B, max_state_dim] normalised, zero-padded
    state_mask: torch.Tensor  # [B, max_state_dim] bool, True on real dims
    actions: torch.Tensor | None = None  # [B, chunk, max_action_dim] normalised, zero-padded
    action_dim_mask: torch.Tensor | None = None  # [B, max_action_dim] bool
    action_is_pad: torch.Tensor | None = None  # [B, chunk] bool
    image_valid: torch.Tensor | None = None  # [B, N_cam] bool, False: a missing camera (None: all there)

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]


def _tensor(batch: dict[str, Any], key: str, ndim: int, what: str) -> torch.Tensor:
    if key not in batch:
        raise BatchError(f"{key}: missing from the batch ({what})")
    value = batch[key]
    if not isinstance(value, torch.Tensor):
        raise BatchError(f"{key}: expected a torch.Tensor ({what}), got {type(value).__name__}")
    if value.ndim != ndim:
        raise BatchError(f"{key}: expected {ndim} dims ({what}), got shape {tuple(value.shape)}")
    return value


def validate_batch(batch: dict[str, Any], cfg: VLAConfig, training: bool) -> list[str]:
    """Check the batch against the contract; return the task strings (one per sample)."""
    if not isinstance(batch, dict):
        raise BatchError(f"batch: expected a dict of features, got {type(batch).__name__}")
    state = _tensor(batch, STATE, 2, "[B, S] robot state")
    size = state.shape[0]
    if state.shape[1] > cfg.max_state_dim:
        raise BatchError(
            f"{STATE}: {state.shape[1]} dims is longer than model.max_state_dim={cfg.max_state_dim}; raise it"
        )
    if state.is_floating_point() and not bool(torch.isfinite(state).all()):
        raise BatchError(f"{STATE}: contains NaN or inf")
    present = [cam for cam in cfg.cameras if IMAGE_PREFIX + cam in batch]
    for cam in cfg.cameras:
        key = IMAGE_PREFIX + cam
        if key not in batch:
            if cfg.missing_cameras == "mask" and present:
                continue
            have = sorted(k for k in batch if k.startswith(IMAGE_PREFIX))
            raise BatchError(f"{key}: missing camera (model.cameras={cfg.cameras}, batch has {have})")
        image = _tensor(batch, key, 4, "[B, 3, H, W] float in [0, 1]")
        if not image.is_floating_point():
            raise BatchError(f"{key}: expected float pixels in [0, 1], got {image.dtype}")
        if image.shape[0] != size or image.shape[1] != 3:
            raise BatchError(f"{key}: expected shape [{size}, 3, H, W], got {tuple(image.shape)}")
        if cfg.image_size is not None and list(image.shape[2:]) != list(cfg.image_size):
            h, w = cfg.image_size
            raise BatchError(
                f"{key}: expected {h}x{w} images (model.image_size), got {image.shape[2]}x{image.shape[3]}"
            )
    tasks = batch.get(TASK)
    if tasks is None:
        raise BatchError(f"{TASK}: missing from the batch (list of B instruction strings)")
    if isinstance(tasks, str):
        tasks = [tasks] * size
    if (
        not isinstance(tasks, (list, tuple))
        or not all(isinstance(t, str) for t in tasks)
        or len(tasks) != size
    ):
        raise BatchError(f"{TASK}: expected a list of {size} strings, got {tasks!r:.80}")
    if training:
        action = _tensor(batch, ACTION, 3, "[B, chunk_size, A] target actions")
        if action.shape[0] != size or action.shape[1] != cfg.chunk_size:
            raise BatchError(
                f"{ACTION}: expected shape [{size}, {cfg.chunk_size}, A] (model.chunk_size), got {tuple(action.shape)}"
            )
        if action.shape[2] > cfg.max_action_dim:
            raise BatchError(
                f"{ACTION}: {action.shape[2]} dims exceeds model.max_action_dim={cfg.max_action_dim}"
            )
        if not bool(torch.isfinite(action).all()):
            raise BatchError(f"{ACTION}: contains NaN or inf")
        if ACTION_IS_PAD in batch:
            pad = _tensor(batch, ACTION_IS_PAD, 2, "[B, chunk_size] bool")
            if tuple(pad.shape) != (size, cfg.chunk_size):
                raise BatchError(
                    f"{ACTION_IS_PAD}: expected shape [{size}, {cfg.chunk_size}], got {tuple(pad.shape)}"
                )
    return list(tasks)
