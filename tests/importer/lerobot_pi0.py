"""Tiny LeRobot PI0Policy / PI05Policy built offline, saved as LeRobot saves a policy, for the import tests.

They are built inside bench.lerobot_offline's `shrunk` (LeRobot's π0 module building tiny models), with its
word-level PaliGemma tokenizer stand-in named by the saved preprocessor instead of
`google/paligemma-3b-pt-224`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.lerobot_offline import IMAGE, WORDS, shrunk, write_tokenizer_dir  # noqa: F401  (re-exported)
from tests.importer.lerobot_smolvla import load_processors, rerandomise, stats  # noqa: F401  (re-exported)

STATE_DIM = 5
ACTION_DIM = 4
CHUNK = 6
FRAME = (24, 40)  # odd aspect ratio: the resize and its padding matter
CAMERAS = ("top", "wrist")
TASKS = ["pick up the red cube", "pick up the red cube and put it in the blue bowl"]  # the 2nd is truncated


def _features(config: Any) -> None:
    from lerobot.configs import FeatureType, PolicyFeature

    config.input_features = {"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))}
    for cam in CAMERAS:
        config.input_features[f"observation.images.{cam}"] = PolicyFeature(FeatureType.VISUAL, (3, *FRAME))
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}


COMMON: dict[str, Any] = {
    "device": "cpu",
    "chunk_size": CHUNK,
    "n_action_steps": CHUNK,
    "num_inference_steps": 3,
    "max_state_dim": 8,
    "max_action_dim": 8,
    "tokenizer_max_length": 12,
    "image_resolution": (IMAGE, IMAGE),
    "push_to_hub": False,
}


def save_pi0(directory: Path, tokenizer_dir: Path, seed: int = 0, **overrides: Any) -> Any:
    """Build, re-randomise and save a PI0Policy with its processors, as LeRobot saves one."""
    from lerobot.policies.pi0 import modeling_pi0, processor_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    config = PI0Config(**(COMMON | overrides))
    _features(config)
    with shrunk((modeling_pi0, processor_pi0), tokenizer_dir):
        torch.manual_seed(seed)
        policy = modeling_pi0.PI0Policy(config)
        pre, post = processor_pi0.make_pi0_pre_post_processors(config, stats(seed + 2))
    rerandomise(policy, seed + 1)
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)
    return policy.eval()


def quantile_stats(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """q01/q99 (π0.5's QUANTILES) beside mean/std: q01 = mean - std, q99 = mean + std."""
    out = stats(seed)
    for feature in out.values():
        feature["q01"] = feature["mean"] - feature["std"]
        feature["q99"] = feature["mean"] + feature["std"]
    return out


def save_pi05(directory: Path, tokenizer_dir: Path, seed: int = 0, **overrides: Any) -> Any:
    """Build, re-randomise and save a PI05Policy with its processors, as LeRobot saves one."""
    from lerobot.policies.pi05 import modeling_pi05, processor_pi05
    from lerobot.policies.pi05.configuration_pi05 import PI05Config

    config = PI05Config(**(COMMON | {"tokenizer_max_length": 24} | overrides))
    _features(config)
    with shrunk((modeling_pi05, processor_pi05), tokenizer_dir):
        torch.manual_seed(seed)
        policy = modeling_pi05.PI05Policy(config)
        pre, post = processor_pi05.make_pi05_pre_post_processors(config, quantile_stats(seed + 2))
    rerandomise(policy, seed + 1)
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)
    return policy.eval()


def observation(batch_size: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {
        f"observation.images.{cam}": torch.rand(batch_size, 3, *FRAME, generator=g) for cam in CAMERAS
    }
    batch["observation.state"] = torch.randn(batch_size, STATE_DIM, generator=g) * 2.0
    batch["task"] = [TASKS[i % len(TASKS)] for i in range(batch_size)]
    return batch
