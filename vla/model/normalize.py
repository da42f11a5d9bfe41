"""Normalisation of state and actions from LeRobot dataset stats, stored with the model as buffers.

Stats look like LeRobot's `meta/stats.json`: `{"observation.state": {"mean", "std", "min", "max", "q01",
"q99"}, "action": {...}}` with numpy arrays, tensors or lists. Modes:

- `mean_std`: (x - mean) / std
- `quantile`: q01 -> -1, q99 -> +1 (π0.5 / FAST), no clipping

Both become x_norm = (x - offset) / scale with buffers padded to the model's max dims (offset 0, scale 1 on
padding). A dimension with (near) zero spread gets scale 1, so a constant joint maps to 0 instead of blowing up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vla.model.config import ModelConfigError

STATE_KEY = "observation.state"
ACTION_KEY = "action"
_MIN_SPREAD = 1e-6
_NEEDED = {"mean_std": ("mean", "std"), "quantile": ("q01", "q99")}


def _vector(stats: dict[str, Any], feature: str, name: str) -> np.ndarray:
    try:
        value = stats[feature][name]
    except (KeyError, TypeError) as e:
        raise ModelConfigError(
            f"stats[{feature!r}][{name!r}] is missing; the normalisation mode needs it"
        ) from e
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ModelConfigError(f"stats[{feature!r}][{name!r}] contains NaN or inf")
    return arr


def _offset_scale(stats: dict[str, Any], feature: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode == "mean_std":
        offset, spread = _vector(stats, feature, "mean"), _vector(stats, feature, "std")
    else:
        lo, hi = _vector(stats, feature, "q01"), _vector(stats, feature, "q99")
        offset, spread = (lo + hi) / 2.0, (hi - lo) / 2.0
    if offset.shape != spread.shape:
        raise ModelConfigError(
            f"stats[{feature!r}]: statistics of different lengths {offset.shape} / {spread.shape}"
        )
    scale = np.where(spread > _MIN_SPREAD, spread, 1.0)
    return offset, scale


class Normalizer(nn.Module):
    """State/action normalisation. `stats=None` is the identity (offset 0, scale 1)."""

    state_offset: torch.Tensor
    state_scale: torch.Tensor
    action_offset: torch.Tensor
    action_scale: torch.Tensor

    def __init__(
        self, stats: dict[str, Any] | None, mode: str, max_state_dim: int, max_action_dim: int
    ) -> None:
        super().__init__()
        if mode not in _NEEDED:
            raise ModelConfigError(f"model.normalization must be one of {sorted(_NEEDED)}, got {mode!r}")
        self.mode = mode
        self.state_dim: int | None = None
        self.action_dim: int | None = None
        for feature, prefix, width in (
            (STATE_KEY, "state", max_state_dim),
            (ACTION_KEY, "action", max_action_dim),
        ):
            offset, scale = np.zeros(width), np.ones(width)
            if stats is not None and feature in stats:
                o, s = _offset_scale(stats, feature, mode)
                if len(o) > width:
                    raise ModelConfigError(
                        f"stats[{feature!r}] has {len(o)} dims but model.max_{prefix}_dim={width}; raise it"
                    )
                offset[: len(o)], scale[: len(s)] = o, s
                setattr(self, f"{prefix}_dim", len(o))
            self.register_buffer(f"{prefix}_offset", torch.tensor(offset, dtype=torch.float32))
            self.register_buffer(f"{prefix}_scale", torch.tensor(scale, dtype=torch.float32))

    def _apply(self, fn: Any, recurse: bool = True) -> Normalizer:
        """Follow device moves but stay float32 when the model is cast (e.g. to bf16): un-normalising with
        rounded statistics would shift every action by up to 0.4% of its mean."""
        for name, buf in self._buffers.items():
            if buf is not None:
                target = fn(torch.empty(0, dtype=buf.dtype, device=buf.device)).device
                self._buffers[name] = buf.to(device=target, dtype=torch.float32)
        return self

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        """[B, S] -> [B, S] float32 (S <= max_state_dim; the first S stats apply)."""
        s = state.shape[-1]
        return (state.float() - self.state_offset[:s]) / self.state_scale[:s]

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        """[..., A] -> [..., A] float32."""
        a = action.shape[-1]
        return (action.float() - self.action_offset[:a]) / self.action_scale[:a]

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        """[..., A] normalised -> [..., A] in dataset units (float32)."""
        a = action.shape[-1]
        return action.float() * self.action_scale[:a] + self.action_offset[:a]


def stats_to_flat(stats: dict[str, Any]) -> dict[str, torch.Tensor]:
    """{"action": {"mean": ...}} -> {"action/mean": tensor} for safetensors (numeric entries only)."""
    flat: dict[str, torch.Tensor] = {}
    for feature, entries in stats.items():
        if not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                continue
            flat[f"{feature}/{name}"] = torch.from_numpy(np.ascontiguousarray(arr))
    return flat


def stats_from_flat(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        feature, _, name = key.rpartition("/")
        stats.setdefault(feature, {})[name] = value.numpy()
    return stats
