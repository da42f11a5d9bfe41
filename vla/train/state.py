"""Training checkpoints: model + optimiser + scheduler + RNG + progress, written atomically.

    <output_dir>/checkpoints/<step:06d>/   the model directory (VLAModel.save_pretrained) plus
        train_state.json                   step, samples seen, data position, scheduler, python/numpy RNG
        optimizer.safetensors              optimiser tensors (param_groups live in train_state.json)
        rng.safetensors                    torch CPU/CUDA generator states
        ema.safetensors                    EMA weights (when enabled)
    <output_dir>/checkpoints/last          symlink to the newest complete checkpoint

A checkpoint is assembled in a hidden temporary directory and renamed into place only when complete, so a
crash (even SIGKILL) never leaves a partial directory under a step name; `last` is replaced atomically
after the rename. Nothing is ever unpickled: tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vla.errors import VLAError
from vla.io import atomic_dir, replace_symlink

FORMAT = "vla-train-state"
VERSION = 1
STATE_FILE = "train_state.json"
OPTIM_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
EMA_FILE = "ema.safetensors"
REQUIRED = ("model.safetensors", "config.json", STATE_FILE, OPTIM_FILE, RNG_FILE)


def step_dir_name(step: int) -> str:
    return f"{step:06d}"


def is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in REQUIRED)


def find_last(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint: `last` if it points at one, else the highest complete step dir."""
    last = checkpoints / "last"
    if last.is_symlink() or last.exists():
        target = last.resolve()
        if is_complete(target):
            return target
    steps = (
        sorted(
            (p for p in checkpoints.iterdir() if p.name.isdigit() and is_complete(p)),
            key=lambda p: int(p.name),
        )
        if checkpoints.is_dir()
        else []
    )
    return steps[-1] if steps else None


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))


def save_checkpoint(
    checkpoints: Path,
    step: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: dict[str, Any],
    train_config: dict[str, Any],
    ema: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint `step` atomically and point `last` at it; returns its directory."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / step_dir_name(step)
    # durable: every file fsynced before the rename, so a step directory is whole even after a crash;
    # re-saving a step (e.g. after a resume at the same step) replaces it whole
    with atomic_dir(final, durable=True) as tmp:
        model.save_pretrained(tmp)
        optim_tensors, optim_meta = _optimizer_to_files(optimizer)
        save_file(optim_tensors, str(tmp / OPTIM_FILE))
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, str(tmp / RNG_FILE))
        if ema is not None:
            save_file({k: v.detach().contiguous().cpu() for k, v in ema.items()}, str(tmp / EMA_FILE))
        sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
        state = {
            "format": FORMAT,
            "version": VERSION,
            "step": step,
            "progress": progress,
            "optimizer": optim_meta,
            "scheduler": sched,
            "rng": rng_meta,
            "train_config": train_config,
        }
        (tmp / STATE_FILE).write_text(json.dumps(state, default=str))
    replace_symlink(checkpoints / "last", final.name)
    return final


def load_train_state(
    path: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore optimiser, scheduler and RNG from checkpoint `path`; returns its JSON state."""
    state = json.loads((path / STATE_FILE).read_text())
    if state.get("format") != FORMAT or state.get("version") != VERSION:
        raise VLAError(f"{path / STATE_FILE}: not a training state this version can resume")
    optimizer.load_state_dict(_optimizer_from_files(load_file(str(path / OPTIM_FILE)), state["optimizer"]))
    sched = dict(state["scheduler"])
    sched["lr_lambdas"] = [None] * len(optimizer.param_groups)
    scheduler.load_state_dict(sched)
    _set_rng_state(load_file(str(path / RNG_FILE)), state["rng"])
    return state


def load_ema(path: Path) -> dict[str, torch.Tensor] | None:
    return load_file(str(path / EMA_FILE)) if (path / EMA_FILE).is_file() else None


def clean_temporaries(checkpoints: Path) -> None:
    """Remove what a killed run left half-written (never a complete step directory)."""
    if checkpoints.is_dir():
        for p in [*checkpoints.glob(".*tmp-*"), *checkpoints.glob(".*.old-*")]:
            shutil.rmtree(p, ignore_errors=True)
        for p in checkpoints.glob(".last-*"):
            p.unlink(missing_ok=True)
