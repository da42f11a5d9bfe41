"""`vla-pretrain` on a GPU: throughput of the tiny VLM (the shipped recipe) and of a SmolVLM2-500M-shaped
VLM (random weights, built from config; no download), each a time-boxed `vla-pretrain` run.

    tiny       configs/vlm/tiny.yaml at its defaults (96 px, batch 32) with `--workers` scene-rendering
               workers: samples/s (the scenes are rendered by MuJoCo on the host, so this is bound by
               the workers on a GPU machine) and the held-out evaluation of what it reached in the budget
    smolvlm2   configs/vlm/smolvlm2.yaml (SmolVLM2-500M shape, 512 px, 1024 location bins), bf16 autocast,
               batch `--big-batch`: samples/s and peak GPU memory, the so101 scenes rendered at 512 px

Each run is a subprocess with a wall-clock budget; the JSON (default $OUT/gpu_pretrain.json or
bench/results/gpu_pretrain.json) is rewritten after every run, so a timeout loses nothing measured.

    python -m bench.gpu_pretrain                          # ~6 min on an H100/H200
    python -m bench.gpu_pretrain --device cpu --smoke     # a few steps of each on the CPU (checks the script)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _metrics(out: Path) -> list[dict[str, Any]]:
    path = out / "pretrain_metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by the timeout
            rows.append(json.loads(line))
    return rows


def run_one(name: str, args: list[str], budget_s: float, out: Path) -> dict[str, Any]:
    cmd = [str(BIN / "vla-pretrain"), f"output_dir={out}", "trainer.progress=false", *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s, cwd=ROOT)
        rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired as e:
        rc, tail = (
            None,
            ((e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace"))[-2000:],
        )
    wall = time.perf_counter() - t0
    rows = [r for r in _metrics(out) if "samples_per_s" in r]
    steady = rows[len(rows) // 2 :] or rows  # the second half: past warm-up and compilation
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(cmd[1:]),
        "returncode": rc,
        "timed_out": rc is None,
        "wall_s": round(wall, 1),
        "steps_reached": rows[-1]["step"] if rows else 0,
        "samples_per_s": round(sum(r["samples_per_s"] for r in steady) / len(steady), 1) if steady else None,
        "final_loss": rows[-1]["loss"] if rows else None,
        "peak_gpu_memory_gib": max((r.get("gpu_memory_gib", 0.0) for r in rows), default=None),
        "evals": [r for r in _metrics(out) if "eval/pointing" in r],
    }
    eval_json = out / "eval.json"
    if eval_json.is_file():
        ev = json.loads(eval_json.read_text())
        result["pointing_accuracy_per_camera"] = ev.get("pointing_accuracy_per_camera")
        result["answer_accuracy_per_type"] = ev.get("answer_accuracy_per_type")
    if rc not in (0, None):
        result["log_tail"] = tail
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true", help="a few steps each (checks the script on a CPU)")
    p.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    p.add_argument("--tiny-budget", type=float, default=210.0, help="seconds for the tiny run")
    p.add_argument("--big-budget", type=float, default=150.0, help="seconds for the SmolVLM2-shaped run")
    p.add_argument("--big-batch", type=int, default=16)
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    p.add_argument("--out", type=Path, default=default_out / "gpu_pretrain.json")
    a = p.parse_args()

    common = [f"trainer.device={a.device}", "trainer.log_every=10", "trainer.save_every=100000"]
    if a.smoke:
        tiny_args = [
            *common,
            "trainer.steps=4",
            "trainer.batch_size=4",
            "trainer.num_workers=0",
            "trainer.log_every=1",
        ]
        tiny_args += ["eval.num_items=4", "eval.examples=2", "trainer.eval_every=0"]
        big_args = [
            *common,
            "vlm=smolvlm2",
            "trainer.steps=2",
            "trainer.batch_size=1",
            "trainer.num_workers=0",
        ]
        big_args += [
            "trainer.log_every=1",
            "eval.num_items=2",
            "data.image_size=64",
            "vlm.backbone.image_size=64",
        ]
        big_args += [
            "vlm.backbone.layers=2",
            "vlm.backbone.vision_layers=1",
        ]  # shape-faithful widths, fewer layers
    else:
        tiny_args = [*common, f"trainer.num_workers={a.workers}", "trainer.eval_every=1000"]
        big_args = [
            *common,
            "vlm=smolvlm2",
            f"trainer.batch_size={a.big_batch}",
            f"trainer.num_workers={a.workers}",
        ]
        big_args += ["trainer.steps=100000", "data.image_size=512"]
    report: dict[str, Any] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "device": a.device,
        "workers": a.workers,
        "runs": [],
    }
    try:
        import torch

        report["torch"] = torch.__version__
        if a.device.startswith("cuda") and torch.cuda.is_available():
            report["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_pretrain_") as tmp:
        for name, args, budget in (("tiny", tiny_args, a.tiny_budget), ("smolvlm2", big_args, a.big_budget)):
            print(f"{name}: up to {budget:.0f} s", flush=True)
            result = run_one(name, args, 600 if a.smoke else budget, Path(tmp) / name)
            report["runs"].append(result)
            a.out.write_text(json.dumps(report, indent=2) + "\n")
            print(
                f"  steps {result['steps_reached']}, {result['samples_per_s']} samples/s, "
                f"loss {result['final_loss']}, rc {result['returncode']}",
                flush=True,
            )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
