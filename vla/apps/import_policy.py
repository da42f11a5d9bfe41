"""vla-import: bring a policy trained elsewhere into our checkpoint format.

    vla-import source=path/to/lerobot/policy output=outputs/imported/smolvla
    vla-import source=lerobot/smolvla_base output=outputs/imported/smolvla_base     # where a network exists
    vla-import source=<dir> output=<dir> base_vlm=path/to/SmolVLM2-500M-Video-Instruct    # the VLM's config + tokenizer
    vla-import source=path/to/lerobot/pi05 output=outputs/imported/pi05 base_vlm=path/to/paligemma-3b-pt-224

Families: LeRobot 0.6.1's SmolVLA, π0 and π0.5 (vla/importer/{smolvla,pi0,pi05}.py), and openpi's PyTorch
π0 / π0.5 checkpoints (vla/importer/openpi.py). For π0 / π0.5 the sizes come from the weights and `base_vlm`
names the tokenizer only (default: the preprocessor's; for openpi google/paligemma-3b-pt-224).

openpi: a dir that examples/convert_jax_model_to_pytorch.py or scripts/train_pytorch.py wrote
(model.safetensors, assets/<asset_id>/norm_stats.json, the converter's config.json). What openpi keeps in
its Python training config is passed as `openpi.*` (names as in openpi's config; null: openpi's default):

    vla-import source=checkpoints/pi05_libero_pytorch output=outputs/imported/pi05_libero \
        base_vlm=path/to/paligemma-3b-pt-224 openpi.asset_id=physical-intelligence/libero \
        'openpi.cameras={base_0_rgb: front, left_wrist_0_rgb: wrist}'

    openpi.asset_id              which assets/<id>/norm_stats.json (null: the only one there)
    openpi.action_horizon        the chunk size (null: config.json's; a train_pytorch dir needs it)
    openpi.max_token_len         prompt length (null: π0 48, π0.5 200 as Pi0Config)
    openpi.num_steps             flow steps per chunk (10)
    openpi.use_quantile_norm     null: π0.5 true, π0 false (as openpi's DataConfig)
    openpi.discrete_state_input  null: π0.5 true, π0 false; anything else is refused
    openpi.cameras               our names for base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb in that
                                 order; '' or a shorter list drops one (always masked here); []: as named

The result loads wherever a checkpoint does (`vla-rollout policy.checkpoint=<output>`, `vla-deploy`,
`vla-serve`). An option our model does not implement is refused with one line naming it (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig

from vla.apps.common import hydra_app
from vla.importer.openpi import OpenpiOptions

APP = "vla-import"


@dataclass
class ImportConfig:
    source: str = MISSING  # LeRobot policy dir (config.json + model.safetensors + processor files) or hub id
    output: str = MISSING  # the checkpoint directory to write (replaced atomically)
    base_vlm: str | None = (
        None  # the VLM's config + tokenizer (π0/π0.5: tokenizer only); null: from the source
    )
    openpi: OpenpiOptions = field(default_factory=OpenpiOptions)  # openpi sources only (see above)


@hydra_app(APP, "import", ImportConfig)
def main(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    from vla.importer import import_policy

    options = OpenpiOptions(**OmegaConf.to_container(cfg.openpi))  # type: ignore[arg-type]
    summary = import_policy(cfg.source, cfg.output, cfg.base_vlm, options)
    for line in summary.lines():
        print(line, flush=True)


if __name__ == "__main__":
    main()
