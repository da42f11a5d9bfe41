"""vla-import: bring a policy trained elsewhere into our checkpoint format.

    vla-import source=path/to/lerobot/policy output=outputs/imported/smolvla
    vla-import source=lerobot/smolvla_base output=outputs/imported/smolvla_base     # where a network exists
    vla-import source=<dir> output=<dir> vlm=path/to/SmolVLM2-500M-Video-Instruct    # the VLM's config + tokenizer
    vla-import source=path/to/lerobot/pi05 output=outputs/imported/pi05 vlm=path/to/paligemma-3b-pt-224

Families: LeRobot 0.6.1's SmolVLA, π0 and π0.5 (vla/importer/{smolvla,pi0,pi05}.py). For π0 / π0.5 the
sizes come from the weights and `vlm` names the tokenizer only (default: the preprocessor's).

The result loads wherever a checkpoint does (`vla-rollout policy.checkpoint=<output>`, `vla-deploy`,
`vla-serve`). An option our model does not implement is refused with one line naming it (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from vla.apps.common import user_errors

APP = "vla-import"


@dataclass
class ImportConfig:
    source: str = MISSING  # LeRobot policy dir (config.json + model.safetensors + processor files) or hub id
    output: str = MISSING  # the checkpoint directory to write (replaced atomically)
    vlm: str | None = None  # the VLM's config + tokenizer (π0/π0.5: tokenizer only); null: from the source


ConfigStore.instance().store(name="import_schema", node=ImportConfig)


@hydra.main(version_base="1.3", config_path="pkg://configs", config_name="import")
@user_errors(APP)
def main(cfg: DictConfig) -> None:
    from vla.importer import import_policy

    summary = import_policy(cfg.source, cfg.output, cfg.vlm)
    for line in summary.lines():
        print(line, flush=True)


if __name__ == "__main__":
    main()
