"""vla-train: fine-tune the VLA on a LeRobot v3.0 dataset.

vla-train dataset.root=data/pick trainer.steps=2000 output_dir=outputs/train/pick
vla-train dataset.root=data/pick output_dir=outputs/train/pick resume=true     # continue
torchrun --nproc_per_node=2 -m vla.apps.train dataset.root=... output_dir=...  # data parallel
"""

from __future__ import annotations

from omegaconf import DictConfig

from vla.apps.common import hydra_app
from vla.train.config import TrainConfig

APP = "vla-train"


@hydra_app(APP, "train", TrainConfig)
def main(cfg: DictConfig) -> None:
    from vla.train.trainer import train

    result = train(cfg)
    if result.last_checkpoint is None:
        print("no checkpoint was written", flush=True)
        return
    if result.steps_run == 0 and not result.interrupted:
        print(
            f"already finished: step {result.steps} of trainer.steps={result.steps}; nothing to train "
            "(raise trainer.steps to continue)",
            flush=True,
        )
        print(f"checkpoint: {result.last_checkpoint}", flush=True)
        return
    status = "interrupted at" if result.interrupted else "finished"
    print(
        f"{status} step {result.steps}: loss {result.final_loss:.4f}, {result.samples_per_s:.1f} samples/s",
        flush=True,
    )
    print(f"checkpoint: {result.last_checkpoint}", flush=True)


if __name__ == "__main__":
    main()
