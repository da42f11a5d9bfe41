"""Latency per action chunk: our VLA against LeRobot's SmolVLA and π0 (lerobot 0.6.1) at equal configurations.

Every model is built from local configs with random weights (nothing is downloaded) and runs on the same
device, dtype and torch thread count, on the same inputs: batch 1, one random image in [0, 1] per camera
(B, 3, H, W), a random 6-D state, a text prompt. Pairs (rows):

    tiny     configs/model/tiny.yaml   vs SmolVLA on the same tiny SmolVLM config (4 layers, 2 cameras at 64)
    smolvla  configs/model/smolvla.yaml vs SmolVLA at its defaults (SmolVLM2-500M shape from our yaml's
             fields, 16 VLM layers, expert width 0.75, 3 cameras at 512)
    pi0      configs/model/pi0.yaml    vs π0 (gemma_2b + gemma_300m, 3 cameras at 224); their unused LM heads
             (790M parameters) are dropped after construction

Both sides: chunk 50, 10 denoising steps, the prefix key/value cache reused by every step. What is timed is
the whole chunk call a user makes on tensors already on the device:

    ours    VLAModel.sample_actions(batch): validation, state normalisation, prompt tokenisation and padding,
            image resize-with-pad, prefix, 10 steps, action un-normalisation (what VLAPolicy.select_chunk
            calls, minus the numpy -> tensor copy of the observation); `--device cuda` adds the CUDA-graph
            path VLAPolicy deploys on a GPU
    theirs  policy.predict_action_chunk(batch): their image resize/pad and [-1, 1] scaling, state padding,
            prefix, 10 steps (their pre/post-processor pipelines, i.e. normalisation and tokenisation, are
            not part of it: token ids are given, as many as our prompt is padded to, with a bool mask
            marking as many real tokens as our prompt has)

Our joint attention runs on PyTorch's SDPA; a second row of ours uses the explicit matmul-softmax-matmul
path (`backbone.attention = "math"`), which is what LeRobot's hand-written eager attention does, so the
kernel's share is visible. Each pair runs in its own subprocess (`--worker`); within one, our and their
calls alternate round by round so machine noise hits both; π0's two models (~13 GB and ~16 GB in fp32)
run in separate subprocesses, one after the other, each after a free-memory check. Median, p90 and min of
the timed runs after warm-up. Writes bench/results/peers_latency.json (or --out) and prints a table.

    python -m bench.bench_peers                                  # all pairs, all cores, CPU fp32
    python -m bench.bench_peers --pairs tiny,smolvla --threads 1 # the CPU-cheap rows
    python -m bench.bench_peers --device cuda --dtype bfloat16   # on a GPU
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
from bench.peers_lerobot import (  # noqa: E402 (after the offline settings above)
    ACTION_DIM,
    STATE_DIM,
    TASK,
    THEIRS_COMMON,
    BenchError,
    build_pi0,
    build_smolvla,
    expert_width,
    pi0_params_meta,
    theirs_call,
)
from bench.peers_ours import (  # noqa: E402
    EXIT_MISSING,
    build_bytes,
    build_ours,
    check_memory,
    frame_size,
    interleaved,
    make_inputs,
    ours_calls,
    ours_info,
    ours_params_meta,
    pair_config,
    summary,
)

PAIRS = ("tiny", "smolvla", "pi0")
SEPARATE_SIDES = ("pi0",)  # pairs whose two models run in separate processes, one after the other
REQUIRED = ("torch", "transformers", "tokenizers", "lerobot")
GOAL = 2.0  # the speed-up we aim for: their latency / ours


def missing_packages() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------- worker


def run_worker(pair: str, side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build and time one pair (side "both": ours and theirs interleaved) or one side of it."""
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: no CUDA device visible to torch")
    cfg = pair_config(pair)
    frame = frame_size(cfg, args.frame)
    runs = args.pi0_runs if pair == "pi0" else args.runs
    warmup = args.pi0_warmup if pair == "pi0" else args.warmup
    result: dict[str, Any] = {"pair": pair, "side": side, "variants": {}, "memory": {}}

    calls: dict[str, Callable[[], Any]] = {}
    errors: dict[str, str] = {}
    infos: dict[str, dict[str, Any]] = {}
    valid_tokens: int | None = None
    model = policy = None
    if side in ("ours", "both"):
        if pair in SEPARATE_SIDES:
            result["memory"]["ours"] = check_memory(
                f"ours ({pair})", build_bytes(ours_params_meta(cfg)), device
            )
        started = time.monotonic()
        model = build_ours(cfg, device, dtype)
        info = ours_info(model, pair, dtype)
        info["build_s"] = round(time.monotonic() - started, 1)
        valid_tokens = info["text_valid_tokens"]
        infos["ours"] = info
    if valid_tokens is None:  # theirs alone: our prompt's length without building our model
        from vla.model.tokenizer import TextTokenizer

        _, valid = TextTokenizer.from_tasks([TASK]).encode_prompts([TASK], None, cfg.max_text_tokens)
        valid_tokens = int(valid.sum())
    batch = make_inputs(cfg, frame, device, valid_tokens)
    if model is not None:
        calls |= ours_calls(model, batch, device, errors, math=not args.no_math)
    if side in ("theirs", "both"):
        if pair in SEPARATE_SIDES:
            result["memory"]["theirs"] = check_memory(
                f"LeRobot {pair}", build_bytes(pi0_params_meta(cfg, frame)), device
            )
        started = time.monotonic()
        if pair == "pi0":
            policy, info = build_pi0(cfg, frame, device, dtype)
        else:
            policy, info = build_smolvla(cfg, frame, device, dtype)
        info |= THEIRS_COMMON
        info["build_s"] = round(time.monotonic() - started, 1)
        infos["theirs"] = info
        calls["theirs"] = theirs_call(policy, batch)

    times, outputs = interleaved(calls, device, runs, warmup, errors)
    expected = (1, cfg.chunk_size, ACTION_DIM)
    for name, call_times in times.items():
        shape = tuple(outputs[name].shape)
        if shape != expected:
            errors[name] = f"chunk shape {shape}, expected {expected}"
            continue
        if not torch.isfinite(outputs[name].float()).all():
            errors[name] = "the chunk has non-finite values"
            continue
        base = dict(infos["ours" if name.startswith("ours") else "theirs"])
        if name.startswith("ours"):
            base["attention"] = {
                "ours": "sdpa (F.scaled_dot_product_attention)",
                "ours_math": "math (explicit matmul-softmax-matmul, fp32 softmax)",
                "ours_graphed": "sdpa, whole chunk replayed from a CUDA graph (VLAPolicy's GPU default)",
            }[name]
        result["variants"][name] = base | summary(call_times) | {"chunk_shape": list(shape)}
    result["config"] = {
        "cameras": len(cfg.cameras),
        "frame": list(frame),
        "backbone_image_size": int(cfg.backbone.image_size),
        "backbone": (
            f"{cfg.backbone.family}, {cfg.backbone.hidden_size} wide, "
            f"{cfg.backbone.num_layers or cfg.backbone.layers} layers"
        ),
        "expert_width": expert_width(cfg),
        "chunk_size": cfg.chunk_size,
        "num_steps": cfg.num_steps,
        "state_dim": STATE_DIM,
        "action_dim": ACTION_DIM,
        "text_tokens": int(cfg.max_text_tokens),
        "text_valid_tokens": valid_tokens,
        "runs": runs,
        "warmup": warmup,
    }
    result["torch_threads"] = torch.get_num_threads()
    if errors:
        result["variant_errors"] = errors
    return result


