"""LeRobot's SmolVLA (`SmolVLAPolicy`, lerobot 0.6.1) -> our VLA: the key table and the config.

What each of their choices becomes here:
  VLM (SmolVLM, first num_vlm_layers layers)   backbone (family smolvlm, num_layers)
  image/text embeddings x sqrt(hidden)         backbone.embed_scale
  apply_rope with max_wavelength 1e4           backbone.fixed_rope_theta = 1e4
  resize_with_pad, padded top/left             backbone.image_resize = smolvla
  lm_expert (Llama layers, 0.75x width)        expert (width, intermediate_size, llama_norm)
  cross_attn every other layer                 expert.self_attn_every = self_attn_every_n_layers
  action tokens one block each (causal)        causal_actions
  task + "\n", the VLM's tokenizer             prompt_format = task_newline, its tokenizer
  state_proj over the padded state             state_proj over concat(state, mask), mask columns 0
  a camera missing from the batch: dropped     missing_cameras = mask

Known, measured-small differences: LeRobot's normaliser divides by std + 1e-8 (ours by std, or 1 where
std < 1e-6), a relative 1e-8/std; the attention kernels differ (fp32 rounding, ~1e-6 relative).
"""

from __future__ import annotations

from typing import Any

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
from vla.model.config import BackboneConfig, ExpertConfig, VLAConfig

_VLM = r"model\.vlm_with_expert\.vlm\.model"
_EXPERT = r"model\.vlm_with_expert\.lm_expert"

KEY_TABLE: tuple[KeyRule, ...] = (
    KeyRule(rf"{_VLM}\.vision_model\.(.+)", r"backbone.vision.\1"),
    KeyRule(rf"{_VLM}\.connector\.(.+)", r"backbone.projector.\1"),
    KeyRule(rf"{_VLM}\.text_model\.embed_tokens\.weight", "backbone.embed_tokens.weight"),
    KeyRule(rf"{_VLM}\.text_model\.layers\.(\d+)\.(.+)", r"backbone.layers.\1.\2"),
    KeyRule(rf"{_VLM}\.text_model\.norm\.weight", "backbone.norm.weight"),
    KeyRule(r"model\.vlm_with_expert\.vlm\.lm_head\.weight", "backbone.lm_head.weight"),
    KeyRule(rf"{_EXPERT}\.layers\.(\d+)\.(.+)", r"flow.expert.layers.\1.\2"),
    KeyRule(rf"{_EXPERT}\.norm\.weight", "flow.expert.norm.weight"),
    *STATE_PROJECTION_RULES,
    *ACTION_PROJECTION_RULES,
    KeyRule(r"model\.action_time_mlp_in\.(weight|bias)", r"flow.expert.time_mlp.0.\1"),
    KeyRule(r"model\.action_time_mlp_out\.(weight|bias)", r"flow.expert.time_mlp.2.\1"),
)
IGNORED: tuple[str, ...] = ()  # every SmolVLA weight has a place in our model

ROPE_THETA = 10_000.0  # LeRobot's apply_rope default, used whatever the VLM's config says
EMPTY_CAMERA = "empty_camera_"  # LeRobot's placeholders for `empty_cameras`: always fed as masked -1 images


def refuse_unsupported(policy: LeRobotCheckpoint) -> None:
    """One clear line for each option our model does not have (the first one found)."""
    c = policy.config
    where = policy.path / "config.json"
    checks = [
        (c.get("adapt_to_pi_aloha", False), "adapt_to_pi_aloha=true (ALOHA joint/gripper adaptation)"),
        (
            c.get("use_delta_joint_actions_aloha", False),
            "use_delta_joint_actions_aloha=true (relative actions)",
        ),
        (c.get("add_image_special_tokens", False), "add_image_special_tokens=true (image special tokens)"),
        (
            int(c.get("num_expert_layers", -1)) > 0
            and int(c.get("num_expert_layers", -1)) != int(c.get("num_vlm_layers", -1)),
            f"num_expert_layers={c.get('num_expert_layers')} (fewer expert layers than VLM layers)",
        ),
        (int(c.get("n_obs_steps", 1)) != 1, f"n_obs_steps={c.get('n_obs_steps')} (observation history)"),
        (c.get("resize_imgs_with_padding") is None, "resize_imgs_with_padding=null (unresized images)"),
    ]
    for bad, option in checks:
        if bad:
            raise CheckpointImportError(f"{where}: {option} is not supported by our model")
    normalisation(policy)


