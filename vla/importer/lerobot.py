"""Reading a LeRobot policy directory (what `policy.save_pretrained` + the processors' `save_pretrained`
write): `config.json`, `model.safetensors`, `policy_preprocessor.json` / `policy_postprocessor.json` and
the normaliser's safetensors. JSON and safetensors only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from vla.importer.errors import CheckpointImportError
from vla.importer.keys import KeyRule

CONFIG = "config.json"

# How every LeRobot flow policy (SmolVLA, π0, π0.5) names its state and action projections.
STATE_PROJECTION_RULES: tuple[KeyRule, ...] = (
    KeyRule(r"model\.state_proj\.weight", "state_proj.proj.weight", transform="state_mask_columns"),
    KeyRule(r"model\.state_proj\.bias", "state_proj.proj.bias"),
)
ACTION_PROJECTION_RULES: tuple[KeyRule, ...] = (
    KeyRule(r"model\.action_in_proj\.(weight|bias)", r"flow.expert.action_in.\1"),
    KeyRule(r"model\.action_out_proj\.(weight|bias)", r"flow.expert.action_out.\1"),
)
WEIGHTS = "model.safetensors"
PROCESSOR_FILES = ("policy_preprocessor.json", "policy_postprocessor.json")
NORMALISER_STEPS = ("normalizer_processor", "unnormalizer_processor")
IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
ACTION = "action"


@dataclass
class LeRobotCheckpoint:
    """A LeRobot policy directory as read by the importer (config, weights, stats; not a runnable policy:
    that is `policies.lerobot.LeRobotPolicy`)."""

    path: Path
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    stats: dict[str, dict[str, np.ndarray]]
    norm_map: dict[str, str]  # feature type (VISUAL, STATE, ACTION) -> LeRobot normalisation mode
    rename_map: dict[str, str] = field(default_factory=dict)  # robot/dataset key -> the policy's key
    tokenizer_name: str | None = None  # the preprocessor's tokenizer step's (π0 / π0.5 name theirs there)

    @property
    def type(self) -> str:
        return str(self.config.get("type"))

    def cameras(self) -> list[str]:
        """The policy's cameras in its order, named as the robot/dataset sends them (rename_map undone):
        `observation.images.<name>` -> name; a key outside that namespace (`observation.image2`, as some
        hub checkpoints have) -> its last part (`image2`), which the robot's camera is then to be called."""
        back = {v: k for k, v in self.rename_map.items()}
        names = []
        for key, feature in self.config.get("input_features", {}).items():
            if feature.get("type") == "VISUAL":
                key = back.get(key, key)
                names.append(
                    key.removeprefix(IMAGE_PREFIX) if key.startswith(IMAGE_PREFIX) else key.split(".")[-1]
                )
        if len(set(names)) != len(names):
            raise CheckpointImportError(f"{self.path / CONFIG}: camera names {names} collide; rename them")
        return names

    def feature_dim(self, group: str, key: str) -> int:
        feature = self.config.get(group, {}).get(key)
        if feature is None:
            raise CheckpointImportError(f"{self.path / CONFIG}: no {key} in {group}")
        return int(feature["shape"][-1])


def read_policy(path: Path) -> LeRobotCheckpoint:
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointImportError(f"source={path}: not a LeRobot policy dir (needs {CONFIG} and {WEIGHTS})")
    config = json.loads((path / CONFIG).read_text())
    if not isinstance(config, dict):
        raise CheckpointImportError(f"{path / CONFIG}: not a JSON object")
    weights = load_file(str(path / WEIGHTS))
    stats, norm_map, rename = read_processors(path)
    norm_map = norm_map or {str(k): str(v) for k, v in config.get("normalization_mapping", {}).items()}
    return LeRobotCheckpoint(path, config, weights, stats, norm_map, rename, _tokenizer_name(path))


def _tokenizer_name(path: Path) -> str | None:
    file = path / PROCESSOR_FILES[0]
    if not file.is_file():
        return None
    for step in json.loads(file.read_text()).get("steps", []):
        if step.get("registry_name") == "tokenizer_processor":
            name = (step.get("config") or {}).get("tokenizer_name")
            return str(name) if name else None
    return None


NORMALISATIONS = {"MEAN_STD": "mean_std", "QUANTILES": "quantile"}


def normalisation(policy: LeRobotCheckpoint) -> str:
    """Our model.normalization for the policy's norm_map; an unsupported mapping is one clear error."""
    where = policy.path / CONFIG
    modes = {kind: policy.norm_map.get(kind, "IDENTITY") for kind in ("VISUAL", "STATE", "ACTION")}
    if modes["VISUAL"] != "IDENTITY":
        raise CheckpointImportError(
            f"{where}: normalization_mapping.VISUAL={modes['VISUAL']} is not supported"
        )
    for kind in ("STATE", "ACTION"):
        if modes[kind] not in NORMALISATIONS:
            raise CheckpointImportError(
                f"{where}: normalization_mapping.{kind}={modes[kind]} is not supported "
                f"(supported: {sorted(NORMALISATIONS)})"
            )
    if modes["STATE"] != modes["ACTION"]:
        raise CheckpointImportError(
            f"{where}: normalization_mapping STATE={modes['STATE']} and ACTION={modes['ACTION']} differ; "
            "our model normalises both one way"
        )
    return NORMALISATIONS[modes["STATE"]]


def read_processors(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str], dict[str, str]]:
    """-> (stats {feature: {mean, std, ...}}, norm_map, rename_map) from the processor files.

    Stats come from the normaliser steps' safetensors (keys `<feature>.<stat>`); the postprocessor's
    unnormaliser fills what the preprocessor lacks (LeRobot writes action stats to both)."""
    stats: dict[str, dict[str, np.ndarray]] = {}
    norm_map: dict[str, str] = {}
    rename: dict[str, str] = {}
    found = False
    for name in PROCESSOR_FILES:
        file = path / name
        if not file.is_file():
            continue
        found = True
        for step in json.loads(file.read_text()).get("steps", []):
            registry = step.get("registry_name")
            config = step.get("config", {}) or {}
            if registry == "rename_observations_processor":
                rename.update({str(k): str(v) for k, v in (config.get("rename_map") or {}).items()})
            if registry not in NORMALISER_STEPS:
                continue
            norm_map = norm_map or {str(k): str(v) for k, v in (config.get("norm_map") or {}).items()}
            state_file = step.get("state_file")
            if not state_file:
                continue
            if not (path / state_file).is_file():
                raise CheckpointImportError(f"{file}: its normaliser state file {state_file} is missing")
            for key, value in load_file(str(path / state_file)).items():
                feature, _, stat = key.rpartition(".")
                stats.setdefault(feature, {}).setdefault(stat, value.double().numpy())
    if not found:
        raise CheckpointImportError(
            f"source={path}: no {PROCESSOR_FILES[0]}; the normalisation statistics live in LeRobot's "
            "processor files (save the policy's pre/post-processors beside it)"
        )
    for feature in (STATE, ACTION):
        if feature not in stats:
            raise CheckpointImportError(f"source={path}: the processor files hold no {feature} statistics")
    return stats, norm_map, rename
