"""GPU latency per action chunk of *imported* full-size policies against LeRobot's own, with the same weights.

For each family (smolvla, pi0; optionally pi05): LeRobot 0.6.1's own policy is built at its real default
sizes with random weights (offline: SmolVLA's VLM from a local SmolVLM2-500M-shaped config dir; π0's Gemma
configs as LeRobot defines them; a word-level tokenizer stand-in), saved as LeRobot saves a policy
(`save_pretrained` + its pre/post-processor files), imported by `vla.importer.import_policy`, and loaded
back with `VLAModel.from_pretrained`. Both run in --dtype (bf16 by default) on --device:

    theirs          LeRobot's dtype handling: π0 / π0.5 built with `dtype="bfloat16"` (vision tower,
                    projections and norms kept in float32 by LeRobot itself); SmolVLA's VLM cast to bf16,
                    its expert and projections left in float32, as LeRobot runs a pretrained one
    ours            `.to(dtype)`, which keeps in float32 what the import's `model.keep_fp32` names (π0)

Batch 1, 3 cameras (480x640 frames, resized inside each model), chunk 50, 10 denoising steps, the same
preprocessed inputs and the same noise. Timed per chunk, on tensors already on the device:

    lerobot         SmolVLAPolicy / PI0Policy.predict_action_chunk(preprocessed batch)   (eager)
    ours_eager      VLAModel.sample_from_inputs(inputs, noise)                           (eager, SDPA)
    ours_graphed    vla.model.graphed.GraphedSampler: the whole chunk in one CUDA graph (`math` attention,
                    bench/gpu_model.py's finding); --compile adds ours_compiled (torch.compile, then captured)

Warm-up, then the calls alternate round by round (lerobot, ours_eager, ours_graphed, ...) with
torch.cuda.synchronize around each; median, p90 and min. Also max |Δ| between our chunk and theirs in
robot units (after their postprocessor / our un-normalisation): a sanity check of the import at full size,
bf16 noise expected at random weights, reported, not asserted. Goals marked in the table, for our fastest
variant: >= 2x LeRobot, and π0 <= 20 ms per chunk.

    HF_HUB_OFFLINE=1 python -m bench.gpu_import          # on an H100/H200, ~4-6 min (see per-family s)
    python -m bench.gpu_import --device cpu --smoke      # tiny sizes, fp32, CPU, < 60 s: the code path

--smoke shrinks the models with the test suite's own fixtures (tests/importer/), re-randomised away from
LeRobot's small init so that the max |Δ| check means something (in fp32 the import is exact). LeRobot's
side lives in bench/lerobot_saved.py. Writes --out (default
$OUT/gpu_import.json where $OUT is set, else bench/results/gpu_import.json; atomically, after every
family) and prints a markdown table. Needs lerobot==0.6.1 and its dependencies (checked first).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

ROOT = Path(__file__).resolve().parents[1]

from bench.lerobot_saved import (  # noqa: E402  (after the offline settings above)
    CAMERAS,
    CHUNK,
    FRAME,
    SMOKE_FRAME,
    STATE_DIM,
    STEPS,
    build_theirs,
    their_dtype,
)
from vla.importer import import_policy  # noqa: E402
from vla.io import write_text_atomic  # noqa: E402
from vla.model.graphed import GraphedSampler, uncompile  # noqa: E402
from vla.model.vla import VLAModel  # noqa: E402

TASK = "pick up the red cube and put it in the bowl"
GOAL_RATIO = 2.0  # ours' fastest at least this many times faster than LeRobot
GOAL_PI0_MS = 20.0  # π0 per chunk, graphed
VARIANTS = ("lerobot", "ours_eager", "ours_graphed", "ours_compiled")


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "median_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "min_ms": round(times[0], 3),
        "runs": len(times),
    }


def alternate(
    calls: dict[str, Callable[[], Any]], device: torch.device, runs: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Each call `warmup` times, then `runs` rounds of one synchronised call each, in turn."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: summary(t) for name, t in times.items()}


def observation(smoke: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(3)
    frame = SMOKE_FRAME if smoke else FRAME
    batch: dict[str, Any] = {
        f"observation.images.{c}": torch.rand(1, 3, *frame, generator=g) for c in CAMERAS
    }
    batch["observation.state"] = torch.randn(1, STATE_DIM, generator=g) * 20
    batch["task"] = [TASK]
    return batch


def max_delta(ours: torch.Tensor, theirs: torch.Tensor) -> dict[str, float]:
    ours, theirs = ours.float().cpu(), theirs.float().cpu()
    delta = float((ours - theirs).abs().max())
    scale = float(theirs.abs().max())
    return {
        "max_abs": round(delta, 6),
        "max_abs_action": round(scale, 4),
        "relative": float(f"{delta / max(1.0, scale):.3g}"),
    }


def run_family(
    family: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    started = time.monotonic()
    entry: dict[str, Any] = {"family": family, "cameras": len(CAMERAS), "chunk": CHUNK, "steps": STEPS}
    with tempfile.TemporaryDirectory(prefix=f"gpu_import_{family}_") as tmp:
        root = Path(tmp)
        policy, pre, post, source = build_theirs(family, root, device, dtype, args.smoke)
        entry["lerobot_params_m"] = round(sum(p.numel() for p in policy.parameters()) / 1e6, 1)
        entry["lerobot_dtype"] = their_dtype(family, dtype)
        entry["build_lerobot_s"] = round(time.monotonic() - started, 1)
        mark = time.monotonic()
        imported = import_policy(source, root / "ours")
        entry["import_s"] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()
        ours = VLAModel.from_pretrained(root / "ours").to(device).to(dtype).eval()
        entry["load_ours_s"] = round(time.monotonic() - mark, 1)
    entry["ours_params_m"] = round(ours.num_parameters() / 1e6, 1)
    fp32 = sorted({str(p.dtype) for p in ours.parameters()})
    entry["ours_dtype"] = f"{dtype} with model.keep_fp32={ours.config.keep_fp32} (parameter dtypes {fp32})"
    entry["import_notes"] = imported.notes

    raw = observation(args.smoke)
    noise = torch.randn(1, CHUNK, ours.config.max_action_dim, generator=torch.Generator().manual_seed(4))
    noise = noise.to(device)
    with torch.no_grad():
        theirs_in = pre(dict(raw))  # their normalisation, prompt and tokenizer; on the device

        def lerobot() -> torch.Tensor:
            policy.reset()
            out: torch.Tensor = policy.predict_action_chunk(dict(theirs_in), noise=noise.clone())
            return out

        theirs_chunk = post(lerobot())
        ours_batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
        inputs = ours.prepare_inputs(ours_batch)
        ours.backbone.attention = args.eager_attention
        eager_chunk = ours.normalizer.unnormalize_action(ours.sample_from_inputs(inputs, noise=noise))
    entry["max_delta_vs_lerobot"] = {"ours_eager": max_delta(eager_chunk, theirs_chunk)}
    entry["chunk_shape"] = list(theirs_chunk.shape)
    entry["lerobot_chunk_std"] = round(float(theirs_chunk.float().std()), 4)  # far from constant?

    calls: dict[str, Callable[[], Any]] = {
        "lerobot": lerobot,
        "ours_eager": lambda: ours.sample_from_inputs(inputs, noise=noise),
    }
    samplers: list[GraphedSampler] = []
    variants = [("ours_graphed", False)] + ([("ours_compiled", True)] if args.compile else [])
    for name, compiled in variants if device.type == "cuda" else []:
        mark = time.monotonic()
        try:
            ours.backbone.attention = args.graph_attention  # captured with these kernels
            sampler = GraphedSampler(ours, inputs, compile=compiled, compile_mode=args.compile_mode)
            with torch.no_grad():
                chunk = ours.normalizer.unnormalize_action(sampler(inputs, noise).clone())
            entry["max_delta_vs_lerobot"][name] = max_delta(chunk, theirs_chunk)
            entry[f"{name}_setup_s"] = round(time.monotonic() - mark, 1)
            samplers.append(sampler)
            calls[name] = functools.partial(sampler, inputs, noise)
        except Exception as e:  # keep the other numbers
            entry[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
            traceback.print_exc()
        finally:
            ours.backbone.attention = args.eager_attention
            if compiled:
                uncompile(ours)  # the graph keeps its compiled kernels; eager calls go back to eager
    with torch.no_grad():
        entry |= alternate(calls, device, args.runs, args.warmup)
    if device.type == "cuda":
        entry["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    base = entry["lerobot"]["median_ms"]
    for name in calls:
        if name != "lerobot":
            entry[name]["speedup_vs_lerobot"] = round(base / entry[name]["median_ms"], 2)
    entry["elapsed_s"] = round(time.monotonic() - started, 1)
    return entry


# ----------------------------------------------------------------------------- report


def write(report: dict[str, Any], out: Path) -> None:
    """Atomically (a temp file, then rename), after every family, so a timeout keeps what was measured."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['device']}, {report['dtype']}, batch 1, {len(CAMERAS)} cameras, chunk {CHUNK}, {STEPS} steps: "
        "median (p90) ms per chunk, ratio = LeRobot / ours' fastest; goals: ours' fastest",
        "",
        "| family | LeRobot eager | ours eager | ours graphed | ours compiled | ratio (ours' best) | goals | max abs Δ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, e in report["results"].items():
        if "lerobot" not in e:
            lines.append(f"| {family} | {e.get('error', 'no result')[:80]} |" + " |" * 7)
            continue

        def cell(name: str, e: dict[str, Any] = e) -> str:
            r = e.get(name, {})
            return f"{r['median_ms']:.1f} ({r['p90_ms']:.1f})" if "median_ms" in r else ("err" if r else "-")

        timed = [e[v] for v in VARIANTS[1:] if "median_ms" in e.get(v, {})]
        best = min(timed, key=lambda r: r["median_ms"]) if timed else {}
        ratio = best.get("speedup_vs_lerobot", float("nan"))
        goals = [f"{'✅' if ratio >= GOAL_RATIO else '❌'} ≥{GOAL_RATIO:g}×"]
        if family == "pi0" and "median_ms" in best:
            goals.append(f"{'✅' if best['median_ms'] <= GOAL_PI0_MS else '❌'} ≤{GOAL_PI0_MS:g} ms")
        deltas = ", ".join(
            f"{k.removeprefix('ours_')} {v['max_abs']:.3g}" for k, v in e["max_delta_vs_lerobot"].items()
        )
        lines.append(
            f"| {family} | {cell('lerobot')} | {cell('ours_eager')} | {cell('ours_graphed')} | "
            f"{cell('ours_compiled')} | {ratio:.2f}× | {' '.join(goals)} | {deltas} |"
        )
    return "\n".join(lines)


