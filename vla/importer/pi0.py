"""LeRobot's π0 (`PI0Policy`, lerobot 0.6.1) -> our VLA: the key table and the config.

What each of their choices becomes here:
  PaliGemma (SigLIP, projector, Gemma)          backbone (family paligemma; sizes read from the weights)
  Gemma's sqrt(hidden) text embedding scale     inside the embedding module on both sides
  gemma_expert (Gemma layers, its own width)    expert (width, intermediate_size), every layer joint
  state_proj into the expert's stream           state_token = expert (its own block after the prefix)
  action tokens one bidirectional block         causal_actions = false
  resize_with_pad_torch (floor, centred pad)    backbone.image_resize = pi0
  task + "\\n", PaliGemma's tokenizer           prompt_format = task_newline, the preprocessor's tokenizer
  state_proj over the padded state              state_proj over concat(state, mask), mask columns 0
  a camera missing from the batch: -1, masked   missing_cameras = mask
  dtype=bfloat16 keeps SigLIP, projector, norms  keep_fp32 (under our bf16 cast: those, the state/action/
    and the projections in float32              time projections and the normaliser stay float32)

The sizes their code hard-codes (8 heads; SigLIP's 16 heads, 1e-6 norms; RoPE θ 1e4) are PaliGemma's
defaults; everything else comes from the weights' shapes. Known differences: LeRobot's π0 loss also
averages over padded actions (`action_is_pad` is ignored there; ours masks them), and its normaliser
divides by std + 1e-8.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from vla.importer.errors import CheckpointImportError
from vla.importer.keys import KeyRule
from vla.importer.lerobot import (
    ACTION,
    ACTION_PROJECTION_RULES,
    STATE,
    STATE_PROJECTION_RULES,
    LeRobotCheckpoint,
    normalisation,
)
from vla.importer.smolvla import EMPTY_CAMERA, _backbone_sizes
from vla.model.config import BackboneConfig, ExpertConfig, VLAConfig

_VLM = r"model\.paligemma_with_expert\.paligemma\.model"
_EXPERT = r"model\.paligemma_with_expert\.gemma_expert\.model"

# LeRobot's PaliGemma backbone (π0 and π0.5 alike).
PALIGEMMA_RULES: tuple[KeyRule, ...] = (
    KeyRule(rf"{_VLM}\.vision_tower\.(.+)", r"backbone.vision.\1"),
    KeyRule(rf"{_VLM}\.multi_modal_projector\.(.+)", r"backbone.projector.\1"),
    KeyRule(rf"{_VLM}\.language_model\.embed_tokens\.weight", "backbone.embed_tokens.weight"),
    KeyRule(rf"{_VLM}\.language_model\.layers\.(\d+)\.(.+)", r"backbone.layers.\1.\2"),
    KeyRule(rf"{_VLM}\.language_model\.norm\.weight", "backbone.norm.weight"),
)
KEY_TABLE: tuple[KeyRule, ...] = (
    *PALIGEMMA_RULES,
    KeyRule(rf"{_EXPERT}\.layers\.(\d+)\.(.+)", r"flow.expert.layers.\1.\2"),
    KeyRule(rf"{_EXPERT}\.norm\.weight", "flow.expert.norm.weight"),
    *STATE_PROJECTION_RULES,
    *ACTION_PROJECTION_RULES,
    KeyRule(r"model\.action_time_mlp_in\.(weight|bias)", r"flow.expert.time_mlp.0.\1"),
    KeyRule(r"model\.action_time_mlp_out\.(weight|bias)", r"flow.expert.time_mlp.2.\1"),
)
# Neither LM head is used by π0 (ours ties the backbone's logits to its embedding).
IGNORED: tuple[str, ...] = (
    r"model\.paligemma_with_expert\.paligemma\.lm_head\.weight",
    r"model\.paligemma_with_expert\.gemma_expert\.lm_head\.weight",
)

NOTES = (
    "LeRobot's π0 / π0.5 training loss also averages over padded actions (action_is_pad); ours masks them",
)
TOKENIZER = "google/paligemma-3b-pt-224"  # what LeRobot's π0 / π0.5 preprocessors name
HEADS = 8  # both Gemma variants; LeRobot's joint attention reshapes to 8 heads
VISION_HEADS = 16  # SigLIP so400m, PaliGemma's default vision config (LeRobot never changes it)
EPS = 1e-6  # Gemma's RMSNorm and SigLIP's LayerNorm defaults
ROPE_THETA = 10_000.0


def _weight(policy: LeRobotCheckpoint, key: str) -> torch.Tensor:
    tensor = policy.weights.get(key)
    if tensor is None:
        raise CheckpointImportError(f"{policy.path / 'model.safetensors'}: no {key}")
    return tensor


def _count_layers(policy: LeRobotCheckpoint, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in policy.weights if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def vlm_config(policy: LeRobotCheckpoint) -> dict[str, Any]:
    """PaliGemma's transformers config as LeRobot builds it (its defaults, its hard-coded sizes), with the
    sizes read from the weights' shapes."""
    import transformers

    classes: Any = transformers  # their dataclass-style configs confuse mypy's keyword checks
    vlm = "model.paligemma_with_expert.paligemma.model"
    embed = _weight(policy, f"{vlm}.language_model.embed_tokens.weight")  # [V, D]
    vocab, hidden = (int(x) for x in embed.shape)
    q = _weight(policy, f"{vlm}.language_model.layers.0.self_attn.q_proj.weight")  # [H*hd, D]
    k = _weight(policy, f"{vlm}.language_model.layers.0.self_attn.k_proj.weight")  # [KV*hd, D]
    head_dim = int(q.shape[0]) // HEADS
    patches = _weight(policy, f"{vlm}.vision_tower.vision_model.embeddings.patch_embedding.weight")
    positions = _weight(policy, f"{vlm}.vision_tower.vision_model.embeddings.position_embedding.weight")
    fc1 = _weight(policy, f"{vlm}.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight")
    patch = int(patches.shape[-1])
    grid = round(int(positions.shape[0]) ** 0.5)
    text = {
        "model_type": "gemma",
        "hidden_size": hidden,
        "num_hidden_layers": _count_layers(policy, f"{vlm}.language_model.layers"),
        "intermediate_size": int(
            _weight(policy, f"{vlm}.language_model.layers.0.mlp.gate_proj.weight").shape[0]
        ),
        "num_attention_heads": HEADS,
        "num_key_value_heads": int(k.shape[0]) // head_dim,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": EPS,
        "rope_theta": ROPE_THETA,
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": int(patches.shape[0]),
        "num_hidden_layers": _count_layers(policy, f"{vlm}.vision_tower.vision_model.encoder.layers"),
        "num_attention_heads": VISION_HEADS,
        "intermediate_size": int(fc1.shape[0]),
        "patch_size": patch,
        "image_size": grid * patch,
        "layer_norm_eps": EPS,
        "vision_use_head": False,
    }
    config = classes.PaliGemmaConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=hidden,
        hidden_size=hidden,
        vocab_size=vocab,
        image_token_index=vocab,
        tie_word_embeddings=True,
    )
    return dict(config.to_dict())


