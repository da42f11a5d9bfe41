"""LeRobot's side of bench/gpu_import.py: its SmolVLA, π0 and π0.5 built offline at their real default sizes
(or, for --smoke, shrunk as the import tests build them: bench/lerobot_offline.py), random weights, saved as LeRobot saves a policy
(`save_pretrained` + its pre/post-processor files), in LeRobot's own dtype handling."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench.lerobot_offline import IMAGE, shrunk, write_tokenizer_dir, write_vlm_dir
from vla.model.config import load_config

CAMERAS = ("top", "wrist", "side")
STATE_DIM = 6  # an SO-101: 5 joints and a gripper
ACTION_DIM = 6
FRAME = (480, 640)
SMOKE_FRAME = (24, 40)
CHUNK = 50
STEPS = 10
SMOKE_GAIN = 1.0


def _features(config: Any, frame: tuple[int, int]) -> None:
    from lerobot.configs import FeatureType, PolicyFeature

    config.input_features = {"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))}
    for cam in CAMERAS:
        config.input_features[f"observation.images.{cam}"] = PolicyFeature(FeatureType.VISUAL, (3, *frame))
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}


def _stats(quantiles: bool) -> dict[str, dict[str, torch.Tensor]]:
    """Normalisation stats of a 6-joint arm (degrees), with q01/q99 for π0.5's QUANTILES."""
    g = torch.Generator().manual_seed(2)
    out = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        mean, std = torch.randn(dim, generator=g) * 20, torch.rand(dim, generator=g) * 10 + 5
        out[key] = {"mean": mean, "std": std}
        if quantiles:
            out[key] |= {"q01": mean - 2 * std, "q99": mean + 2 * std}
    return out


