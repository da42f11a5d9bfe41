"""Training throughput of the `tiny` VLA on this CPU, and data-loading throughput (video decoding included).

    python -m bench.bench_train [--root DATASET] [--batch-size 16] [--steps 30]

Without --root it records 20 scripted `pick` episodes first. Goal (issue 4): loading is never the
bottleneck — the loader delivers ≥ 3× the samples/s the training step consumes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import vla.apps.record
import vla.apps.train  # noqa: F401
from vla.train.augment import AugmentConfig, augment_images
from vla.train.data import fresh_video_decoders, inspect_dataset, model_batch, open_dataset
from vla.train.sampler import ResumableShuffleSampler


def record_dataset(root: Path, episodes: int) -> None:
    from vla.apps.record import record

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "record",
            overrides=["robot.task=pick", f"episodes={episodes}", f"dataset.root={root}", "progress=false"],
        )
    record(cfg)


def loader_rate(dataset, batch_size: int, workers: int, batches: int) -> float:
    sampler = ResumableShuffleSampler(len(dataset), seed=0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        worker_init_fn=fresh_video_decoders if workers else None,
    )
    it = iter(loader)
    next(it)  # worker start-up and first decode are not throughput
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        n += batch_size
    return n / (time.perf_counter() - start)


def train_rate(dataset, spec, batch_size: int, steps: int) -> tuple[float, float]:
    """Samples/s of forward + backward + AdamW on batches already in memory; also params."""
    from vla.model.vla import VLAModel
    from vla.train.trainer import _model_config

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"dataset.root={spec.root}", "output_dir=/tmp/unused"])
    model = VLAModel(_model_config(cfg, spec), stats=spec.stats, tasks=spec.tasks).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    batch = model_batch(next(iter(loader)), spec.cameras)
    aug = AugmentConfig(**OmegaConf.to_container(cfg.augment))  # type: ignore[arg-type]
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = model(augment_images(batch, spec.cameras, aug))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch_size * steps / (time.perf_counter() - start), model.num_parameters()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_speed.json")
    args = p.parse_args()
    torch.manual_seed(0)
    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = Path(tmp.name) / "pick"
        record_dataset(root, 20)  # `pick`: its episodes are longer than a 50-action chunk (`touch`'s are not)
    spec = inspect_dataset("local/bench", str(root), 50)
    dataset = open_dataset(spec, 50)
    train_sps, params = train_rate(dataset, spec, args.batch_size, args.steps)
    rows = [
        {
            "what": "training step (tiny, forward+backward+AdamW, augmentation)",
            "workers": None,
            "samples_per_s": round(train_sps, 1),
        }
    ]
    for workers in (0, 2):
        sps = loader_rate(dataset, args.batch_size, workers, batches=20)
        rows.append(
            {
                "what": "LeRobotDataset loader (video decode, 50-action chunks)",
                "workers": workers,
                "samples_per_s": round(sps, 1),
                "ratio_to_training": round(sps / train_sps, 2),
            }
        )
    result = {
        "benchmark": "train_speed",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "batch_size": args.batch_size,
        "image_size": list(spec.image_size or ()),
        "cameras": spec.cameras,
        "params": params,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"tiny VLA: {params / 1e6:.2f}M parameters, batch {args.batch_size}, {spec.image_size} px, {spec.cameras}"
    )
    print("| what | loader workers | samples/s | × training |")
    print("|---|---|---|---|")
    for r in rows:
        ratio = r.get("ratio_to_training")
        print(
            f"| {r['what']} | {r['workers'] if r['workers'] is not None else '-'} | {r['samples_per_s']} | "
            f"{ratio if ratio is not None else '-'} |"
        )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
