"""Checkpoint directory: safetensors + JSON only, written atomically (temp dir, then rename).

    model.safetensors      all weights and normalisation buffers
    config.json            {"format": "vla-model", "version": 1, "config": <resolved VLAConfig>}
    backbone_config.json   the transformers config of the backbone (rebuilds it exactly, no download)
    stats.safetensors      the dataset stats the normaliser was built from (when given)
    tokenizer.json         text tokenizer (+ text_tokenizer.json with its special ids)
    fast/                  FAST tokenizer (head=fast)

Loading never unpickles: safetensors for tensors, json for the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from vla.io import atomic_dir
from vla.model.config import ModelConfigError, VLAConfig
from vla.model.fast import FASTTokenizer
from vla.model.normalize import stats_from_flat, stats_to_flat
from vla.model.tokenizer import TextTokenizer

if TYPE_CHECKING:
    from vla.model.vla import VLAModel

FORMAT = "vla-model"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
BACKBONE_CONFIG = "backbone_config.json"
STATS = "stats.safetensors"
FAST_DIR = "fast"


def save(model: VLAModel, target: Path) -> Path:
    target = target.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target) as tmp:  # an existing checkpoint there is replaced whole
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        _write_json(tmp / CONFIG, {"format": FORMAT, "version": VERSION, "config": model.config.to_dict()})
        _write_json(tmp / BACKBONE_CONFIG, model.backbone.hf_config)
        if model.stats is not None:
            save_file(stats_to_flat(model.stats), str(tmp / STATS))
        model.text_tokenizer.save(tmp)
        if model.fast is not None:
            model.fast.tokenizer.save(tmp / FAST_DIR)
    return target


def load(cls: type[VLAModel], source: Path, device: str | torch.device) -> VLAModel:
    if not (source / CONFIG).is_file() or not (source / WEIGHTS).is_file():
        raise ModelConfigError(f"{source}: not a VLA checkpoint (needs {CONFIG} and {WEIGHTS})")
    meta = json.loads((source / CONFIG).read_text())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelConfigError(f"{source / CONFIG}: not a VLA model config (format != {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise ModelConfigError(
            f"{source / CONFIG}: unsupported version {meta.get('version')!r} (this code reads {VERSION})"
        )
    config = VLAConfig.from_dict(meta["config"])
    hf_config = json.loads((source / BACKBONE_CONFIG).read_text())
    stats = stats_from_flat(load_file(str(source / STATS))) if (source / STATS).is_file() else None
    fast = FASTTokenizer.load(source / FAST_DIR) if (source / FAST_DIR).is_dir() else None
    model = cls(
        config,
        stats=stats,
        fast_tokenizer=fast,
        text_tokenizer=TextTokenizer.load(source),
        backbone_hf_config=hf_config,
    )
    state = load_file(str(source / WEIGHTS))
    _check_state(model, state, source)
    model.load_state_dict(state, strict=True)
    return model.to(device)


def _check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """A clear error when the weights do not fit the config (edited config.json, other version)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {unexpected[:5]}" if unexpected else "",
                f"shape mismatch {shapes[:5]}" if shapes else "",
            )
            if part
        )
        raise ModelConfigError(f"{source / WEIGHTS} does not match {source / CONFIG}: {details}")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
