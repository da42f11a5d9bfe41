"""`vla-train init=<checkpoint dir>`: fine-tune from a checkpoint's weights (ours, or one written by
vla-import) with a fresh optimiser, schedule and data position (`resume` instead continues a run).

The checkpoint decides the architecture (its config; `model.*` overrides do not apply); the dataset
decides what is the dataset's: cameras (names and count, in the dataset's order: the vision tower is
shared, so no weight depends on them), image size, state and action widths, and the normalisation
statistics (as LeRobot fine-tunes on a new dataset's stats).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vla.errors import VLAError
from vla.model.checkpoint import CONFIG

if TYPE_CHECKING:
    from vla.model.vla import VLAModel
    from vla.train.data import DatasetSpec

logger = logging.getLogger(__name__)


def init_chunk_size(directory: Path) -> int:
    """The checkpoint's chunk size (the dataset's action windows follow it), read before any weights."""
    if not (directory / CONFIG).is_file():
        raise VLAError(f"init={directory}: not a checkpoint directory (no {CONFIG}); vla-import writes one")
    return int(json.loads((directory / CONFIG).read_text())["config"]["chunk_size"])


def model_from_checkpoint(directory: Path, spec: DatasetSpec) -> VLAModel:
    from vla.model.vla import VLAModel

    source = VLAModel.from_pretrained(directory)
    cfg = copy.deepcopy(source.config)
    if list(cfg.cameras) != list(spec.cameras):
        logger.warning("init=%s: cameras %s -> the dataset's %s", directory, cfg.cameras, spec.cameras)
    cfg.cameras = list(spec.cameras)
    cfg.image_size = spec.model_image_size
    cfg.state_dim, cfg.action_dim = spec.state_dim, spec.action_dim
    model = VLAModel(
        cfg,
        stats=spec.stats,
        text_tokenizer=source.text_tokenizer,
        backbone_hf_config=source.backbone.hf_config,
        fast_tokenizer=source.fast.tokenizer if source.fast is not None else None,
    )
    weights = {k: v for k, v in source.state_dict().items() if not k.startswith("normalizer.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not k.startswith("normalizer.") for k in missing):
        raise VLAError(
            f"init={directory}: its weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model
