"""The pretraining loop: image-text items -> prefix-LM answer loss -> AdamW, checkpoints, logs, evaluation.

    <output_dir>/checkpoints/<step>/   a transformers save_pretrained dir + the training state (resumable)
    <output_dir>/model/                the final VLM (what `vla-train model.backbone.pretrained=` takes)
    <output_dir>/eval.json             held-out evaluation of the final model (vla/vlm/evaluate.py)
    <output_dir>/pretrain_metrics.jsonl, tensorboard/, pretrain_config.yaml

Checkpoints are written like vla-train's (temp dir, rename, `last` link; nothing unpickled), and a resumed
run continues the schedule and the data order of an uninterrupted one: the sampler's position is saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vla.errors import VLAError
from vla.io import write_text_atomic
from vla.stop import GracefulStop
from vla.train import state
from vla.train.common import (
    MetricsLogger,
    apply_gradients,
    config_differences,
    hydra_output_dir,
    make_optimizer,
    seed_everything,
)
from vla.train.sampler import ResumableShuffleSampler
from vla.vlm.evaluate import evaluate, table
from vla.vlm.model import VisionLanguageModel, VLMConfig
from vla.vlm.samples import Collate, LabelledSource, PretrainSource
from vla.vlm.tokenizer import build_tokenizer, extend_tokenizer, unknown_words

MODEL_DIR = "model"
EVAL_FILE = "eval.json"


@dataclass
class PretrainResult:
    output_dir: Path
    model_dir: Path | None
    steps: int
    final_loss: float
    metrics: dict[str, Any] | None
    interrupted: bool


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VLAError(f"device={name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VLAError(f"device={name!r}: no CUDA device here")
    return device


def build_sources(cfg: DictConfig) -> tuple[PretrainSource, PretrainSource]:
    """The training source and the held-out one (`eval_data`, or `data` with split=heldout)."""
    from vla.instantiate import instantiate

    train = instantiate(cfg.data, "data")
    held = (
        instantiate(cfg.eval_data, "eval_data")
        if cfg.get("eval_data") is not None
        else instantiate(cfg.data, "data", split="heldout")
    )
    for name, source in (("data", train), ("eval_data", held)):
        if not isinstance(source, PretrainSource):
            raise VLAError(f"{name} (_target_={cfg.data.get('_target_')}) is not a pretraining source")
        if len(source) == 0:
            raise VLAError(f"{name}: the source holds no items")
    if tuple(train.cameras) != tuple(held.cameras):
        raise VLAError(f"eval_data has images {held.cameras}, data has {train.cameras}; use the same")
    return train, held


def _vlm_config(cfg: DictConfig) -> VLMConfig:
    from vla.model.config import BackboneConfig

    data: dict[str, Any] = OmegaConf.to_container(cfg.vlm, resolve=True)  # type: ignore[assignment]
    backbone = BackboneConfig(**data.pop("backbone"))
    return VLMConfig(backbone=backbone, **data)


def _new_model(cfg: DictConfig, train: PretrainSource, held: PretrainSource) -> VisionLanguageModel:
    vlm_cfg = _vlm_config(cfg)
    vlm_cfg.validate()
    if not isinstance(train, LabelledSource) and (vlm_cfg.attention_loss_weight or vlm_cfg.patch_loss_weight):
        print(
            "note: vlm.patch_loss_weight and vlm.attention_loss_weight need data with object label maps "
            "(data=so101); this data has none, so they are off (next-token loss only)"
        )
        vlm_cfg.attention_loss_weight = vlm_cfg.patch_loss_weight = 0.0
    if vlm_cfg.patch_loss_weight > 0:
        assert isinstance(train, LabelledSource)
        vlm_cfg.patch_labels = len(train.label_names)
    if vlm_cfg.backbone.pretrained:
        tokenizer = extend_tokenizer(vlm_cfg.backbone.pretrained, vlm_cfg.loc_bins)
    else:
        tokenizer = build_tokenizer([*train.vocabulary(), *held.vocabulary()], vlm_cfg.loc_bins)
    return VisionLanguageModel(vlm_cfg, tokenizer)


def pretrain(cfg: DictConfig) -> PretrainResult:
    from tqdm import tqdm

    t = cfg.trainer
    if min(t.steps, t.batch_size, t.save_every, t.log_every) <= 0 or t.eval_every < 0 or t.num_workers < 0:
        raise VLAError(
            "trainer.steps, batch_size, save_every and log_every must be ≥ 1; eval_every and num_workers ≥ 0"
        )
    device = resolve_device(t.device)
    if device.type == "cpu":
        torch.set_num_threads(t.cpu_threads or max(1, (os.cpu_count() or 1) - t.num_workers))
    out = Path(cfg.output_dir or hydra_output_dir()).expanduser().absolute()
    ckpt_root = out / "checkpoints"
    resume_from = state.find_last(ckpt_root) if cfg.resume else None
    if not cfg.resume and state.find_last(ckpt_root) is not None:
        raise VLAError(
            f"output_dir={out} already holds checkpoints; pass resume=true or choose a new output_dir"
        )
    train, held = build_sources(cfg)
    seed_everything(t.seed)
    if resume_from is not None:
        saved = json.loads((resume_from / state.STATE_FILE).read_text())["train_config"]
        requested: dict[str, Any] = OmegaConf.to_container(cfg.vlm, resolve=True)  # type: ignore[assignment]
        diff = config_differences(requested, saved.get("vlm", {}), dataclasses.asdict(VLMConfig()))
        if diff:
            k, there, here = diff[0]
            raise VLAError(
                f"checkpoint {resume_from} was pretrained with another vlm config (vlm.{k}={there!r} there, "
                f"{here!r} here); resume with the same one or choose a new output_dir"
            )
        model = VisionLanguageModel.from_pretrained(resume_from)
    else:
        model = _new_model(cfg, train, held)
    missing = unknown_words(model.text, train.vocabulary())
    if missing:
        print(f"warning: {len(missing)} word(s) of the data are unknown to the tokenizer, e.g. {missing[:5]}")
    model.to(device).train()
    optimizer, scheduler = make_optimizer(
        [p for p in model.parameters() if p.requires_grad], cfg.optim, t.steps
    )
    progress = {"step": 0, "epoch": 0, "position": 0, "samples": 0}
    if resume_from is not None:
        progress = state.load_train_state(resume_from, optimizer, scheduler)["progress"]
        seed_everything(t.seed + progress["step"])
    out.mkdir(parents=True, exist_ok=True)
    state.clean_temporaries(ckpt_root)
    write_text_atomic(out / "pretrain_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    items_per_step = max(1, t.batch_size // train.samples_per_item)
    sampler = ResumableShuffleSampler(len(train), t.seed)
    if sampler.per_rank < items_per_step:
        raise VLAError(f"trainer.batch_size={t.batch_size} needs more items than data holds ({len(train)})")
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        train,  # type: ignore[arg-type]
        batch_size=items_per_step,
        sampler=sampler,
        drop_last=True,
        num_workers=t.num_workers,
        collate_fn=Collate(model.backbone.image_size),
        persistent_workers=False,
    )

    def batches():
        while True:
            sampler.set_position(progress["epoch"], progress["position"])
            for batch in loader:
                progress["position"] += items_per_step
                yield batch
            progress["epoch"] += 1
            progress["position"] = 0

    autocast = device.type == "cuda" and t.bf16
    logger = MetricsLogger(out, cfg, True, jsonl="pretrain_metrics.jsonl", project="vla-pretrain")
    train_config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    step = progress["step"]
    loss_value, interrupted = float("nan"), False
    bar = tqdm(
        total=t.steps,
        initial=step,
        desc="pretraining",
        unit="step",
        dynamic_ncols=True,
        disable=not t.progress,
    )

    def checkpoint(at: int) -> Path:
        progress["step"] = at
        return state.save_checkpoint(ckpt_root, at, model, optimizer, scheduler, dict(progress), train_config)

    stream = batches()
    window_start, window_samples = time.perf_counter(), 0
    try:
        with GracefulStop("saving a checkpoint and stopping after this step") as stop:
            while step < t.steps:
                batch = next(stream)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    result = model(batch)
                result["loss"].backward()
                apply_gradients(optimizer, list(model.parameters()), cfg.optim.grad_clip)
                scheduler.step()
                step += 1
                samples = len(batch["prompt"])
                progress["step"], progress["samples"] = step, progress["samples"] + samples
                window_samples += samples
                loss_value = float(result["loss"].detach())
                if step % t.log_every == 0 or step == t.steps:
                    rate = window_samples / max(time.perf_counter() - window_start, 1e-9)
                    window_start, window_samples = time.perf_counter(), 0
                    record = {
                        "step": step,
                        "loss": loss_value,
                        **{k: float(result[k]) for k in ("patch_loss", "attention_loss") if k in result},
                        "token_accuracy": float(result["token_accuracy"]),
                        "lr": float(scheduler.get_last_lr()[0]),
                        "samples_per_s": rate,
                    }
                    if device.type == "cuda":
                        record["gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                    logger.log(record)
                    bar.set_postfix(
                        loss=f"{loss_value:.3f}", acc=f"{record['token_accuracy']:.2f}", sps=f"{rate:.0f}"
                    )
                if t.eval_every and step % t.eval_every == 0 and step < t.steps:
                    quick = evaluate(model, held, cfg.eval.num_items_during, cfg.eval.batch_items, examples=0)
                    logger.log({"step": step, **_scalars(quick)})
                bar.update(1)
                if step % t.save_every == 0 or step == t.steps or stop.requested:
                    checkpoint(step)
                if stop.requested:
                    interrupted = True
                    break
    finally:
        bar.close()
        logger.close()
    if interrupted:
        return PretrainResult(out, None, step, loss_value, None, True)
    model_dir = model.save_pretrained(out / MODEL_DIR)
    metrics = evaluate(
        model, held, cfg.eval.num_items, cfg.eval.batch_items, cfg.eval.examples, progress=t.progress
    )
    metrics["steps"], metrics["model"] = step, str(model_dir)
    write_eval(out / EVAL_FILE, metrics)
    return PretrainResult(out, model_dir, step, loss_value, metrics, False)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The evaluation's numbers, flattened for the metrics log (eval/pointing_front, ...)."""
    flat = {"eval/pointing": metrics["pointing_accuracy"], "eval/answers": metrics["answer_accuracy"]}
    flat |= {f"eval/pointing_{c}": v for c, v in metrics["pointing_accuracy_per_camera"].items()}
    flat |= {f"eval/answers_{k}": v for k, v in metrics["answer_accuracy_per_type"].items()}
    return {k: float(v) for k, v in flat.items() if v is not None}


def write_eval(path: Path, metrics: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(metrics, indent=2) + "\n")


def summary(result: PretrainResult) -> str:
    if result.metrics is None:
        return f"interrupted at step {result.steps}; resume with resume=true output_dir={result.output_dir}"
    m = result.metrics
    return "\n".join(
        [
            table(m),
            f"{result.steps} steps, final loss {result.final_loss:.4f}",
            f"model: {result.model_dir}",
            f"evaluation: {result.output_dir / EVAL_FILE} ({m['items']} held-out items, {m['seconds']:.0f} s)",
        ]
    )
