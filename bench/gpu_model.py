"""GPU latency per action chunk of the full-size configs (random weights, built from config; no download).

For `smolvla` and `pi0` in bf16, batch 1, with 1 and 3 cameras (480x640 frames resized inside the model),
time one whole chunk (prefix encoding + `num_steps` denoising steps) as:

    eager             prefix encoded once, its key/value cache reused by every step
    eager_nocache     the joint prefix+actions pass recomputed at every step (reference)
    tick_to_action_*  (all cameras) numpy observation -> chunk on the host through `VLAPolicy`, eager or
                      graphed: what a control loop waits for
    cudagraph         `eager` captured in one CUDA graph at static shapes (vla.model.graphed.GraphedSampler)
    compiled_graph    torch.compile (inductor) of the prefix passes and the denoising step, then captured

each with the attention kernels named by --attention (`sdpa`: PyTorch's fused SDPA, which picks cuDNN for
masked attention on Hopper; `math`: explicit matmul-softmax-matmul, suffix `_math`). Also a per-phase
breakdown (embed_prefix = vision + text + state embedding, encode_prefix = backbone layers, denoise_step =
one expert step with the cache) and the top ops of one eager chunk from torch.profiler.

Median and p90 over `--runs` timed runs after warm-up, host clock around a synchronised call (what a control
loop waits for). Each measurement is wrapped so one failure does not lose the others; a time budget skips
what would not fit; the JSON is rewritten after every step (`--out`, default $OUT/model_gpu.json or
bench/results/model_gpu.json).

    python -m bench.gpu_model                       # the full run, ~4 min on an H200 (bf16)
    python -m bench.gpu_model --device cpu --tiny   # smoke mode for tests: tiny config, a few runs
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla.model import VLAModel
from vla.model.batch import ModelInputs
from vla.model.config import load_config
from vla.model.graphed import GraphedSampler, uncompile

FRAME = (480, 640)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "min_ms": round(times[0], 3),
        "runs": runs,
    }


def build(name: str, device: torch.device, dtype: torch.dtype) -> VLAModel:
    cfg = load_config(name)
    cfg.image_size = None  # camera frames of any size; the model resizes to the backbone's resolution
    torch.manual_seed(0)
    with torch.device(device):
        model = VLAModel(cfg, tasks=["pick up the red cube and put it in the bowl"])
    return model.to(dtype).eval()


def make_inputs(model: VLAModel, cameras: int, device: torch.device) -> ModelInputs:
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    batch: dict[str, Any] = {
        f"observation.images.{c}": torch.rand(1, 3, *FRAME, generator=g) for c in cfg.cameras
    }
    batch["observation.state"] = torch.randn(1, 6, generator=g)
    batch["task"] = ["pick up the red cube and put it in the bowl"]
    inputs = model.prepare_inputs(batch)
    inputs.images = inputs.images[:, :cameras].contiguous().to(device)  # [1, cameras, 3, H, W]
    return inputs


def captured(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """fn captured in a CUDA graph (replay closure); on CPU fn itself. For the per-phase breakdown."""
    if device.type != "cuda":
        return fn
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        fn()
    return graph.replay


def breakdown(
    model: VLAModel, inputs: ModelInputs, noise: torch.Tensor, device: torch.device, runs: int
) -> dict[str, Any]:
    """Median ms of each phase of a chunk, each captured alone: where the time goes."""
    flow = model.flow
    assert flow is not None
    with torch.no_grad():
        prefix, layout = model.embed_prefix_fn(model.backbone, model.prefix_state_proj, inputs)
        cache, context = model.encode_observation(inputs)  # the prefix (+ an expert-stream state token)
    t = torch.ones(noise.shape[0], device=device)
    phases = {
        "embed_prefix": lambda: model.embed_prefix_fn(model.backbone, model.prefix_state_proj, inputs),
        "encode_prefix": lambda: model.encode_prefix_fn(model.backbone, prefix, layout),
        "denoise_step": lambda: flow.velocity(model.backbone, noise, t, context, cache=cache),
    }
    out: dict[str, Any] = {}
    for name, fn in phases.items():
        try:
            out[name] = timed(captured(fn, device), device, runs, 2)["median_ms"]
        except Exception as e:
            out[name] = f"{type(e).__name__}: {e}"[:300]
    return out


def kernel_profile(fn: Callable[[], Any], device: torch.device, top: int = 12) -> list[list[Any]]:
    """The kernels/ops with the most self device time in one call: [name, total ms, calls]."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    rows = []
    for e in prof.key_averages():
        dev: Any
        if device.type == "cuda":
            dev = getattr(e, "self_device_time_total", None)
            if dev is None:
                dev = getattr(e, "self_cuda_time_total", 0)
        else:
            dev = e.self_cpu_time_total
        if dev > 0:
            rows.append([e.key[:90], round(dev / 1e3, 3), e.count])
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def graphed(
    model: VLAModel, inputs: ModelInputs, noise: torch.Tensor, compile_mode: str | None = None
) -> Callable[[], torch.Tensor]:
    sampler = GraphedSampler(
        model, inputs, compile=compile_mode is not None, compile_mode=compile_mode or "default"
    )
    return lambda: sampler(inputs, noise)


