"""Small models and batches for the model tests (kept tiny: the suite runs on 2 shared CPU cores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla.model.config import VLAConfig, load_config

TASKS = ["pick up the red cube", "push the button"]
STATE_DIM = 6
ACTION_DIM = 5


def small_config(*overrides: str) -> VLAConfig:
    """The `tiny` config shrunk further: 2 layers, 8-step chunks, 48x48 cameras."""
    base = [
        "backbone.layers=2",
        "backbone.hidden_size=64",
        "backbone.intermediate_size=128",
        "backbone.vocab_size=1024",
        "backbone.vision_hidden_size=32",
        "backbone.vision_layers=1",
        "backbone.vision_intermediate_size=64",
        "backbone.image_size=32",
        "expert.intermediate_size=96",
        "image_size=[48,48]",
        "chunk_size=8",
        "max_state_dim=8",
        "max_action_dim=8",
        "max_text_tokens=24",
        "num_steps=4",
    ]
    return load_config("tiny", base + list(overrides))


def toy_stats(state_dim: int = STATE_DIM, action_dim: int = ACTION_DIM) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    stats = {}
    for key, dim in (("observation.state", state_dim), ("action", action_dim)):
        mean = rng.normal(size=dim) * 10
        std = rng.uniform(0.5, 3.0, size=dim)
        stats[key] = {
            "mean": mean,
            "std": std,
            "min": mean - 3 * std,
            "max": mean + 3 * std,
            "q01": mean - 2 * std,
            "q99": mean + 2 * std,
        }
    return stats


def toy_batch(
    config: VLAConfig,
    batch_size: int = 2,
    seed: int = 0,
    with_action: bool = True,
    state_dim: int = STATE_DIM,
) -> dict[str, Any]:
    """Samples drawn around `toy_stats()` so that they normalise to roughly unit scale."""
    g = torch.Generator().manual_seed(seed)
    stats = toy_stats(state_dim)
    h, w = config.image_size or (48, 48)
    batch: dict[str, Any] = {
        f"observation.images.{cam}": torch.rand(batch_size, 3, h, w, generator=g) for cam in config.cameras
    }
    s_mean, s_std = (
        torch.tensor(stats["observation.state"][k], dtype=torch.float32) for k in ("mean", "std")
    )
    batch["observation.state"] = s_mean + s_std * torch.randn(batch_size, state_dim, generator=g)
    batch["task"] = [TASKS[i % len(TASKS)] for i in range(batch_size)]
    if with_action:
        a_mean, a_std = (torch.tensor(stats["action"][k], dtype=torch.float32) for k in ("mean", "std"))
        noise = torch.randn(batch_size, config.chunk_size, ACTION_DIM, generator=g)
        batch["action"] = a_mean + a_std * noise
        batch["action_is_pad"] = torch.zeros(batch_size, config.chunk_size, dtype=torch.bool)
    return batch
