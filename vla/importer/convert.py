"""`import_policy`: a LeRobot policy dir, an openpi PyTorch checkpoint dir (or a hub id of either) -> one of
our checkpoint directories."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla.importer import openpi, pi0, pi05, smolvla
from vla.importer.errors import CheckpointImportError
from vla.importer.keys import map_weights
from vla.importer.lerobot import read_policy
from vla.model.config import VLAConfig
from vla.model.tokenizer import TextTokenizer

# LeRobot policy type -> module with KEY_TABLE, IGNORED, translate_config (and vlm_config where the VLM's
# transformers config comes from the weights rather than from a VLM dir)
FAMILIES: dict[str, Any] = {"smolvla": smolvla, "pi0": pi0, "pi05": pi05}
SOURCE_PATTERNS = ["*.json", "*.safetensors"]  # all a hub download needs: never a pickle


@dataclass
class ImportSummary:
    output: Path
    family: str
    parameters: int
    config: VLAConfig
    vlm: str
    notes: list[str]

    def lines(self) -> list[str]:
        c = self.config
        return [
            f"imported {self.family} ({self.parameters / 1e6:.1f}M parameters) -> {self.output}",
            f"  cameras {c.cameras}, state {c.state_dim}, action {c.action_dim}, chunk {c.chunk_size}, "
            f"{c.num_steps} steps, prompt {c.max_text_tokens} tokens, VLM config and tokenizer from {self.vlm}",
            *(f"  note: {n}" for n in self.notes),
        ]


def import_policy(
    source: str | Path,
    output: str | Path,
    vlm: str | None = None,
    openpi_options: openpi.OpenpiOptions | None = None,
) -> ImportSummary:
    """Read `source` (a LeRobot policy dir, an openpi PyTorch checkpoint dir, or a hub id where a network
    exists), translate its config, map its weights through the family's key table, and write our
    checkpoint atomically to `output`. `vlm`: where the VLM's transformers config and tokenizer are
    (default: the source config's `vlm_model_name`; a local dir, or a hub id in the cache or reachable);
    for π0 / π0.5 the tokenizer only (default: the one the source's preprocessor names, or PaliGemma's),
    their sizes coming from the weights. `openpi_options`: what an openpi dir does not say (openpi only)."""
    from vla.model.vla import VLAModel

    path = _local_dir(str(source))
    from_openpi = openpi.is_openpi_dir(path)
    if from_openpi:
        policy = openpi.read_checkpoint(path, openpi_options or openpi.OpenpiOptions())
    elif openpi_options is not None and openpi_options != openpi.OpenpiOptions():
        raise CheckpointImportError(
            f"source={source}: openpi.* options apply to openpi checkpoints only, and this is not one"
        )
    else:
        policy = read_policy(path)
    family = FAMILIES.get(policy.type)
    if family is None:
        raise CheckpointImportError(
            f"source={source}: policy type {policy.type!r} is not supported (supported: {sorted(FAMILIES)})"
        )
    from_weights = getattr(family, "vlm_config", None)
    if from_weights is not None:  # π0 / π0.5: sizes from the weights, the tokenizer the preprocessor names
        vlm_name = vlm or policy.tokenizer_name or family.TOKENIZER
        vlm_config = from_weights(policy)
    else:
        vlm_name = vlm or str(policy.config.get("vlm_model_name", ""))
        if not vlm_name:
            raise CheckpointImportError(
                f"source={source}: no vlm_model_name in its config; pass base_vlm=<dir>"
            )
        vlm_config = _vlm_config(vlm_name)
    config = family.translate_config(policy, vlm_config)
    tokenizer = _tokenizer(vlm_name, config.max_text_tokens)
    weights = map_weights(policy.weights, family.KEY_TABLE, family.IGNORED, family=policy.type)
    model = VLAModel(config, stats=policy.stats, text_tokenizer=tokenizer, backbone_hf_config=vlm_config)
    _load_exactly(model, weights, str(source), getattr(family, "NOT_IN_SOURCE", ()))
    model.save_pretrained(output)
    notes = [
        f"n_action_steps={policy.config.get('n_action_steps')} in the source: choose the runner's execution "
        "horizon to match"
    ]
    if from_openpi:
        notes = [
            "openpi's clients choose how many actions of a chunk to run (e.g. replan_steps): set the "
            "runner's execution horizon to match"
        ]
        notes += list(openpi.NOTES)
    notes += list(getattr(family, "NOTES", ()))
    if policy.config.get("empty_cameras", 0):
        notes.append("its empty cameras are always masked, so they were left out of model.cameras")
    name = f"openpi {policy.type}" if from_openpi else policy.type
    return ImportSummary(Path(output).absolute(), name, model.num_parameters(), model.config, vlm_name, notes)


def _local_dir(source: str) -> Path:
    path = Path(source)
    if path.exists():
        return path
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise CheckpointImportError(f"source={source}: no such directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, allow_patterns=SOURCE_PATTERNS))
    except Exception as e:  # offline, unknown repo, no access: one line either way
        raise CheckpointImportError(
            f"source={source}: not a local dir, and the hub copy is unavailable ({type(e).__name__}); "
            "download it where a network exists and pass the directory"
        ) from None


def _vlm_config(name: str) -> dict[str, Any]:
    path = Path(name) / "config.json"
    if path.is_file():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    try:
        from transformers import AutoConfig

        return dict(AutoConfig.from_pretrained(name).to_dict())
    except (OSError, ValueError) as e:
        raise CheckpointImportError(
            f"base_vlm={name}: cannot read the VLM's transformers config ({type(e).__name__}); pass base_vlm=<local dir>"
        ) from None


PROBE_TASK = "pick up the red cube and place it in the bowl"


def _tokenizer(name: str, max_length: int) -> TextTokenizer:
    """The VLM's tokenizer as we save it (its tokenizer.json), checked to tokenize a prompt exactly as
    transformers does for LeRobot (special tokens added in Python rather than by the tokenizer.json's
    post-processor would otherwise go missing)."""
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise CheckpointImportError(
            f"base_vlm={name}: cannot load the VLM's tokenizer ({type(e).__name__}); pass base_vlm=<local dir>"
        ) from None
    tokenizer = TextTokenizer.from_hf(hf, name)
    for length in (max_length, 4):  # as given, and truncated
        want = list(hf(PROBE_TASK + "\n", max_length=length, truncation=True)["input_ids"])
        ids, valid = tokenizer.encode_prompts([PROBE_TASK], None, length, "task_newline")
        got = ids[0][valid[0]].tolist()
        if got != want:
            raise CheckpointImportError(
                f"base_vlm={name}: its tokenizer.json tokenizes a prompt as {got[:8]}, transformers as {want[:8]}; "
                "such a tokenizer is not supported"
            )
    return tokenizer


def _load_exactly(
    model: Any, weights: dict[str, Any], source: str, not_in_source: tuple[str, ...] = ()
) -> None:
    """Every weight of ours comes from the source (the normaliser's buffers come from the stats), except
    those the family names as never read by the model it builds (`not_in_source`, full-match patterns)."""
    unread = [re.compile(p) for p in not_in_source]
    expected = {
        k: v
        for k, v in model.state_dict().items()
        if not k.startswith("normalizer.") and not any(p.fullmatch(k) for p in unread)
    }
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    shapes = [
        f"{k}: source {tuple(weights[k].shape)} vs ours {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and tuple(weights[k].shape) != tuple(v.shape)
    ]
    if missing or extra or shapes:
        detail = "; ".join(
            p
            for p in (
                f"not in the source {missing[:4]}" if missing else "",
                f"no place here {extra[:4]}" if extra else "",
                f"shapes {shapes[:3]}" if shapes else "",
            )
            if p
        )
        raise CheckpointImportError(f"source={source}: its weights do not fit the translated model: {detail}")
    model.load_state_dict(weights, strict=False)
