"""The training loop: data → augment → VLA loss → AdamW with warm-up + cosine, checkpoints, logs.

One process or many (torchrun): rank 0 writes checkpoints and logs; every rank reads its own shard of
each epoch. Resuming restores model, optimiser, scheduler, RNG and the data position, so a resumed run
follows the schedule of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vla.errors import VLAError
from vla.io import write_json_atomic, write_text_atomic
from vla.stop import GracefulStop
from vla.train import distributed, state
from vla.train.augment import AugmentConfig
from vla.train.common import (
    MetricsLogger,
    apply_gradients,
    config_differences,
    hydra_output_dir,
    make_optimizer,
    seed_everything,
)
from vla.train.data import (
    DatasetSpec,
    fresh_video_decoders,
    inspect_dataset,
    open_dataset,
    sample_action_chunks,
    to_device,
    training_batch,
)
from vla.train.init import init_chunk_size, model_from_checkpoint
from vla.train.sampler import ResumableShuffleSampler


@dataclass
class TrainResult:
    output_dir: Path
    last_checkpoint: Path | None
    steps: int
    final_loss: float  # nan when this call ran no step (resumed at trainer.steps)
    samples_per_s: float
    interrupted: bool
    steps_run: int = 0  # steps this call ran (0: the run was already at trainer.steps)


def _model_config(cfg: DictConfig, spec: DatasetSpec) -> Any:
    """The requested model config with what the dataset decides: cameras, image size, dims."""
    from vla.model.config import coerce_config

    model_cfg = coerce_config(OmegaConf.to_container(cfg.model, resolve=True))
    model_cfg.cameras = list(spec.cameras)
    model_cfg.image_size = spec.model_image_size
    model_cfg.state_dim = spec.state_dim
    model_cfg.action_dim = spec.action_dim
    return model_cfg


def _check_same_model(requested: dict[str, Any], saved: dict[str, Any], where: Path) -> None:
    from vla.model.config import VLAConfig

    diff = config_differences(requested, saved, VLAConfig().to_dict())
    if diff:
        k, there, here = diff[0]
        raise VLAError(
            f"checkpoint {where} was trained with another model config (model.{k}={there!r} there, "
            f"{here!r} here{f'; {len(diff) - 1} more differences' if len(diff) > 1 else ''}); "
            "resume with the same model, or choose a new output_dir"
        )


def _cotrain_batches(
    cfg: DictConfig, model: Any, spec: DatasetSpec, progress: dict[str, Any], rank: int, world: int
) -> Iterator[dict[str, Any]] | None:
    """VLM batches for co-training (trainer.cotrain), resumable like the robot data: their sampler's
    position is kept in progress["cotrain"]. None when trainer.cotrain.ratio is 0."""
    from vla.train.cotrain import VLM_KEYS, cotrain_source, items_per_batch
    from vla.vlm.samples import Collate

    c = cfg.trainer.cotrain
    if c.ratio < 0 or c.weight < 0:
        raise VLAError("trainer.cotrain.ratio and trainer.cotrain.weight must be ≥ 0")
    if c.ratio == 0:
        return None
    size = spec.image_size[0] if spec.image_size else model.backbone.image_size
    source = cotrain_source(c.source, model, spec.cameras, int(size))
    items = items_per_batch(c.ratio, cfg.trainer.batch_size, source.samples_per_item)
    sampler = ResumableShuffleSampler(len(source), cfg.trainer.seed + 1, rank, world)
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        source,  # type: ignore[arg-type]
        batch_size=items,
        sampler=sampler,
        drop_last=True,
        num_workers=c.num_workers,
        collate_fn=Collate(model.backbone.image_size),
    )
    where = progress.setdefault("cotrain", {"epoch": 0, "position": 0})

    def stream() -> Iterator[dict[str, Any]]:
        while True:
            sampler.set_position(where["epoch"], where["position"])
            for batch in loader:
                where["position"] += items
                yield {k: v for k, v in batch.items() if k in VLM_KEYS}
            where["epoch"] += 1
            where["position"] = 0

    return stream()


def train(cfg: DictConfig) -> TrainResult:
    from tqdm import tqdm

    from vla.model.vla import VLAModel

    t = cfg.trainer
    if t.steps <= 0 or t.batch_size <= 0 or t.grad_accum <= 0 or t.save_every <= 0:
        raise VLAError(
            "trainer.steps, trainer.batch_size, trainer.grad_accum and trainer.save_every must be ≥ 1"
        )
    if t.strategy not in ("ddp", "fsdp"):
        raise VLAError(f"trainer.strategy={t.strategy!r}: choose ddp or fsdp")
    info = distributed.setup(t.device)
    if info.device.type == "cpu":
        # Oversubscribed cores make torch's intra-op threads spin against the loader workers (a step
        # took 7 s instead of 0.1 s with 2 threads + 2 workers on 2 busy cores): leave them their cores.
        cores = (os.cpu_count() or 1) // info.world_size
        torch.set_num_threads(t.cpu_threads or max(1, cores - t.num_workers))
    out = Path(cfg.output_dir or hydra_output_dir()).expanduser().absolute()
    ckpt_root = out / "checkpoints"
    init = Path(cfg.init).expanduser().absolute() if cfg.init else None
    resume_from = state.find_last(ckpt_root) if cfg.resume else None
    start = resume_from or init  # a checkpoint to start from decides the chunk (the action windows)
    chunk = init_chunk_size(start) if start is not None else int(cfg.model.chunk_size)
    spec = inspect_dataset(cfg.dataset.repo_id, cfg.dataset.root, chunk)
    model_cfg = _model_config(cfg, spec) if init is None else None
    requested_model = OmegaConf.to_container(cfg.model, resolve=True)

    if not cfg.resume and state.find_last(ckpt_root) is not None:
        raise VLAError(
            f"output_dir={out} already holds checkpoints; pass resume=true or choose a new output_dir"
        )
    seed_everything(t.seed + info.rank)
    dataset = open_dataset(spec, chunk, cfg.dataset.episodes)
    if resume_from is not None:
        saved = json.loads((resume_from / state.STATE_FILE).read_text())["train_config"]["model"]
        _check_same_model(requested_model, saved, resume_from)  # type: ignore[arg-type]
        model = VLAModel.from_pretrained(resume_from)
    elif init is not None:
        model = model_from_checkpoint(init, spec)
    else:
        assert model_cfg is not None
        chunks = (
            sample_action_chunks(dataset, spec, chunk, 4096, t.seed) if model_cfg.head == "fast" else None
        )
        model = VLAModel(model_cfg, stats=spec.stats, tasks=spec.tasks, action_chunks=chunks)
    model.to(info.device).train()

    params = [p for p in model.parameters() if p.requires_grad]
    o = cfg.optim
    optimizer, scheduler = make_optimizer(params, o, t.steps)
    progress = {"step": 0, "epoch": 0, "position": 0, "samples": 0}
    ema: dict[str, torch.Tensor] | None = None
    if t.ema_decay:
        ema = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}
    if resume_from is not None:
        progress = state.load_train_state(resume_from, optimizer, scheduler)["progress"]
        if ema is not None:
            ema = {k: v.to(info.device) for k, v in (state.load_ema(resume_from) or ema).items()}
        seed_everything(t.seed + info.rank + progress["step"])  # fresh randomness after the resume point
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        state.clean_temporaries(ckpt_root)
        write_text_atomic(out / "train_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    net = distributed.wrap(model, info, t.strategy)
    sampler = ResumableShuffleSampler(len(dataset), t.seed, info.rank, info.world_size)
    loader_kwargs: dict[str, Any] = {
        "batch_size": t.batch_size,
        "sampler": sampler,
        "drop_last": True,
        "num_workers": t.num_workers,
        "pin_memory": info.device.type == "cuda",
    }
    if t.num_workers > 0:
        loader_kwargs["worker_init_fn"] = fresh_video_decoders
    loader = torch.utils.data.DataLoader(dataset, **loader_kwargs)
    per_epoch = sampler.per_rank // t.batch_size
    if per_epoch == 0:
        raise VLAError(
            f"trainer.batch_size={t.batch_size} is larger than the dataset's share per rank "
            f"({sampler.per_rank} samples); lower it"
        )

    def batches():
        while True:
            sampler.set_position(progress["epoch"], progress["position"])
            for raw in loader:
                progress["position"] += t.batch_size
                yield raw
            progress["epoch"] += 1
            progress["position"] = 0

    aug = AugmentConfig(**OmegaConf.to_container(cfg.augment))  # type: ignore[arg-type]
    autocast = info.device.type == "cuda" and t.bf16
    logger = MetricsLogger(out, cfg, info.is_main)
    train_config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    last_ckpt = resume_from
    loss_value, rate, interrupted = float("nan"), 0.0, False
    step = start_step = progress["step"]
    bar = tqdm(
        total=t.steps,
        initial=step,
        desc="training",
        unit="step",
        dynamic_ncols=True,
        disable=not (t.progress and info.is_main),
    )

    def checkpoint(at: int) -> Path | None:
        if not info.is_main:
            return None
        progress["step"] = at
        return state.save_checkpoint(
            ckpt_root, at, model, optimizer, scheduler, dict(progress), train_config, ema
        )

    stream = batches()
    cotrain = _cotrain_batches(cfg, model, spec, progress, info.rank, info.world_size)
    c = t.cotrain
    window_start, window_samples = time.perf_counter(), 0
    try:
        with GracefulStop("saving a checkpoint and stopping after this step") as stop:
            while step < t.steps:
                optimizer.zero_grad(set_to_none=True)
                total = 0.0
                parts: dict[str, float] = {}
                for micro in range(t.grad_accum):
                    batch = training_batch(next(stream), spec.cameras, info.device, aug)
                    extra: dict[str, Any] = {}
                    if cotrain is not None:  # image-text batches are not augmented: colours are the answer
                        extra = {
                            "vlm_batch": to_device(next(cotrain), info.device),
                            "vlm_weight": c.weight,
                            "max_answer_tokens": c.max_answer_tokens,
                        }
                    sync = micro == t.grad_accum - 1 or not info.enabled
                    no_sync = getattr(net, "no_sync", None)
                    ctx = no_sync() if not sync and callable(no_sync) else nullcontext()
                    with ctx, torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                        result = net(batch, **extra)
                        loss = result["loss"] / t.grad_accum
                    loss.backward()
                    total += float(loss.detach())
                    for key in ("action_loss", "lm_loss", "lm_token_accuracy"):
                        if key in result:
                            parts[key] = parts.get(key, 0.0) + float(result[key]) / t.grad_accum
                grad_norm = apply_gradients(optimizer, params, o.grad_clip)
                scheduler.step()
                step += 1
                progress["step"] = step
                progress["samples"] += t.batch_size * t.grad_accum * info.world_size
                window_samples += t.batch_size * t.grad_accum * info.world_size
                if ema is not None:
                    with torch.no_grad():
                        for n, p in model.named_parameters():
                            if n in ema:
                                ema[n].lerp_(p.detach().float(), 1.0 - t.ema_decay)
                loss_value = total
                if step % t.log_every == 0 or step == t.steps:
                    elapsed = time.perf_counter() - window_start
                    rate = window_samples / max(elapsed, 1e-9)
                    window_start, window_samples = time.perf_counter(), 0
                    record = {
                        "step": step,
                        "loss": loss_value,
                        "lr": scheduler.get_last_lr()[0],
                        "samples_per_s": rate,
                    }
                    if grad_norm is not None:
                        record["grad_norm"] = float(grad_norm)
                    record.update(parts)
                    logger.log(record)
                    bar.set_postfix(
                        loss=f"{loss_value:.4f}", lr=f"{record['lr']:.2e}", sps=f"{rate:.1f}", refresh=False
                    )
                bar.update(1)
                if step % t.save_every == 0 or step == t.steps or stop.requested:
                    last_ckpt = checkpoint(step) or last_ckpt
                if stop.requested:
                    interrupted = True
                    break
    finally:
        bar.close()
        logger.close()
    if t.rank_checksums:
        write_json_atomic(
            out / f"rank{info.rank}_checksum.json",
            {"rank": info.rank, "step": step, "checksum": distributed.params_checksum(model)},
            indent=None,
        )
    distributed.teardown(info)
    return TrainResult(out, last_ckpt, step, loss_value, rate, interrupted, step - start_step)
