"""Image augmentation on batched tensors (on the training device): random shift and colour jitter.

Each camera of each sample gets its own shift and jitter, as the random-shift augmentation of DrQ and
Diffusion Policy does; both are cheap and keep the geometry plausible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    enabled: bool = True
    shift: int = 4  # pixels of random translation (replicate-pad then random crop)
    brightness: float = 0.2  # multiplicative jitter, 1 ± brightness
    contrast: float = 0.2
    saturation: float = 0.2


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """images [B, 3, H, W] -> the same size, each translated by up to ±pad pixels (edges replicated)."""
    if pad <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")  # [B, 3, H+2p, W+2p]
    # Integer shifts through a sampling grid: one gather for the whole batch, no Python loop.
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=images.device)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=images.device)
    rows = torch.arange(h, device=images.device)[None, :] + dy[:, None]  # [B, H]
    cols = torch.arange(w, device=images.device)[None, :] + dx[:, None]  # [B, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, 3]
    return out.permute(0, 3, 1, 2).contiguous()


def colour_jitter(
    images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Brightness, contrast and saturation scaled by per-sample factors in 1 ± amount; stays in [0, 1]."""
    b = images.shape[0]

    def factor(amount: float) -> torch.Tensor:
        u = torch.rand((b, 1, 1, 1), generator=generator, device=images.device)
        return 1.0 + amount * (2.0 * u - 1.0)

    x = images * factor(cfg.brightness)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor(cfg.contrast) + mean
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    x = (x - grey) * factor(cfg.saturation) + grey
    return x.clamp(0.0, 1.0)


def augment_images(batch: dict, cameras: list[str], cfg: AugmentConfig) -> dict:
    """Return the batch with every camera augmented (a new dict; tensors are not modified in place)."""
    if not cfg.enabled:
        return batch
    out = dict(batch)
    for cam in cameras:
        key = f"observation.images.{cam}"
        out[key] = colour_jitter(random_shift(batch[key], cfg.shift), cfg)
    return out
