"""openpi's PyTorch π0 / π0.5 checkpoints -> our VLA, through the LeRobot π0 / π0.5 translation.

What an openpi PyTorch checkpoint dir holds (openpi: examples/convert_jax_model_to_pytorch.py writes
a converted one, scripts/train_pytorch.py a trained one; src/openpi/shared/normalize.py the stats):
  model.safetensors                  PI0Pytorch's state dict (src/openpi/models_pytorch/pi0_pytorch.py,
                                     gemma_pytorch.py) by safetensors' `save_model`: LeRobot's π0 / π0.5
                                     names without their `model.` prefix (LeRobot ported that module tree).
                                     `save_model` keeps tied tensors once, under the first name in sorted
                                     order, so PaliGemma's token embedding may be stored only as its
                                     `paligemma.lm_head.weight`
  config.json                        the converter's: action_dim, action_horizon, paligemma_variant,
                                     action_expert_variant, precision (a train_pytorch checkpoint has none)
  assets/<asset_id>/norm_stats.json  {"norm_stats": {"state": {mean, std, q01, q99}, "actions": {…}}}
  metadata.pt, optimizer.pt          pickles: never read

The rest of openpi's config (max_token_len, discrete_state_input, the data config's use_quantile_norm
and asset_id, the sampler's num_steps, the robot's cameras) lives in Python training configs, so it comes
from `OpenpiOptions` (vla-import's `openpi.*`), defaulting to what openpi's Pi0Config / DataConfig default
to. openpi's π0 vs π0.5 is read from the weights (time_mlp_in: π0.5; action_time_mlp_in: π0).

openpi's normalisation, folded exactly into the stats we store:
  z-score   (x - mean) / (std + 1e-6)                    -> std + 1e-6
  quantile  (x - q01) / (q99 - q01 + 1e-6) * 2 - 1       -> q99 + 1e-6 (ours maps q01 -> -1, q99 -> +1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

from vla.importer.errors import CheckpointImportError
from vla.importer.keys import KeyRule, map_weights
from vla.importer.lerobot import ACTION, CONFIG, IMAGE_PREFIX, STATE, WEIGHTS, LeRobotCheckpoint

NORM_STATS = "norm_stats.json"
IMAGE_KEYS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")  # openpi's slots, in token order
EPS = 1e-6  # openpi's transforms.Normalize / Unnormalize
MAX_TOKEN_LEN = {"pi0": 48, "pi05": 200}  # Pi0Config.__post_init__
NUM_STEPS = 10  # PI0Pytorch.sample_actions

# openpi's names -> LeRobot's (whose π0 / π0.5 tables then map them to ours): the same module tree
# under LeRobot's `model.` prefix.
_MODULES = (
    r"paligemma_with_expert|state_proj|action_in_proj|action_out_proj"
    r"|action_time_mlp_in|action_time_mlp_out|time_mlp_in|time_mlp_out"
)
KEY_TABLE: tuple[KeyRule, ...] = (KeyRule(rf"((?:{_MODULES})\..+)", r"model.\1"),)
EMBED = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
TIED_EMBED = "paligemma_with_expert.paligemma.lm_head.weight"  # where save_model may keep EMBED

NOTES = (
    "openpi's π0 prompt strips the task and turns '_' and newlines into spaces; ours passes it as given "
    "(send clean tasks)",
    "openpi's policy resizes frames with PIL before the model; ours as LeRobot's π0 (torch bilinear): "
    "frames already at the vision tower's size see no difference",
    "a camera a batch lacks is masked here; some openpi robot adapters feed π0.5 an unmasked black image",
)


@dataclass
class OpenpiOptions:
    """What an openpi checkpoint dir does not say (vla-import's `openpi.*`; names follow openpi's config)."""

    asset_id: str | None = None  # which assets/<asset_id>/norm_stats.json; null: the only one there
    action_horizon: int | None = None  # chunk size; null: config.json's (required where there is none)
    max_token_len: int | None = None  # prompt length; null: openpi's default (π0 48, π0.5 200)
    num_steps: int = NUM_STEPS  # flow-matching steps per chunk
    use_quantile_norm: bool | None = None  # null: openpi's default (π0.5 true, π0 false)
    discrete_state_input: bool | None = None  # null: openpi's default (π0.5 true, π0 false)
    # our names for openpi's image keys base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb, in that order; "" (or
    # a shorter list) drops a key (always masked here); empty: the three keys as they are
    cameras: list[str] = field(default_factory=list)


def is_openpi_dir(path: Path) -> bool:
    """model.safetensors beside either the converter's config.json (no LeRobot `type`) or, with no
    config.json at all, assets/*/norm_stats.json."""
    if not (path / WEIGHTS).is_file():
        return False
    if (path / CONFIG).is_file():
        config = json.loads((path / CONFIG).read_text())
        return isinstance(config, dict) and "type" not in config and "action_horizon" in config
    return bool(_asset_ids(path))


def _asset_ids(path: Path) -> list[str]:
    """The asset ids under assets/ with a norm_stats.json (an id may hold a '/', as openpi's repo ids)."""
    assets = path / "assets"
    return (
        sorted(str(p.parent.relative_to(assets)) for p in assets.rglob(NORM_STATS)) if assets.is_dir() else []
    )


def read_norm_stats(path: Path, asset_id: str | None, quantile: bool) -> dict[str, dict[str, np.ndarray]]:
    """assets/<asset_id>/norm_stats.json -> our stats ({"observation.state": …, "action": …}) with openpi's
    epsilon folded in (see the module doc), so our normaliser computes exactly openpi's."""
    found = _asset_ids(path)
    if asset_id is None:
        if len(found) != 1:
            raise CheckpointImportError(
                f"source={path}: {len(found)} assets/<asset_id>/{NORM_STATS} ({found}); pass openpi.asset_id=<one>"
                if found
                else f"source={path}: no assets/<asset_id>/{NORM_STATS}; openpi keeps the stats there"
            )
        asset_id = found[0]
    file = path / "assets" / asset_id / NORM_STATS
    if not file.is_file():
        raise CheckpointImportError(f"openpi.asset_id={asset_id}: no {file} (there: {found})")
    data = json.loads(file.read_text())
    entries = data.get("norm_stats") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise CheckpointImportError(f"{file}: no top-level 'norm_stats' object")
    needed = ("q01", "q99") if quantile else ("mean", "std")
    stats: dict[str, dict[str, np.ndarray]] = {}
    for theirs, ours in (("state", STATE), ("actions", ACTION)):
        entry = entries.get(theirs)
        missing = [n for n in needed if not isinstance(entry, dict) or entry.get(n) is None]
        if missing:
            raise CheckpointImportError(
                f"{file}: norm_stats.{theirs} has no {missing} (needed by openpi.use_quantile_norm={quantile})"
            )
        assert isinstance(entry, dict)
        vectors: dict[str, np.ndarray] = {
            n: np.asarray(v, dtype=np.float64).reshape(-1) for n, v in entry.items() if v is not None
        }
        if "std" in vectors:
            vectors["std"] = vectors["std"] + EPS
        if "q99" in vectors:
            vectors["q99"] = vectors["q99"] + EPS
        stats[ours] = vectors
    return stats


def _untie(weights: dict[str, Any]) -> dict[str, Any]:
    """The token embedding under its own name where save_model kept it only as the tied LM head."""
    if EMBED not in weights and TIED_EMBED in weights:
        weights = dict(weights)
        weights[EMBED] = weights.pop(TIED_EMBED)
    return weights


def read_checkpoint(path: Path, options: OpenpiOptions) -> LeRobotCheckpoint:
    """An openpi PyTorch checkpoint dir -> the LeRobot policy it corresponds to (LeRobot's weight names and
    PI0Config / PI05Config fields), which the π0 / π0.5 translation then imports."""
    weights = _untie(load_file(str(path / WEIGHTS)))
    if "time_mlp_in.weight" in weights:
        family = "pi05"
    elif "action_time_mlp_in.weight" in weights:
        family = "pi0"
    else:
        raise CheckpointImportError(
            f"{path / WEIGHTS}: neither time_mlp_in (π0.5) nor action_time_mlp_in (π0); not an openpi π0 / π0.5 "
            "(π0-FAST is not supported)"
        )
    config = json.loads((path / CONFIG).read_text()) if (path / CONFIG).is_file() else {}
    horizon = options.action_horizon or config.get("action_horizon")
    if horizon is None:
        raise CheckpointImportError(
            f"source={path}: no {CONFIG} with action_horizon; pass openpi.action_horizon=<the chunk size>"
        )
    action_in = weights["action_in_proj.weight"]  # [width, action_dim]
    model_dim = int(action_in.shape[1])
    if int(config.get("action_dim", model_dim)) != model_dim:
        raise CheckpointImportError(
            f"{path / CONFIG}: action_dim={config['action_dim']} but action_in_proj takes {model_dim}"
        )
    pi05 = family == "pi05"
    discrete = pi05 if options.discrete_state_input is None else options.discrete_state_input
    if discrete != pi05:
        what = "π0.5 without the state in its prompt" if pi05 else "π0 with the state in its prompt"
        raise CheckpointImportError(
            f"openpi.discrete_state_input={str(discrete).lower()} ({what}) is not supported by our model"
        )
    quantile = pi05 if options.use_quantile_norm is None else options.use_quantile_norm
    stats = read_norm_stats(path, options.asset_id, quantile)
    dims = {}
    for key in (STATE, ACTION):
        width = len(stats[key]["q01" if quantile else "mean"])
        if width > model_dim:
            raise CheckpointImportError(
                f"norm_stats: {key} has {width} dims, more than the model's action_dim {model_dim}"
            )
        dims[key] = width
    positions = weights[
        "paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.position_embedding.weight"
    ]
    patch = weights[
        "paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight"
    ]
    image = round(int(positions.shape[0]) ** 0.5) * int(patch.shape[-1])  # openpi resizes every frame to it
    mode = "QUANTILES" if quantile else "MEAN_STD"
    lerobot_config = {
        "type": family,
        "input_features": {
            **{
                f"{IMAGE_PREFIX}{name}": {"type": "VISUAL", "shape": [3, image, image]}
                for name in _cameras(options.cameras)
            },
            STATE: {"type": "STATE", "shape": [dims[STATE]]},
        },
        "output_features": {ACTION: {"type": "ACTION", "shape": [dims[ACTION]]}},
        "chunk_size": int(horizon),
        "n_action_steps": int(horizon),
        "num_inference_steps": int(options.num_steps),
        "tokenizer_max_length": int(options.max_token_len or MAX_TOKEN_LEN[family]),
        "max_state_dim": model_dim,  # openpi pads the state to action_dim (state_proj takes action_dim)
        "max_action_dim": model_dim,
        "image_resolution": [image, image],
    }
    lerobot_weights = map_weights(weights, KEY_TABLE, (), family="openpi")
    norm_map = {"VISUAL": "IDENTITY", "STATE": mode, "ACTION": mode}
    return LeRobotCheckpoint(path, lerobot_config, lerobot_weights, stats, norm_map)


def _cameras(names: list[str]) -> list[str]:
    """Our camera names, in openpi's slot order."""
    if not names:
        return list(IMAGE_KEYS)
    kept = [str(n) for n in names if n]
    if len(names) > len(IMAGE_KEYS) or not kept or len(set(kept)) != len(kept):
        raise CheckpointImportError(
            f"openpi.cameras={list(names)}: one to three distinct names for openpi's {list(IMAGE_KEYS)}, in "
            "that order ('' drops one)"
        )
    return kept
