"""The training configuration (hydra structured config): what `vla-train` accepts and validates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from vla.train.augment import AugmentConfig


@dataclass
class DatasetSource:
    repo_id: str = "local/so101"  # a hub id (downloaded where a network exists) or any name with a local root
    root: str | None = None  # a local LeRobot v3.0 dataset directory
    episodes: list[int] | None = None  # train on these episodes only


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # max global gradient norm (0: off)


@dataclass
class CotrainConfig:
    """Co-training with image-text batches (π0.5 style), so fine-tuning keeps what the VLM learnt."""

    ratio: float = 0.0  # VLM samples per robot sample in each step (0: off)
    weight: float = 1.0  # weight of their next-token loss in the total
    # A pretraining source (configs/data/*.yaml: the SO-101 grounding scenes, a JSONL, ...); fields
    # `cameras` and `image_size` left null are filled from the dataset's.
    source: Any = None
    max_answer_tokens: int = 16
    num_workers: int = 1  # data processes for the VLM batches


@dataclass
class TrainerConfig:
    steps: int = 2000  # optimiser steps
    batch_size: int = 16  # per rank, per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    num_workers: int = 2  # data-loading processes per rank (video decoding happens there)
    cpu_threads: int | None = None  # torch threads on CPU; None: the cores left over by the loader workers
    save_every: int = 500  # checkpoint period in steps (and always at the end)
    log_every: int = 10
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    ema_decay: float | None = None  # e.g. 0.999 keeps an exponential moving average of the weights
    seed: int = 0
    strategy: str = "ddp"  # ddp | fsdp (when launched by torchrun with several processes)
    tensorboard: bool = True
    wandb: bool = False  # log to Weights & Biases too (needs `wandb` installed and a login)
    progress: bool = True
    rank_checksums: bool = False  # each rank writes a parameter fingerprint at the end (DDP tests)
    cotrain: CotrainConfig = field(default_factory=CotrainConfig)


@dataclass
class TrainConfig:
    model: Any = MISSING  # a VLAConfig (group configs/model/)
    dataset: DatasetSource = field(default_factory=DatasetSource)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    output_dir: str | None = None  # None: hydra's run (or sweep job) directory
    resume: bool = False
    init: str | None = None  # a checkpoint dir (ours or vla-import's): its weights, a fresh optimiser
