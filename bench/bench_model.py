"""Model benchmark on the CPU: parameter count of each config, latency per action chunk of `tiny`.

Parameter counts come from models built on the meta device (nothing allocated, so `pi0`'s 3.2B parameters
cost no memory). Latency: `tiny`, batch 1, its 2 cameras, `num_steps` denoising steps, median and p90 of
`--runs` calls after warm-up, with the prefix key/value cache reused by every step (the default) and
without (the joint prefix + actions pass recomputed at every step). Writes bench/results/model_cpu.json.

    python -m bench.bench_model [--runs 20] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from vla.model import VLAModel
from vla.model.config import load_config
from vla.model.fast import FASTTokenizer

CONFIGS = ("tiny", "fast", "smolvla", "pi0")
TASK = "pick up the red cube"


def parameter_counts(name: str) -> dict[str, Any]:
    cfg = load_config(name)
    fast = None
    if cfg.head == "fast":  # a FAST tokenizer must be fitted (on the CPU); toy chunks do for counting
        chunks = torch.randn(16, cfg.chunk_size, cfg.resolved_action_dim).cumsum(1).numpy() * 0.1
        fast = FASTTokenizer.fit(chunks, vocab_size=cfg.fast_vocab_size, scale=cfg.fast_scale)
    with torch.device("meta"):
        model = VLAModel(cfg, tasks=[TASK], fast_tokenizer=fast)

    def count(module: torch.nn.Module | None) -> int:
        return sum(p.numel() for p in module.parameters()) if module is not None else 0

    return {
        "total_m": round(model.num_parameters() / 1e6, 2),
        "trainable_m": round(model.num_parameters(trainable_only=True) / 1e6, 2),
        "vision_m": round(count(model.backbone.vision) / 1e6, 2),
        "language_m": round((count(model.backbone) - count(model.backbone.vision)) / 1e6, 2),
        "expert_m": round(count(model.flow) / 1e6, 2),
        "backbone_layers": len(model.backbone.layers),
        "tokens_per_image": model.backbone.tokens_per_image,
        "head": cfg.head,
    }


def latency(runs: int) -> dict[str, Any]:
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = VLAModel(cfg, tasks=[TASK]).eval()
    h, w = cfg.image_size or (96, 96)
    batch: dict[str, Any] = {f"observation.images.{c}": torch.rand(1, 3, h, w) for c in cfg.cameras}
    batch |= {"observation.state": torch.randn(1, 6), "task": [TASK]}
    noise = torch.randn(1, cfg.chunk_size, cfg.max_action_dim)
    out: dict[str, Any] = {
        "chunk_size": cfg.chunk_size,
        "num_steps": cfg.num_steps,
        "cameras": len(cfg.cameras),
    }
    results = {}
    for name, use_cache in (("kv_cache", True), ("no_cache", False)):
        for _ in range(3):
            model.sample_actions(batch, noise=noise, use_cache=use_cache)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            results[name] = model.sample_actions(batch, noise=noise, use_cache=use_cache)
            times.append((time.perf_counter() - start) * 1e3)
        times.sort()
        out[name] = {
            "median_ms": round(statistics.median(times), 2),
            "p90_ms": round(times[min(runs - 1, int(0.9 * runs))], 2),
            "runs": runs,
        }
    out["speedup"] = round(out["no_cache"]["median_ms"] / out["kv_cache"]["median_ms"], 2)
    out["max_abs_diff"] = float((results["kv_cache"] - results["no_cache"]).abs().max())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default="bench/results/model_cpu.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "torch_threads": torch.get_num_threads(),
        "params": {name: parameter_counts(name) for name in CONFIGS},
        "tiny_latency": latency(args.runs),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        "| config | head | params (M) | trainable (M) | vision | language | expert | layers | tokens/image |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, p in report["params"].items():
        print(
            f"| {name} | {p['head']} | {p['total_m']} | {p['trainable_m']} | {p['vision_m']} | {p['language_m']} "
            f"| {p['expert_m']} | {p['backbone_layers']} | {p['tokens_per_image']} |"
        )
    lat = report["tiny_latency"]
    print(
        f"\ntiny, batch 1, {lat['cameras']} cameras, {lat['chunk_size']} actions, {lat['num_steps']} steps, ",
        end="",
    )
    print(f"{report['torch_threads']} threads ({report['machine']})")
    print("| prefix KV reuse | median ms | p90 ms |\n|---|---|---|")
    for key in ("kv_cache", "no_cache"):
        print(f"| {key == 'kv_cache'} | {lat[key]['median_ms']} | {lat[key]['p90_ms']} |")
    print(f"speed-up {lat['speedup']}x, max |difference| {lat['max_abs_diff']:.2e}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