def refuse_unsupported(policy: LeRobotCheckpoint) -> None:
    """One clear line for each option our model does not have (the first one found)."""
    c = policy.config
    where = policy.path / "config.json"
    resolution = [int(x) for x in c.get("image_resolution", [224, 224])]
    checks = [
        (c.get("use_relative_actions", False), "use_relative_actions=true (actions relative to the state)"),
        (int(c.get("n_obs_steps", 1)) != 1, f"n_obs_steps={c.get('n_obs_steps')} (observation history)"),
        (resolution[0] != resolution[1], f"image_resolution={resolution} (not square)"),
        (
            abs(float(c.get("time_sampling_scale", 0.999)) + float(c.get("time_sampling_offset", 0.001)) - 1)
            > 1e-9,
            "time_sampling_scale + time_sampling_offset != 1 (our time range is [time_min, 1])",
        ),
    ]
    for bad, option in checks:
        if bad:
            raise CheckpointImportError(f"{where}: {option} is not supported by our model")
    normalisation(policy)


def translate_config(policy: LeRobotCheckpoint, vlm: dict[str, Any]) -> VLAConfig:
    """PI0Config (as saved) + PaliGemma's transformers config (vlm_config) -> our VLAConfig."""
    return translate_paligemma_family(
        policy, vlm, adarms=False, state_token="expert", prompt_format="task_newline"
    )