def translate_config(policy: LeRobotCheckpoint, vlm_config: dict[str, Any]) -> VLAConfig:
    """SmolVLAConfig (as saved) + the VLM's transformers config -> our VLAConfig."""
    refuse_unsupported(policy)
    c = policy.config
    text = vlm_config.get("text_config", {})
    vision = vlm_config.get("vision_config", {})
    hidden = int(text["hidden_size"])
    image = int(vision["image_size"])
    resize = [int(x) for x in c["resize_imgs_with_padding"]]
    if resize != [image, image]:
        raise CheckpointImportError(
            f"{policy.path / 'config.json'}: resize_imgs_with_padding={resize} is not the VLM's input size "
            f"[{image}, {image}]; not supported by our model"
        )
    layers = int(c.get("num_vlm_layers", -1))
    every = int(c.get("self_attn_every_n_layers", -1))
    cross = "cross" in str(c.get("attention_mode", "cross_attn"))
    width = int(hidden * float(c["expert_width_multiplier"]))
    expert_mlp = policy.weights.get("model.vlm_with_expert.lm_expert.layers.0.mlp.gate_proj.weight")
    if expert_mlp is None:
        raise CheckpointImportError(f"{policy.path / 'model.safetensors'}: no expert layer 0 MLP weight")
    cameras = [cam for cam in policy.cameras() if not cam.startswith(EMPTY_CAMERA)]
    return VLAConfig(
        backbone=BackboneConfig(
            family="smolvlm",
            num_layers=layers if layers > 0 else None,
            **_backbone_sizes(text, vision, vlm_config),
            freeze_vision=bool(c.get("freeze_vision_encoder", True)),
            freeze_language=bool(c.get("train_expert_only", True)),
            image_resize="smolvla",
            embed_scale=True,
            fixed_rope_theta=ROPE_THETA,
        ),
        expert=ExpertConfig(
            width=width,
            intermediate_size=int(expert_mlp.shape[0]),
            self_attn_every=(every if every > 0 else 0) if cross else 1,
            llama_norm=True,
        ),
        cameras=cameras,
        image_size=None,
        max_state_dim=int(c["max_state_dim"]),
        max_action_dim=int(c["max_action_dim"]),
        state_dim=policy.feature_dim("input_features", STATE),
        action_dim=policy.feature_dim("output_features", ACTION),
        chunk_size=int(c["chunk_size"]),
        num_steps=int(c["num_steps"]),
        max_text_tokens=int(c["tokenizer_max_length"]),
        normalization=normalisation(policy),
        time_min_period=float(c.get("min_period", 4e-3)),
        time_max_period=float(c.get("max_period", 4.0)),
        causal_actions=True,
        prompt_format="task_newline",
        missing_cameras="mask",  # LeRobot drops a missing camera (or feeds it masked): same tokens seen
    )


def _backbone_sizes(text: dict[str, Any], vision: dict[str, Any], vlm: dict[str, Any]) -> dict[str, Any]:
    """The VLM's sizes in our fields, so the written config says what the weights are (the model itself is
    rebuilt from the saved transformers config)."""
    heads = int(text["num_attention_heads"])
    return {
        "hidden_size": int(text["hidden_size"]),
        "layers": int(text["num_hidden_layers"]),
        "heads": heads,
        "kv_heads": int(text.get("num_key_value_heads", heads)),
        "head_dim": int(text.get("head_dim") or int(text["hidden_size"]) // heads),
        "intermediate_size": int(text["intermediate_size"]),
        "vocab_size": int(text["vocab_size"]),
        "rope_theta": float(
            text.get("rope_theta") or (text.get("rope_parameters") or {}).get("rope_theta", 1e4)
        ),
        "max_position_embeddings": int(text.get("max_position_embeddings", 8192)),
        "vision_hidden_size": int(vision["hidden_size"]),
        "vision_layers": int(vision["num_hidden_layers"]),
        "vision_heads": int(vision["num_attention_heads"]),
        "vision_intermediate_size": int(vision["intermediate_size"]),
        "patch_size": int(vision["patch_size"]),
        "image_size": int(vision["image_size"]),
        "pixel_shuffle": int(vlm.get("scale_factor", 2)),
    }