def worker_main(args: argparse.Namespace) -> int:
    pair, _, side = args.worker.partition(":")
    side = side or "both"
    if pair not in PAIRS or side not in ("ours", "theirs", "both"):
        print(f"error: --worker {args.worker!r}: expected PAIR[:ours|theirs] with PAIR in {PAIRS}")
        return 1
    missing = missing_packages()
    if missing:
        print(f"error: missing package(s) {', '.join(missing)}: install them in this environment")
        return EXIT_MISSING

    try:
        result = run_worker(pair, side, args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.code
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_MISSING
    out = json.dumps(result, indent=2)
    if args.worker_out:
        Path(args.worker_out).write_text(out + "\n")
    else:
        print(out)
    return 0


# ---------------------------------------------------------------------------------------------- driver


def spawn(job: str, args: argparse.Namespace) -> dict[str, Any]:
    """One worker subprocess -> its JSON, or {"error": ...} (the worker's last stderr line)."""
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as d:
        out = Path(d) / "result.json"
        cmd = [sys.executable, "-m", "bench.bench_peers", "--worker", job, "--worker-out", str(out)]
        cmd += ["--runs", str(args.runs), "--warmup", str(args.warmup), "--threads", str(args.threads)]
        cmd += ["--pi0-runs", str(args.pi0_runs), "--pi0-warmup", str(args.pi0_warmup)]
        cmd += ["--device", args.device, "--dtype", args.dtype] + (["--no-math"] if args.no_math else [])
        if args.frame is not None:
            cmd += ["--frame", f"{args.frame[0]}x{args.frame[1]}"]
        print(f"[{job}] running ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.worker_timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": f"worker {job} ran past --worker-timeout {args.worker_timeout} s", "code": 124}
        elapsed = round(time.monotonic() - started, 1)
        if proc.returncode != 0 or not out.is_file():
            lines = [line for line in (proc.stderr + proc.stdout).strip().splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("error:")]
            message = (errors or lines or [f"exit code {proc.returncode}"])[-1]
            print(f"[{job}] failed after {elapsed} s: {message}", file=sys.stderr, flush=True)
            return {"error": message, "code": proc.returncode}
        result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = elapsed
    print(f"[{job}] done in {elapsed} s", file=sys.stderr, flush=True)
    return result


def merge(pair: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [p["error"] for p in parts if "error" in p]
    errors += [f"{name}: {e}" for p in parts for name, e in p.get("variant_errors", {}).items()]
    entry: dict[str, Any] = {"variants": {}}
    for part in parts:
        if "error" in part:
            continue
        entry["variants"] |= part["variants"]
        entry["config"] = part["config"]
        entry.setdefault("memory", {}).update(part.get("memory", {}))
        entry["torch_threads"] = part["torch_threads"]
    if errors:
        entry["errors"] = errors
    variants = entry["variants"]
    if "theirs" in variants:
        theirs = variants["theirs"]["median_ms"]
        for name in ("ours", "ours_math", "ours_graphed"):
            if name in variants:
                ratio = theirs / variants[name]["median_ms"]
                variants[name]["speedup_vs_theirs"] = round(ratio, 2)
                variants[name]["meets_goal"] = ratio >= GOAL
        if "ours" in variants:
            entry["speedup"] = variants["ours"]["speedup_vs_theirs"]
        params = variants["theirs"]["params_m"], variants.get("ours", {}).get("params_m")
        if params[1]:
            entry["params_ratio_theirs_over_ours"] = round(params[0] / params[1], 3)
    entry["order"] = (
        "separate processes, ours then theirs" if pair in SEPARATE_SIDES else "interleaved in one process"
    )
    return entry


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Latency per action chunk, batch 1, {report['device']} {report['dtype']}, "
        f"{report['torch_threads']} torch threads ({report['machine']})",
        "",
        "| pair | model | attention | params (M) | median ms | p90 ms | min ms | speed-up theirs/ours "
        f"| goal ≥ {GOAL:g}× |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {"ours": "ours", "ours_math": "ours", "ours_graphed": "ours (CUDA graph)", "theirs": "LeRobot"}
    for pair, entry in report["pairs"].items():
        for name in ("ours", "ours_math", "ours_graphed", "theirs"):
            v = entry["variants"].get(name)
            if v is None:
                continue
            attention = v["attention"].split(" ")[0].rstrip(",")
            ratio = f"{v['speedup_vs_theirs']:.2f}×" if "speedup_vs_theirs" in v else ""
            goal = ("yes" if v["meets_goal"] else "no") if "meets_goal" in v else ""
            lines.append(
                f"| {pair} | {labels[name]} | {attention} | {v['params_m']} | {v['median_ms']:.1f} "
                f"| {v['p90_ms']:.1f} | {v['min_ms']:.1f} | {ratio} | {goal} |"
            )
        for error in entry.get("errors", []):
            lines.append(f"| {pair} | failed: {error} | | | | | | | |")
    return "\n".join(lines)


def driver_main(args: argparse.Namespace) -> int:
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown or not pairs:
        print(f"error: --pairs {args.pairs!r}: choose from {', '.join(PAIRS)}", file=sys.stderr)
        return 1
    missing = missing_packages()
    if missing:
        print(
            f"error: missing package(s) {', '.join(missing)}: install them in this environment "
            "(LeRobot: pip install lerobot==0.6.1)",
            file=sys.stderr,
        )
        return EXIT_MISSING
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "lerobot": package_version("lerobot"),
        "device": args.device,
        "dtype": args.dtype,
        "torch_threads": args.threads,
        "goal": f">= {GOAL:g}x (theirs / ours, median)",
        "timed": {
            "ours": "VLAModel.sample_actions(batch): validate, normalise state, tokenise and pad the prompt, "
            "resize images, prefix + KV cache, denoising steps, un-normalise",
            "theirs": "policy.predict_action_chunk(batch): image resize/pad and scaling, state padding, "
            "prefix + KV cache, denoising steps (token ids given; their normalisation/tokenisation "
            "pipelines not run)",
        },
        "pairs": {},
    }
    status = 0
    for pair in pairs:
        jobs = [f"{pair}:ours", f"{pair}:theirs"] if pair in SEPARATE_SIDES else [pair]
        parts = [spawn(job, args) for job in jobs]
        if any(part.get("code") == EXIT_MISSING for part in parts):
            print(f"error: {next(p['error'] for p in parts if 'error' in p)}", file=sys.stderr)
            return EXIT_MISSING
        if any("error" in part or "variant_errors" in part for part in parts):
            status = 1
        report["pairs"][pair] = merge(pair, parts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(table(report))
    print(f"\nwrote {out}")
    return status


def parse_frame(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        return int(h), int(w or h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frame {text!r}: expected HxW, e.g. 480x640") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated subset of tiny,smolvla,pi0")
    parser.add_argument("--runs", type=int, default=10, help="timed chunks per model (tiny, smolvla)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed chunks per model first (tiny, smolvla)"
    )
    parser.add_argument("--pi0-runs", type=int, default=3, help="timed chunks per model (pi0)")
    parser.add_argument("--pi0-warmup", type=int, default=None, help="default: min(1, --warmup)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--no-math", action="store_true", help="skip the row of ours with math attention")
    parser.add_argument("--frame", type=parse_frame, default=None, help="camera frame HxW (default: native)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "peers_latency.json"))
    parser.add_argument("--worker-timeout", type=float, default=7200.0, help="seconds per worker process")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # PAIR[:ours|theirs]
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pi0_warmup is None:
        args.pi0_warmup = min(1, args.warmup)
    if args.runs < 1 or args.pi0_runs < 1 or args.warmup < 0 or args.pi0_warmup < 0 or args.threads < 1:
        parser.error("--runs/--pi0-runs must be >= 1, --warmup/--pi0-warmup >= 0, --threads >= 1")
    if args.worker:
        return worker_main(args)
    return driver_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
