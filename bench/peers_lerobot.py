"""LeRobot's side of bench/bench_peers.py: its SmolVLA and π0 built offline at our configurations (local
SmolVLM config, a word-level tokenizer and processor saved to a temporary directory; random weights),
and the call that times one action chunk of theirs."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASK = "pick up the red cube and put it in the bowl"
STATE_DIM = 6
ACTION_DIM = 6


class BenchError(Exception):
    """A condition that ends a worker with one clear line (exit code in `.code`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def theirs_view(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k != "task"}


def write_smolvlm_dir(cfg: Any, directory: Path) -> None:
    """A local stand-in for a hub SmolVLM repo: our backbone's SmolVLM config beside the shared tokenizer and
    processor stand-in (bench.lerobot_offline; TASK's words are among its WORDS)."""
    from bench.lerobot_offline import WORDS, write_smolvlm_processor
    from vla.model.backbone import hf_config_from_fields

    assert set(TASK.split()) <= set(WORDS), TASK
    hf_config_from_fields(cfg.backbone).save_pretrained(directory)
    write_smolvlm_processor(directory)


def features(cfg: Any, frame: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))}
    for cam in cfg.cameras:
        inputs[f"observation.images.{cam}"] = PolicyFeature(FeatureType.VISUAL, (3, *frame))
    outputs = {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}
    return inputs, outputs


def expert_width(cfg: Any) -> int:
    return int(cfg.expert.width or int(cfg.backbone.hidden_size * cfg.expert.width_ratio))


def build_smolvla(cfg: Any, frame: tuple[int, int], device: Any, dtype: Any) -> tuple[Any, dict[str, Any]]:
    import torch
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    layers = int(cfg.backbone.num_layers or cfg.backbone.layers)
    size = int(cfg.backbone.image_size)
    with tempfile.TemporaryDirectory(prefix="bench_smolvlm_") as d:
        write_smolvlm_dir(cfg, Path(d))
        config = SmolVLAConfig(
            vlm_model_name=d,
            load_vlm_weights=False,
            device=device.type,
            num_vlm_layers=layers,
            expert_width_multiplier=expert_width(cfg) / cfg.backbone.hidden_size,
            resize_imgs_with_padding=(size, size),
            chunk_size=cfg.chunk_size,
            n_action_steps=cfg.chunk_size,
            num_steps=cfg.num_steps,
            max_state_dim=cfg.max_state_dim,
            max_action_dim=cfg.max_action_dim,
            tokenizer_max_length=cfg.max_text_tokens,
            push_to_hub=False,
        )
        config.input_features, config.output_features = features(cfg, frame)
        torch.manual_seed(0)
        policy = SmolVLAPolicy(config)
    policy = policy.to(device).eval()
    if dtype != torch.float32:
        # As LeRobot runs a pretrained SmolVLA: the VLM loaded in bf16, the expert and projections in fp32.
        policy.model.vlm_with_expert.vlm.to(dtype)
        detail = f"VLM in {str(dtype).replace('torch.', '')}, action expert and projections in float32"
    else:
        detail = "float32"
    vlm = policy.model.vlm_with_expert
    info = {
        "model": "LeRobot SmolVLAPolicy",
        "call": "SmolVLAPolicy.predict_action_chunk(batch)",
        "params_m": round(count(policy) / 1e6, 2),
        "dtype": detail,
        "vlm_layers": int(vlm.num_vlm_layers),
        "expert_width": int(vlm.expert_hidden_size),
        "attention_mode": f"{config.attention_mode}, self-attention every {config.self_attn_every_n_layers} layers",
        "vision_attention": str(vlm.vlm.config.vision_config._attn_implementation),
    }
    return policy, info


def pi0_config(cfg: Any, frame: tuple[int, int], device: Any, dtype: Any) -> Any:
    import torch
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    size = int(cfg.backbone.image_size)
    config = PI0Config(
        device=device.type,
        dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
        chunk_size=cfg.chunk_size,
        n_action_steps=cfg.chunk_size,
        num_inference_steps=cfg.num_steps,
        image_resolution=(size, size),
        max_state_dim=cfg.max_state_dim,
        max_action_dim=cfg.max_action_dim,
        tokenizer_max_length=cfg.max_text_tokens,
        push_to_hub=False,
    )
    config.input_features, config.output_features = features(cfg, frame)
    return config


def pi0_params_meta(cfg: Any, frame: tuple[int, int]) -> int:
    import torch
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    config = pi0_config(cfg, frame, torch.device("cpu"), torch.float32)
    config.device = "meta"
    with torch.device("meta"):
        return count(PI0Policy(config))


def build_pi0(cfg: Any, frame: tuple[int, int], device: Any, dtype: Any) -> tuple[Any, dict[str, Any]]:
    import torch
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    if dtype not in (torch.float32, torch.bfloat16):
        raise BenchError(f"LeRobot π0 runs in float32 or bfloat16, not {dtype}")
    config = pi0_config(cfg, frame, device, dtype)
    torch.manual_seed(0)
    with torch.device(device):  # on a GPU: allocate there directly, not ~16 GB on the host first
        policy = PI0Policy(config)
    built = count(policy)
    pair = policy.model.paligemma_with_expert
    pair.paligemma.lm_head = None  # never used to sample actions
    pair.gemma_expert.lm_head = None
    gc.collect()
    policy = policy.to(device).eval()
    info = {
        "model": "LeRobot PI0Policy (gemma_2b + gemma_300m)",
        "call": "PI0Policy.predict_action_chunk(batch)",
        "params_m": round(count(policy) / 1e6, 2),
        "params_as_built_m": round(built / 1e6, 2),
        "dropped": "paligemma.lm_head, gemma_expert.lm_head (unused at inference)",
        "dtype": (
            "bfloat16, vision tower and projections kept in float32 (LeRobot's mixed precision)"
            if dtype == torch.bfloat16
            else "float32"
        ),
        "attention_mode": "joint attention every layer",
    }
    return policy, info


def theirs_call(policy: Any, batch: dict[str, Any]) -> Callable[[], Any]:
    import torch

    view = theirs_view(batch)

    def call() -> Any:
        with torch.inference_mode():
            policy.reset()
            return policy.predict_action_chunk(dict(view))

    return call


THEIRS_COMMON = {
    "attention": "eager (hand-written matmul-softmax-matmul, fp32 softmax)",
    "text_mask": "bool, True on as many tokens as our prompt has",
}
