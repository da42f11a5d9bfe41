"""What the training loops share: the learning-rate schedule, seeding, the metrics logger, the output dir."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vla.errors import VLAError


def config_differences(
    requested: dict[str, Any], saved: dict[str, Any], defaults: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    """[(dotted key, value in the saved run, value asked for now)] where the two configs differ. A key the
    saved config lacks — a field added to the schema since that run started — counts as its default there,
    so upgrading the code does not block resuming a run that never set the new field."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b, d = flat(requested), flat(saved), flat(defaults)
    diffs = []
    for k in sorted(set(a) | set(b)):
        there = b[k] if k in b else d.get(k)
        here = a[k] if k in a else d.get(k)
        if here != there:
            diffs.append((k, there, here))
    return diffs


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine to `min_ratio` at `total` (a pure function of the step)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def hydra_output_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise VLAError("output_dir is required outside a hydra app; pass output_dir=...")
    return str(HydraConfig.get().runtime.output_dir)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class MetricsLogger:
    """`<out>/<jsonl>` always; TensorBoard and wandb when asked (rank 0 only). `cfg.trainer` must have
    `tensorboard` and (optionally) `wandb` flags."""

    def __init__(
        self,
        out: Path,
        cfg: DictConfig,
        enabled: bool,
        jsonl: str = "train_metrics.jsonl",
        project: str = "vla",
    ) -> None:
        self.enabled = enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        self.jsonl = open(out / jsonl, "a", buffering=1)  # noqa: SIM115 - closed in close()
        if cfg.trainer.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                print("tensorboard is not installed; logging to train_metrics.jsonl only")
        if cfg.trainer.get("wandb", False):
            try:
                import wandb
            except ImportError:
                raise VLAError("trainer.wandb=true needs the `wandb` package: pip install wandb") from None
            self.wandb = wandb.init(
                project=project, dir=str(out), config=OmegaConf.to_container(cfg, resolve=True)
            )

    def log(self, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps(record) + "\n")
        step = int(record["step"])
        for k, v in record.items():
            if k != "step" and self.tb is not None:
                self.tb.add_scalar(f"train/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log(record, step=step)

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            if self.tb is not None:
                self.tb.close()
            if self.wandb is not None:
                self.wandb.finish()


def adamw(params: list[torch.nn.Parameter], o: DictConfig) -> torch.optim.AdamW:
    """AdamW at `optim.*` (lr, betas, eps, weight decay)."""
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def make_optimizer(
    params: list[torch.nn.Parameter], o: DictConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with linear warm-up and cosine decay (`optim.*`), as every trainer here uses it."""
    optimizer = adamw(params, o)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, total_steps, o.min_lr_ratio)
    )
    return optimizer, scheduler


def apply_gradients(
    optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], grad_clip: float
) -> torch.Tensor | None:
    """The end of a training step, after the backward pass(es): clip the gradients' global norm to
    `grad_clip` (when > 0) and step the optimiser. -> the norm before clipping (None: not clipped)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else None
    optimizer.step()
    return grad_norm
