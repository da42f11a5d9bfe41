"""What `vla-pretrain` and `vla-vlm-eval` accept (hydra structured configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from vla.train.config import OptimConfig
from vla.vlm.model import VLMConfig


@dataclass
class PretrainTrainerConfig:
    steps: int = 4000  # optimiser steps
    batch_size: int = 32  # samples (questions) per step; a scene's questions share its images
    num_workers: int = 1  # data processes (scene rendering happens there)
    cpu_threads: int | None = None  # torch threads on CPU; None: the cores left over by the workers
    save_every: int = 500
    log_every: int = 10
    eval_every: int = 0  # evaluate on eval.num_items_during held-out items every N steps (0: only at the end)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # bf16 autocast on CUDA
    seed: int = 0
    tensorboard: bool = True
    progress: bool = True


@dataclass
class VLMEvalConfig:
    num_items: int = 250  # held-out items (scenes, lines, frames) evaluated at the end
    batch_items: int = 8
    examples: int = 20  # question/answer/prediction rows kept in eval.json
    num_items_during: int = 40  # items per evaluation during training (trainer.eval_every)


@dataclass
class PretrainConfig:
    vlm: VLMConfig = field(default_factory=VLMConfig)
    data: Any = MISSING  # a pretraining source (group configs/data/), its split "train"
    eval_data: Any = None  # null: `data` with split=heldout
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: PretrainTrainerConfig = field(default_factory=PretrainTrainerConfig)
    eval: VLMEvalConfig = field(default_factory=VLMEvalConfig)
    output_dir: str | None = None  # null: hydra's run dir (outputs/pretrain/<time>)
    resume: bool = False  # continue from <output_dir>/checkpoints/last


@dataclass
class VLMEvalAppConfig:
    model_dir: str = MISSING  # a directory written by vla-pretrain (its model/ or a checkpoint)
    data: Any = MISSING
    eval_data: Any = None
    eval: VLMEvalConfig = field(default_factory=VLMEvalConfig)
    device: str = "auto"
    output_dir: str | None = None
