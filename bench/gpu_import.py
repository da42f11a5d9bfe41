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
bf16 noise expected at random weights, reported, not asserted. Goals marked in the table: ours_graphed
>= 2x LeRobot, and π0 <= 20 ms per chunk.

    HF_HUB_OFFLINE=1 python bench/gpu_import.py          # on an H100/H200, ~4-6 min (see per-family s)
    python bench/gpu_import.py --device cpu --smoke      # tiny sizes, fp32, CPU, < 60 s: the code path

--smoke shrinks the models with the test suite's own fixtures (tests/importer/), re-randomised at a large
gain so that the max |Δ| check means something (in fp32 the import is exact). Writes --out (default
$OUT/gpu_import.json where $OUT is set, else bench/results/gpu_import.json; atomically, after every
family) and prints a markdown table. Needs lerobot==0.6.1 and its dependencies (checked first).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a bare checkout

from vla.importer import import_policy
from vla.model.config import load_config
from vla.model.graphed import GraphedSampler, uncompile
from vla.model.vla import VLAModel

TASK = "pick up the red cube and put it in the bowl"
CAMERAS = ("top", "wrist", "side")
STATE_DIM = 6  # an SO-101: 5 joints and a gripper
ACTION_DIM = 6
FRAME = (480, 640)
SMOKE_FRAME = (24, 40)
CHUNK = 50
STEPS = 10
SMOKE_GAIN = 1.0
GOAL_RATIO = 2.0  # ours_graphed at least this many times faster than LeRobot
GOAL_PI0_MS = 20.0  # π0 per chunk, graphed
VARIANTS = ("lerobot", "ours_eager", "ours_graphed", "ours_compiled")


# ----------------------------------------------------------------------------- LeRobot's side


def _features(config: Any, frame: tuple[int, int]) -> None:
    from lerobot.configs import FeatureType, PolicyFeature

    config.input_features = {"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))}
    for cam in CAMERAS:
        config.input_features[f"observation.images.{cam}"] = PolicyFeature(FeatureType.VISUAL, (3, *frame))
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}


def _stats(quantiles: bool) -> dict[str, dict[str, torch.Tensor]]:
    """Normalisation stats of a 6-joint arm (degrees), with q01/q99 for π0.5's QUANTILES."""
    g = torch.Generator().manual_seed(2)
    out = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        mean, std = torch.randn(dim, generator=g) * 20, torch.rand(dim, generator=g) * 10 + 5
        out[key] = {"mean": mean, "std": std}
        if quantiles:
            out[key] |= {"q01": mean - 2 * std, "q99": mean + 2 * std}
    return out