def translate_paligemma_family(
    policy: LeRobotCheckpoint, vlm: dict[str, Any], *, adarms: bool, **fields: Any
) -> VLAConfig:
    """What π0 and π0.5 share; `fields`: the VLAConfig fields where they differ."""
    refuse_unsupported(policy)
    c = policy.config
    text, vision = vlm["text_config"], vlm["vision_config"]
    image = int(vision["image_size"])
    if [int(x) for x in c.get("image_resolution", [image, image])] != [image, image]:
        raise CheckpointImportError(
            f"{policy.path / 'config.json'}: image_resolution={c.get('image_resolution')} is not the vision "
            f"tower's input size {image}; not supported by our model"
        )
    expert = "model.paligemma_with_expert.gemma_expert.model.layers.0"
    backbone_q = int(text["num_attention_heads"]) * int(text["head_dim"])
    expert_q = _weight(policy, f"{expert}.self_attn.q_proj.weight")
    expert_k = _weight(policy, f"{expert}.self_attn.k_proj.weight")
    backbone_k = int(text["num_key_value_heads"]) * int(text["head_dim"])
    if (int(expert_q.shape[0]), int(expert_k.shape[0])) != (backbone_q, backbone_k):
        raise CheckpointImportError(
            f"{policy.path / 'model.safetensors'}: the expert's attention ({tuple(expert_q.shape)}, "
            f"{tuple(expert_k.shape)}) differs from the VLM's heads; not supported by our model"
        )
    return VLAConfig(
        backbone=BackboneConfig(
            family="paligemma",
            **_backbone_sizes(text, vision, vlm),
            freeze_vision=bool(c.get("freeze_vision_encoder", False)),
            freeze_language=bool(c.get("train_expert_only", False)),
            image_resize="pi0",
        ),
        expert=ExpertConfig(
            width=int(_weight(policy, "model.action_in_proj.weight").shape[0]),
            intermediate_size=int(_weight(policy, f"{expert}.mlp.gate_proj.weight").shape[0]),
            self_attn_every=1,
            adarms=adarms,
        ),
        cameras=[cam for cam in policy.cameras() if not cam.startswith(EMPTY_CAMERA)],
        image_size=None,
        max_state_dim=int(c["max_state_dim"]),
        max_action_dim=int(c["max_action_dim"]),
        state_dim=policy.feature_dim("input_features", STATE),
        action_dim=policy.feature_dim("output_features", ACTION),
        chunk_size=int(c["chunk_size"]),
        num_steps=int(c["num_inference_steps"]),
        max_text_tokens=int(c["tokenizer_max_length"]),
        normalization=normalisation(policy),
        time_beta_alpha=float(c.get("time_sampling_beta_alpha", 1.5)),
        time_beta_beta=float(c.get("time_sampling_beta_beta", 1.0)),
        time_min=float(c.get("time_sampling_offset", 0.001)),
        time_min_period=float(c.get("min_period", 4e-3)),
        time_max_period=float(c.get("max_period", 4.0)),
        missing_cameras="mask",
        keep_fp32=True,  # under a bf16 cast, float32 where LeRobot keeps it
        **fields,
    )
