"""vla-pretrain: pretrain the VLM a VLA wraps on image-text data; writes a transformers directory.

vla-pretrain output_dir=outputs/vlm                          # SO-101 grounding scenes, tiny VLM
vla-pretrain data=jsonl data.path=my_data/ output_dir=...    # images + JSONL from disk
vla-pretrain data=lerobot data.root=data/pick output_dir=... # a LeRobot dataset's frames + tasks
vla-pretrain output_dir=outputs/vlm resume=true              # continue after a stop
vla-train model.backbone.pretrained=outputs/vlm/model dataset.root=...
"""

from __future__ import annotations

from omegaconf import DictConfig

from vla.apps.common import hydra_app
from vla.vlm.config import PretrainConfig

APP = "vla-pretrain"


@hydra_app(APP, "pretrain", PretrainConfig)
def main(cfg: DictConfig) -> None:
    from vla.vlm.train import pretrain, summary

    print(summary(pretrain(cfg)), flush=True)


if __name__ == "__main__":
    main()