def _smolvla(root: Path, device: torch.device, smoke: bool) -> tuple[Any, Any, Any]:
    """LeRobot's SmolVLAPolicy (SmolVLM2-500M shape, 16 VLM layers, expert width 0.75, 512 px) and its
    processors, built from a local VLM dir."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    vlm_dir = root / "vlm"
    vlm_dir.mkdir()
    fields: dict[str, Any] = {"vlm_model_name": str(vlm_dir), "load_vlm_weights": False}
    if smoke:
        write_vlm_dir(vlm_dir)  # the import tests' tiny SmolVLM (4 layers, 64 wide, 32 px)
        fields |= {"num_vlm_layers": 4, "expert_width_multiplier": 0.5, "resize_imgs_with_padding": (32, 32)}
    else:
        backbone = load_config("smolvla").backbone  # SmolVLM2-500M's sizes, all 32 layers in the dir
        sizes = {f.name: getattr(backbone, f.name) for f in dataclasses.fields(backbone)}
        write_vlm_dir(vlm_dir, **(sizes | {"num_layers": None, "pretrained": None}))
    config = SmolVLAConfig(
        **fields,
        device=device.type,
        chunk_size=CHUNK,
        n_action_steps=CHUNK,
        num_steps=STEPS,
        push_to_hub=False,
    )
    _features(config, SMOKE_FRAME if smoke else FRAME)
    torch.manual_seed(0)
    policy = SmolVLAPolicy(config)  # 450M parameters: built on the host, as bench/peers_lerobot.py does
    pre, post = make_smolvla_pre_post_processors(config, _stats(False))
    return policy, pre, post


@contextlib.contextmanager
def _pi_module(family: str, tokenizer_dir: Path, smoke: bool) -> Iterator[tuple[Any, Any, Any]]:
    """(modeling, processor, config class) of LeRobot's π0 or π0.5, its tokenizer step naming our local
    tokenizer dir (the hub's PaliGemma tokenizer is not downloaded); --smoke: shrunk as the tests do."""
    from unittest import mock

    if family == "pi0":
        from lerobot.policies.pi0 import modeling_pi0 as modeling
        from lerobot.policies.pi0 import processor_pi0 as processor
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as config_class
    else:
        from lerobot.policies.pi05 import modeling_pi05 as modeling  # type: ignore[no-redef]
        from lerobot.policies.pi05 import processor_pi05 as processor  # type: ignore[no-redef]
        from lerobot.policies.pi05.configuration_pi05 import (  # type: ignore[assignment]
            PI05Config as config_class,
        )
    if smoke:
        with shrunk((modeling, processor), tokenizer_dir):
            yield modeling, processor, config_class
        return
    real_step = processor.TokenizerProcessorStep

    def tokenizer_step(**kwargs: Any) -> Any:
        return real_step(**(kwargs | {"tokenizer_name": str(tokenizer_dir)}))

    with mock.patch.object(processor, "TokenizerProcessorStep", tokenizer_step):
        yield modeling, processor, config_class


def _pi(
    family: str, root: Path, device: torch.device, dtype: torch.dtype, smoke: bool
) -> tuple[Any, Any, Any]:
    """LeRobot's PI0Policy / PI05Policy at its defaults (gemma_2b + gemma_300m, SigLIP, 224 px), built on the
    device in LeRobot's own dtype handling (`dtype="bfloat16"`)."""
    tokenizer_dir = root / "tokenizer"
    tokenizer_dir.mkdir()
    write_tokenizer_dir(tokenizer_dir)
    with _pi_module(family, tokenizer_dir, smoke) as (modeling, processor, config_class):
        config = config_class(
            device=device.type,
            dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
            chunk_size=CHUNK,
            n_action_steps=CHUNK,
            num_inference_steps=STEPS,
            push_to_hub=False,
            **({"image_resolution": (IMAGE, IMAGE)} if smoke else {}),
        )
        _features(config, SMOKE_FRAME if smoke else FRAME)
        torch.manual_seed(0)
        with torch.device(device):  # on a GPU: allocate there directly, not ~14 GB on the host first
            policy = getattr(modeling, "PI0Policy" if family == "pi0" else "PI05Policy")(config)
        make = getattr(processor, f"make_{family}_pre_post_processors")
        pre, post = make(config, _stats(family == "pi05"))
    return policy, pre, post


def rerandomise(module: torch.nn.Module, gain: float) -> None:
    """Matrices ~ gain/sqrt(fan_in), norm weights ~ 1 ± 0.25 gain, other vectors ~ 0.25 gain (a gain above
    ~1 makes a 10-step chunk of π0 chaotic: a 1e-6 change of the noise then moves fp32 actions by ~1e-3)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                w = torch.randn(p.shape, generator=g) * gain / math.sqrt(p[0].numel())
            else:
                w = (1.0 if "norm" in name else 0.0) + 0.25 * gain * torch.randn(p.shape, generator=g)
            p.copy_(w.to(p.dtype))


def build_theirs(
    family: str, root: Path, device: torch.device, dtype: torch.dtype, smoke: bool
) -> tuple[Any, Any, Any, Path]:
    """-> (their policy on the device in their dtype handling, pre, post, the saved policy dir)."""
    if family == "smolvla":
        policy, pre, post = _smolvla(root, device, smoke)
    else:
        policy, pre, post = _pi(family, root, device, dtype, smoke)
    if smoke:  # weights far from LeRobot's small init: the fp32 max |Δ| then tests the import
        rerandomise(policy, SMOKE_GAIN)
    source = root / "lerobot_policy"
    policy.save_pretrained(source)
    pre.save_pretrained(source)
    post.save_pretrained(source)
    if family == "smolvla" and dtype != torch.float32:
        policy.model.vlm_with_expert.vlm.to(dtype)  # LeRobot loads a pretrained VLM in bf16; the rest stays
    return policy.to(device).eval(), pre, post, source


def their_dtype(family: str, dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if dtype == torch.float32:
        return name
    if family == "smolvla":
        return f"VLM in {name}, action expert and projections in float32"
    return f"{name}, vision tower, projector and norms in float32 (LeRobot's dtype={name})"