def _smolvla(root: Path, device: torch.device, smoke: bool) -> tuple[Any, Any, Any]:
    """LeRobot's SmolVLAPolicy (SmolVLM2-500M shape, 16 VLM layers, expert width 0.75, 512 px) and its
    processors, built from a local VLM dir."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    from tests.importer.lerobot_smolvla import write_vlm_dir

    vlm_dir = root / "vlm"
    vlm_dir.mkdir()
    fields: dict[str, Any] = {"vlm_model_name": str(vlm_dir), "load_vlm_weights": False}
    if smoke:
        write_vlm_dir(vlm_dir)  # the import tests' tiny SmolVLM (4 layers, 64 wide, 32 px)
        fields |= {"num_vlm_layers": 4, "expert_width_multiplier": 0.5, "resize_imgs_with_padding": (32, 32)}
    else:
        backbone = load_config("smolvla").backbone  # SmolVLM2-500M's sizes, all 32 layers in the dir
        sizes = {f.name: getattr(backbone, f.name) for f in dataclasses.fields(backbone)}
        write_vlm_dir(vlm_dir, **(sizes | {"num_layers": None, "pretrained": None}))
    config = SmolVLAConfig(
        **fields,
        device=device.type,
        chunk_size=CHUNK,
        n_action_steps=CHUNK,
        num_steps=STEPS,
        push_to_hub=False,
    )
    _features(config, SMOKE_FRAME if smoke else FRAME)
    torch.manual_seed(0)
    policy = SmolVLAPolicy(config)  # 450M parameters: built on the host, as bench/peers_lerobot.py does
    pre, post = make_smolvla_pre_post_processors(config, _stats(False))
    return policy, pre, post


@contextlib.contextmanager
def _pi_module(family: str, tokenizer_dir: Path, smoke: bool) -> Iterator[tuple[Any, Any, Any]]:
    """(modeling, processor, config class) of LeRobot's π0 or π0.5, its tokenizer step naming our local
    tokenizer dir (the hub's PaliGemma tokenizer is not downloaded); --smoke: shrunk as the tests do."""
    from unittest import mock

    from tests.importer.lerobot_pi0 import shrunk

    if family == "pi0":
        from lerobot.policies.pi0 import modeling_pi0 as modeling
        from lerobot.policies.pi0 import processor_pi0 as processor
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as config_class
    else:
        from lerobot.policies.pi05 import modeling_pi05 as modeling  # type: ignore[no-redef]
        from lerobot.policies.pi05 import processor_pi05 as processor  # type: ignore[no-redef]
        from lerobot.policies.pi05.configuration_pi05 import (  # type: ignore[assignment]
            PI05Config as config_class,
        )
    if smoke:
        with shrunk((modeling, processor), tokenizer_dir):
            yield modeling, processor, config_class
        return
    real_step = processor.TokenizerProcessorStep

    def tokenizer_step(**kwargs: Any) -> Any:
        return real_step(**(kwargs | {"tokenizer_name": str(tokenizer_dir)}))

    with mock.patch.object(processor, "TokenizerProcessorStep", tokenizer_step):
        yield modeling, processor, config_class


def _pi(
    family: str, root: Path, device: torch.device, dtype: torch.dtype, smoke: bool
) -> tuple[Any, Any, Any]:
    """LeRobot's PI0Policy / PI05Policy at its defaults (gemma_2b + gemma_300m, SigLIP, 224 px), built on the
    device in LeRobot's own dtype handling (`dtype="bfloat16"`)."""
    from tests.importer.lerobot_pi0 import IMAGE, write_tokenizer_dir

    tokenizer_dir = root / "tokenizer"
    tokenizer_dir.mkdir()
    write_tokenizer_dir(tokenizer_dir)
    with _pi_module(family, tokenizer_dir, smoke) as (modeling, processor, config_class):
        config = config_class(
            device=device.type,
            dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
            chunk_size=CHUNK,
            n_action_steps=CHUNK,
            num_inference_steps=STEPS,
            push_to_hub=False,
            **({"image_resolution": (IMAGE, IMAGE)} if smoke else {}),
        )
        _features(config, SMOKE_FRAME if smoke else FRAME)
        torch.manual_seed(0)
        with torch.device(device):  # on a GPU: allocate there directly, not ~14 GB on the host first
            policy = getattr(modeling, "PI0Policy" if family == "pi0" else "PI05Policy")(config)
        make = getattr(processor, f"make_{family}_pre_post_processors")
        pre, post = make(config, _stats(family == "pi05"))
    return policy, pre, post


def rerandomise(module: torch.nn.Module, gain: float) -> None:
    """Matrices ~ gain/sqrt(fan_in), norm weights ~ 1 ± 0.25 gain, other vectors ~ 0.25 gain (a gain above
    ~1 makes a 10-step chunk of π0 chaotic: a 1e-6 change of the noise then moves fp32 actions by ~1e-3)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                w = torch.randn(p.shape, generator=g) * gain / math.sqrt(p[0].numel())
            else:
                w = (1.0 if "norm" in name else 0.0) + 0.25 * gain * torch.randn(p.shape, generator=g)
            p.copy_(w.to(p.dtype))


def build_theirs(
    family: str, root: Path, device: torch.device, dtype: torch.dtype, smoke: bool
) -> tuple[Any, Any, Any, Path]:
    """-> (their policy on the device in their dtype handling, pre, post, the saved policy dir)."""
    if family == "smolvla":
        policy, pre, post = _smolvla(root, device, smoke)
    else:
        policy, pre, post = _pi(family, root, device, dtype, smoke)
    if smoke:  # weights far from LeRobot's small init: the fp32 max |Δ| then tests the import
        rerandomise(policy, SMOKE_GAIN)
    source = root / "lerobot_policy"
    policy.save_pretrained(source)
    pre.save_pretrained(source)
    post.save_pretrained(source)
    if family == "smolvla" and dtype != torch.float32:
        policy.model.vlm_with_expert.vlm.to(dtype)  # LeRobot loads a pretrained VLM in bf16; the rest stays
    return policy.to(device).eval(), pre, post, source


def their_dtype(family: str, dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if dtype == torch.float32:
        return name
    if family == "smolvla":
        return f"VLM in {name}, action expert and projections in float32"
    return f"{name}, vision tower, projector and norms in float32 (LeRobot's dtype={name})"


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
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)


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