def preflight(families: list[str]) -> dict[str, str]:
    """Import LeRobot's modules the run needs before anything slow -> package versions. A device image
    without LeRobot 0.6.1's environment fails here, in one line naming the missing module."""
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    modules = {
        "smolvla": "lerobot.policies.smolvla.modeling_smolvla",
        "pi0": "lerobot.policies.pi0.modeling_pi0",
    }
    modules["pi05"] = "lerobot.policies.pi05.modeling_pi05"
    for family in families:
        import_module(modules[family])
    versions = {}
    for name in ("torch", "lerobot", "transformers", "tokenizers"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, help="default bfloat16 (float32 with --smoke on a CPU)")
    parser.add_argument("--families", default="smolvla,pi0", help="any of smolvla,pi0,pi05")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the code path without a GPU")
    parser.add_argument("--compile", action="store_true", help="also ours_compiled (torch.compile + graph)")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--eager-attention", default="sdpa", help="ours_eager's attention kernels")
    parser.add_argument("--graph-attention", default="math", help="the kernels ours_graphed captures")
    parser.add_argument("--budget-s", type=float, default=360.0, help="start no family past this time")
    parser.add_argument("--out", default=None, help="default $OUT/gpu_import.json, else bench/results/")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.smoke:
        args.runs, args.warmup = min(args.runs, 3), min(args.warmup, 1)
    dtype_name = args.dtype or ("float32" if args.smoke and device.type == "cpu" else "bfloat16")
    dtype = getattr(torch, dtype_name)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - {"smolvla", "pi0", "pi05"})
    if unknown:
        print(f"error: --families: unknown {unknown} (choose from smolvla, pi0, pi05)", file=sys.stderr)
        return 2
    try:
        versions = preflight(families)
    except ImportError as e:
        print(
            f"error: LeRobot's policies cannot be imported ({type(e).__name__}: {e}); this script needs "
            "lerobot==0.6.1 and its dependencies (transformers 5.5.x) installed",
            file=sys.stderr,
        )
        return 2
    out = Path(
        args.out
        or (Path(os.environ["OUT"]) if "OUT" in os.environ else Path("bench/results")) / "gpu_import.json"
    )
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "versions": versions,
        "dtype": dtype_name,
        "smoke": args.smoke,
        "goals": {"speedup_vs_lerobot": GOAL_RATIO, "pi0_ms_per_chunk": GOAL_PI0_MS},
        "results": {},
    }
    total = time.monotonic()
    for family in families:
        if time.monotonic() - total > args.budget_s:
            report["results"][family] = {"error": f"skipped: past --budget-s {args.budget_s:g}"}
            continue
        print(f"{family}: building LeRobot's policy, importing, timing", flush=True)
        try:
            report["results"][family] = run_family(family, args, device, dtype)
        except Exception as e:  # one family failing must not lose the others
            report["results"][family] = {"error": f"{type(e).__name__}: {e}"[:500]}
            traceback.print_exc()
        gc.collect()  # the family's two models go with run_family's frame: free them before the next
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        entry = report["results"][family]
        print(f"{family}: {entry.get('elapsed_s', '?')} s  {json.dumps(entry)[:600]}", flush=True)
        write(report, out)
    report["elapsed_s"] = round(time.monotonic() - total, 1)
    write(report, out)
    print("\n" + table(report))
    print(f"\nwrote {out} in {report['elapsed_s']} s")
    return 0 if all("error" not in e for e in report["results"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
