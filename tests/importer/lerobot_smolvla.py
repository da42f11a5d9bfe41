"""A tiny LeRobot SmolVLAPolicy built offline, saved as LeRobot saves a policy, for the import tests.

The VLM comes from a local config dir (bench.lerobot_offline.write_vlm_dir: a SmolVLM config from our size
fields, RoPE θ 1e5 like SmolVLM2's, and a word-level tokenizer). Weights are
re-randomised with a large gain: at LeRobot's initialisation (std 0.02) several real mistakes change the
actions by ~1e-7 only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from bench.lerobot_offline import WORDS, write_vlm_dir  # noqa: F401  (re-exported)

STATE_DIM = 5
ACTION_DIM = 4
CHUNK = 6
FRAME = (24, 40)  # odd aspect ratio: the resize and its padding matter
CAMERAS = ("top", "wrist")
TASKS = ["pick up the red cube", "pick up the red cube and put it in the blue bowl"]  # the 2nd is truncated


def smolvla_config(vlm_dir: Path, **overrides: Any) -> Any:
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    fields: dict[str, Any] = {
        "vlm_model_name": str(vlm_dir),
        "load_vlm_weights": False,
        "device": "cpu",
        "num_vlm_layers": 4,
        "expert_width_multiplier": 0.5,  # width 32 = kv_heads * head_dim: joint and cross k/v fit alike
        "resize_imgs_with_padding": (32, 32),
        "chunk_size": CHUNK,
        "n_action_steps": CHUNK,
        "num_steps": 3,
        "max_state_dim": 8,
        "max_action_dim": 8,
        "tokenizer_max_length": 12,
        "push_to_hub": False,
    }
    config = SmolVLAConfig(**(fields | overrides))
    config.input_features = {"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))}
    for cam in CAMERAS:
        config.input_features[f"observation.images.{cam}"] = PolicyFeature(FeatureType.VISUAL, (3, *FRAME))
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}
    return config


def rerandomise(module: torch.nn.Module, seed: int) -> None:
    """Weights at a gain where activations stay O(1) through every layer (matrices ~ 1.5/sqrt(fan_in),
    norm weights ~ 1 ± 0.5, biases ~ 0.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 1.5 / math.sqrt(p[0].numel()))
            elif "norm" in name:
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def stats(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.state": {
            "mean": torch.randn(STATE_DIM, generator=g),
            "std": torch.rand(STATE_DIM, generator=g) + 0.5,
        },
        "action": {
            "mean": torch.randn(ACTION_DIM, generator=g),
            "std": torch.rand(ACTION_DIM, generator=g) + 0.5,
        },
    }


def save_smolvla(directory: Path, vlm_dir: Path, seed: int = 0, **overrides: Any) -> Any:
    """Build, re-randomise and save a SmolVLAPolicy with its processors, as LeRobot saves one."""
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    config = smolvla_config(vlm_dir, **overrides)
    torch.manual_seed(seed)
    policy = SmolVLAPolicy(config)
    rerandomise(policy, seed + 1)
    pre, post = make_smolvla_pre_post_processors(config, stats(seed + 2))
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)
    return policy.eval()


def load_processors(directory: Path) -> tuple[Any, Any]:
    """LeRobot's pre/post-processors read back from the saved files (as lerobot's factory loads them)."""
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import (
        batch_to_transition,
        policy_action_to_transition,
        transition_to_batch,
        transition_to_policy_action,
    )

    pre = PolicyProcessorPipeline.from_pretrained(
        str(directory),
        config_filename="policy_preprocessor.json",
        to_transition=batch_to_transition,
        to_output=transition_to_batch,
    )
    post = PolicyProcessorPipeline.from_pretrained(
        str(directory),
        config_filename="policy_postprocessor.json",
        to_transition=policy_action_to_transition,
        to_output=transition_to_policy_action,
    )
    return pre, post


def observation(batch_size: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {
        f"observation.images.{cam}": torch.rand(batch_size, 3, *FRAME, generator=g) for cam in CAMERAS
    }
    batch["observation.state"] = torch.randn(batch_size, STATE_DIM, generator=g) * 2.0
    batch["task"] = [TASKS[i % len(TASKS)] for i in range(batch_size)]
    return batch
