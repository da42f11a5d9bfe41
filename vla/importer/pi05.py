"""LeRobot's π0.5 (`PI05Policy`, lerobot 0.6.1) -> our VLA: the key table and the config.

π0.5 is π0's PaliGemma + Gemma expert (see vla.importer.pi0) with these differences:
  the state discretised into the prompt            state_mode = discrete, prompt_format = pi05
    ("Task: …, State: <np.digitize bins>;\\nAction: ", after the normaliser)
  no state_proj; time -> time_mlp_in/out (SiLU)    expert.adarms (time_mlp.0 / time_mlp.2)
  adaRMS norms `…layernorm.dense`, x + y·gate      AdaRMSNorm `modulation`, x + y·(1 + gate): the gate's
                                                   bias less one at import (exact)
  quantile normalisation by default                normalization = quantile

Our AdaRMSNorm keeps a plain-norm weight it never reads: no source weight maps to it (NOT_IN_SOURCE).
"""

from __future__ import annotations

from typing import Any

from vla.importer.keys import KeyRule
from vla.importer.lerobot import ACTION_PROJECTION_RULES, LeRobotCheckpoint
from vla.importer.pi0 import (
    IGNORED,
    NOTES,
    PALIGEMMA_RULES,
    TOKENIZER,
    translate_paligemma_family,
    vlm_config,
)
from vla.model.config import VLAConfig

__all__ = ["IGNORED", "KEY_TABLE", "NOTES", "NOT_IN_SOURCE", "TOKENIZER", "translate_config", "vlm_config"]

_EXPERT = r"model\.paligemma_with_expert\.gemma_expert\.model"
_NORM = r"(input_layernorm|post_attention_layernorm)"

KEY_TABLE: tuple[KeyRule, ...] = (
    *PALIGEMMA_RULES,
    KeyRule(rf"{_EXPERT}\.layers\.(\d+)\.((?:self_attn|mlp)\..+)", r"flow.expert.layers.\1.\2"),
    KeyRule(
        rf"{_EXPERT}\.layers\.(\d+)\.{_NORM}\.dense\.weight", r"flow.expert.layers.\1.\2.modulation.weight"
    ),
    KeyRule(
        rf"{_EXPERT}\.layers\.(\d+)\.{_NORM}\.dense\.bias",
        r"flow.expert.layers.\1.\2.modulation.bias",
        transform="adarms_gate_minus_one",
    ),
    KeyRule(rf"{_EXPERT}\.norm\.dense\.weight", "flow.expert.norm.modulation.weight"),
    KeyRule(
        rf"{_EXPERT}\.norm\.dense\.bias",
        "flow.expert.norm.modulation.bias",
        transform="adarms_gate_minus_one",
    ),
    *ACTION_PROJECTION_RULES,
    KeyRule(r"model\.time_mlp_in\.(weight|bias)", r"flow.expert.time_mlp.0.\1"),
    KeyRule(r"model\.time_mlp_out\.(weight|bias)", r"flow.expert.time_mlp.2.\1"),
)
NOT_IN_SOURCE: tuple[str, ...] = (
    r"flow\.expert\.layers\.\d+\.(input_layernorm|post_attention_layernorm)\.weight",
    r"flow\.expert\.norm\.weight",
)
STATE_BINS = 256  # LeRobot's Pi05PrepareStateTokenizerProcessorStep


def translate_config(policy: LeRobotCheckpoint, vlm: dict[str, Any]) -> VLAConfig:
    """PI05Config (as saved) + PaliGemma's transformers config (vlm_config) -> our VLAConfig."""
    return translate_paligemma_family(
        policy, vlm, adarms=True, state_mode="discrete", state_bins=STATE_BINS, prompt_format="pi05"
    )