def bench_one(
    model: VLAModel,
    cameras: int,
    device: torch.device,
    args: argparse.Namespace,
    deadline: float,
    compiled: bool = False,
) -> dict[str, Any]:
    """All eager/graph variants, or (compiled=True) only the compiled one."""
    inputs = make_inputs(model, cameras, device)
    noise = torch.randn(1, model.config.chunk_size, model.config.max_action_dim, device=device)
    prefix_tokens = cameras * model.backbone.tokens_per_image + model.config.max_text_tokens + 1
    result: dict[str, Any] = {"cameras": cameras, "prefix_tokens": prefix_tokens}
    reference: torch.Tensor | None = None

    def attempt(name: str, make: Callable[[], Callable[[], torch.Tensor]], runs: int) -> None:
        nonlocal reference
        if time.monotonic() > deadline:
            result[name] = {"skipped": "time budget"}
            return
        started = time.monotonic()
        try:
            fn = make()
            out = fn().float()  # first call: compiles / captures where the variant does
            setup_s = round(time.monotonic() - started, 1)
            stats: dict[str, Any] = dict(timed(fn, device, runs, args.warmup))
            if reference is None:
                reference = out.clone()
            stats["max_abs_diff_vs_first"] = round((out - reference).abs().max().item(), 5)
            stats["setup_s"] = setup_s
            result[name] = stats
        except Exception as e:  # keep going: one failure must not lose the other numbers
            result[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
            traceback.print_exc()
        print(f"  {name:15s} {result[name]}", flush=True)

    def eager(use_cache: bool) -> Callable[[], Callable[[], torch.Tensor]]:
        return lambda: lambda: model.sample_from_inputs(inputs, noise=noise, use_cache=use_cache)

    suffix = "" if model.backbone.attention == "sdpa" else f"_{model.backbone.attention}"
    if not compiled:
        if "eager" in args.variants:
            attempt("eager" + suffix, eager(True), args.runs)
        if "eager_nocache" in args.variants:
            attempt("eager_nocache" + suffix, eager(False), max(5, args.runs // 4))
    if device.type == "cuda" and not compiled and "cudagraph" in args.variants:
        attempt("cudagraph" + suffix, lambda: graphed(model, inputs, noise), args.runs)
    if not compiled:
        result["breakdown" + suffix + "_ms"] = breakdown(model, inputs, noise, device, max(5, args.runs // 3))
        if args.profile and not suffix:
            try:
                result["eager_profile"] = kernel_profile(eager(True)(), device)
            except Exception as e:
                result["eager_profile"] = f"{type(e).__name__}: {e}"[:300]
    if compiled:
        reference = model.sample_from_inputs(inputs, noise=noise).float()  # eager, to compare against
        try:
            attempt(
                "compiled_graph" + suffix,
                lambda: graphed(model, inputs, noise, compile_mode=args.compile_mode),
                args.runs,
            )
            if "median_ms" in result.get("compiled_graph" + suffix, {}):
                result["breakdown_compiled" + suffix + "_ms"] = breakdown(
                    model, inputs, noise, device, max(5, args.runs // 3)
                )
        finally:
            uncompile(model)
        return result
    host = timed(lambda: make_inputs(model, cameras, device), device, 5, 1)
    result["prepare_inputs_host"] = host  # validation + tokenising + normalising, outside the graph
    if cameras == len(model.config.cameras) and "tick_to_action" in args.variants:
        for name, graph in (("tick_to_action_eager", False), ("tick_to_action_graphed", True)):
            if graph and device.type != "cuda":
                continue
            attempt(name + suffix, functools.partial(tick_to_action, model, graph), args.runs)
    return result


def tick_to_action(model: VLAModel, graph: bool) -> Callable[[], torch.Tensor]:
    """What the runner waits for at a tick: the robot's observation (uint8 480x640 frames, a state vector,
    numpy) -> the chunk in robot units on the host, through `VLAPolicy` (pinned-memory uploads, the
    prompt, normalisation, sampling eager or from its CUDA graph, un-normalisation, read-back)."""
    from policies.vla import VLAPolicy

    policy = VLAPolicy.from_model(model, graphed=graph)
    policy.reset("pick up the red cube and put it in the bowl")
    rng = np.random.default_rng(0)
    obs = {
        f"observation.images.{c}": rng.integers(0, 256, (*FRAME, 3), dtype=np.uint8)
        for c in model.config.cameras
    }
    obs["observation.state"] = rng.normal(size=6).astype(np.float32)
    return lambda: torch.as_tensor(policy.select_chunk(obs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="smoke mode: the tiny config, few runs")
    parser.add_argument("--configs", default="smolvla,pi0")
    parser.add_argument("--cameras", default="1,3")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (inductor)")
    parser.add_argument("--compile-cameras", default="3", help="camera counts that get the compiled variant")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip measurements past this time")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--variants", default="eager,eager_nocache,cudagraph,tick_to_action", help="besides compiled_graph"
    )
    parser.add_argument(
        "--attention", default="sdpa,math", help="attention kernels to compare (attention.attend)"
    )
    parser.add_argument("--compile-attention", default="math", help="attention kernel(s) for compiled_graph")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.configs, args.runs, args.warmup = "tiny", min(args.runs, 3), 1
        args.dtype = "float32" if args.device == "cpu" else args.dtype
    args.compile_cameras = [int(c) for c in str(args.compile_cameras).split(",") if c]
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    out = Path(
        args.out
        or (
            Path(os.environ["OUT"]) / "model_gpu.json"
            if "OUT" in os.environ
            else "bench/results/model_gpu.json"
        )
    )
    deadline = time.monotonic() + args.budget_s
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "dtype": args.dtype,
        "batch": 1,
        "results": {},
    }
    models: dict[str, VLAModel] = {}
    for name in args.configs.split(","):  # phase 1: every config, eager and graphed
        print(f"{name}: building", flush=True)
        entry: dict[str, Any] = {}
        report["results"][name] = entry
        try:
            started = time.monotonic()
            model = models[name] = build(name, device, dtype)
            entry |= {
                "params_m": round(model.num_parameters() / 1e6, 1),
                "chunk_size": model.config.chunk_size,
                "num_steps": model.config.num_steps,
                "tokens_per_image": model.backbone.tokens_per_image,
                "build_s": round(time.monotonic() - started, 1),
            }
            for cameras in [int(c) for c in args.cameras.split(",")]:
                cameras = min(cameras, len(model.config.cameras))
                for impl in args.attention.split(","):
                    model.backbone.attention = impl
                    entry.setdefault(f"{cameras}cam", {}).update(
                        bench_one(model, cameras, device, args, deadline)
                    )
                model.backbone.attention = "sdpa"
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {e}"[:500]
            traceback.print_exc()
        write(report, out, device)
    if device.type == "cuda" and args.compile:  # phase 2: compiled variants, while the budget lasts
        for name, model in models.items():
            for cameras in args.compile_cameras:
                key = f"{min(cameras, len(model.config.cameras))}cam"
                print(f"{name} {key}: compiling", flush=True)
                for impl in args.compile_attention.split(","):
                    model.backbone.attention = impl
                    try:
                        extra = bench_one(model, int(key[:-3]), device, args, deadline, compiled=True)
                        extra.pop("cameras", None)
                        extra.pop("prefix_tokens", None)
                        report["results"][name].setdefault(key, {}).update(extra)
                    except Exception as e:
                        entry = report["results"][name].setdefault(key, {})
                        entry[f"compiled_graph_{impl}"] = {"error": str(e)[:500]}
                        traceback.print_exc()
                model.backbone.attention = "sdpa"
                write(report, out, device)
    print_table(report)
    print(f"wrote {out}")
    return 0


def write(report: dict[str, Any], out: Path, device: torch.device) -> None:
    """Write after every step, so partial results survive a crash or a timeout."""
    if device.type == "cuda":
        report["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def print_table(report: dict[str, Any]) -> None:
    variants = ["eager", "cudagraph", "cudagraph_math", "compiled_graph", "compiled_graph_math"]
    variants += ["tick_to_action_eager", "tick_to_action_graphed"]
    print(f"\n{report['device']}, {report['dtype']}, batch 1, median (p90) ms per chunk")
    print("| config | cameras | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for name, entry in report["results"].items():
        for key, res in entry.items():
            if not key.endswith("cam") or not isinstance(res, dict):
                continue
            cells = []
            for v in variants:
                r = res.get(v, {})
                cells.append(
                    f"{r['median_ms']:.1f} ({r['p90_ms']:.1f})"
                    if "median_ms" in r
                    else ("err" if "error" in r else "-")
                )
            print(f"| {name} | {res['cameras']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
