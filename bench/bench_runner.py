"""The real-time runner's acceptance measurements.

1. Timing (real clock, realtime=true): the simulated SO-101 at 50 Hz driven by the real `tiny` VLA
   (random weights, toy stats, 50-action chunks, 64x64 cameras) with an injected delay so that one
   inference takes ~100 ms; per strategy: ticks, missed ticks, tick jitter, inference latency, largest
   chunk-boundary jump.
2. Comparison (simulated time, realtime=false, a fixed 100 ms latency): largest chunk-boundary jump of
   rtc vs async (replace) and success of rtc vs sync on the same seeds, with `--checkpoint` (a trained
   checkpoint) or else the random tiny model (jumps only).

Writes bench/results/runner_timing.json and runner_compare.json and prints markdown tables.

    MUJOCO_GL=egl .venv/bin/python -m bench.bench_runner --ticks 10000 --strategies async,rtc
    MUJOCO_GL=egl .venv/bin/python -m bench.bench_runner --ticks 1500 --strategies sync --skip-compare
    MUJOCO_GL=egl .venv/bin/python -m bench.bench_runner --skip-timing --checkpoint <dir> --episodes 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from envs.sim_robot import SimRobot
from policies.vla import VLAPolicy
from vla.runner import Runner, RunnerConfig

RESULTS = Path(__file__).parent / "results"
TASKS = [f"touch the {c} cube" for c in ("red", "green", "blue")]


def random_tiny(directory: Path, image_size: int) -> Path:
    """The `tiny` VLA, randomly initialised with toy stats around the sim's units, saved as a checkpoint."""
    from vla.model.config import load_config
    from vla.model.vla import VLAModel

    torch.manual_seed(0)
    cfg = load_config("tiny", ["cameras=[front,wrist]", f"image_size=[{image_size},{image_size}]"])
    mean = np.array([0.0, -30.0, 15.0, 85.0, 0.0, 30.0])
    std = np.array([20.0, 15.0, 15.0, 15.0, 20.0, 15.0])
    stats = {
        key: {"mean": mean.copy(), "std": std.copy(), "min": mean - 3 * std, "max": mean + 3 * std}
        for key in ("observation.state", "action")
    }
    return VLAModel(cfg, stats=stats, tasks=TASKS).save_pretrained(directory / "tiny")


def compute_ms(policy: VLAPolicy, robot: SimRobot, guided: bool, n: int = 8) -> float:
    """Median compute time of one chunk (plain or guided), after two warm-up calls."""
    obs = robot.reset(seed=0)
    policy.reset(robot.task)
    chunk = policy.select_chunk(obs)
    times = []
    for _ in range(n + 2):
        start = time.perf_counter()
        if guided:
            policy.select_chunk_guided(obs, chunk, 5, 25)
        else:
            policy.select_chunk(obs)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[2:]))


def run_ticks(robot: SimRobot, policy: Any, cfg: RunnerConfig, ticks: int) -> dict[str, Any]:
    """Episodes back to back until `ticks` ticks have run; the runner's metrics and the wall time."""
    start = time.perf_counter()
    with Runner(robot, policy, cfg) as runner:
        seed = 0
        while runner.metrics()["ticks"] < ticks:
            runner.run_episode(seed, max_steps=ticks - runner.metrics()["ticks"])
            seed += 1
        return {**runner.metrics(), "wall_s": round(time.perf_counter() - start, 1)}


def timing(args: argparse.Namespace, ckpt: Path) -> list[dict[str, Any]]:
    from policies.process import ProcessPolicy

    robot = SimRobot(task="touch", image_size=args.image_size, max_episode_steps=args.episode_ticks)
    robot.connect()
    local = VLAPolicy(robot, checkpoint=str(ckpt), device="cpu")
    plain, guided = compute_ms(local, robot, False), compute_ms(local, robot, True)
    print(f"compute per chunk: plain {plain:.1f} ms, guided {guided:.1f} ms", flush=True)
    rows = []
    for inference in args.inference.split(","):
        if inference == "process":  # the policy in a child process, one torch thread as here
            node = {"_target_": "policies.vla.VLAPolicy", "checkpoint": str(ckpt), "device": "cpu"}
            policy: Any = ProcessPolicy(node, robot, torch_threads=1)
        else:
            policy = local
        for strategy in args.strategies.split(","):
            compute = guided if strategy == "rtc" else plain
            extra = max(0.0, args.latency_ms - compute)
            # Compute is slower while the sim runs beside it: a short calibration run sets the injected
            # delay so that the median inference latency is the target.
            cfg = RunnerConfig(strategy=strategy, rate_hz=args.rate, extra_latency_ms=extra, realtime=True)
            measured = (
                run_ticks(robot, policy, cfg, args.calibration_ticks)["infer_p50_ms"] or args.latency_ms
            )
            extra = max(0.0, extra + args.latency_ms - measured)
            cfg = RunnerConfig(strategy=strategy, rate_hz=args.rate, extra_latency_ms=extra, realtime=True)
            metrics = run_ticks(robot, policy, cfg, args.ticks if strategy != "sync" else args.sync_ticks)
            rows.append({**metrics, "inference": inference, "compute_ms": round(compute, 1)})
            print(json.dumps({k: rows[-1][k] for k in TIMING_KEYS}), flush=True)
        if policy is not local:
            policy.close()
    robot.disconnect()
    return rows


def compare(args: argparse.Namespace, ckpt: Path, trained: bool) -> list[dict[str, Any]]:
    """Same seeds, simulated time, a fixed latency: boundary jumps and success per strategy."""
    cfg_json = json.loads((ckpt / "config.json").read_text())["config"]
    size = int(cfg_json["image_size"][0]) if cfg_json.get("image_size") else args.image_size
    rate = args.compare_rate or (30.0 if trained else args.rate)
    rows = []
    for strategy in ("sync", "async", "rtc"):
        robot = SimRobot(task="touch", image_size=size)
        robot.connect()
        policy = VLAPolicy(robot, checkpoint=str(ckpt), device="cpu", seed=0)
        cfg = RunnerConfig(
            strategy=strategy,
            rate_hz=rate,
            extra_latency_ms=args.latency_ms,
            realtime=False,
            measure_compute=False,
        )
        per_episode = []
        start = time.perf_counter()
        with Runner(robot, policy, cfg) as runner:
            for seed in range(100_000, 100_000 + args.episodes):
                seen = len(runner.recorder.boundary_jumps)
                result = runner.run_episode(seed, max_steps=args.compare_steps)
                jumps = list(runner.recorder.boundary_jumps)[seen:]
                gaps = list(runner.recorder.discontinuities)[seen:]
                per_episode.append(
                    {
                        "seed": seed,
                        "success": result.success,
                        "max_jump": max(jumps, default=0.0),
                        "max_discontinuity": max(gaps, default=0.0),
                    }
                )
            m = runner.metrics()
        robot.disconnect()
        wins = sum(e["success"] for e in per_episode)
        rows.append(
            {
                "strategy": strategy,
                "rate_hz": rate,
                "latency_ms": args.latency_ms,
                "delay_ticks": m["inference_delay_ticks"],
                "episodes": len(per_episode),
                "successes": wins,
                "max_boundary_jump": m["max_boundary_jump"],
                "median_episode_max_jump": float(np.median([e["max_jump"] for e in per_episode])),
                "mean_boundary_jump": m["mean_boundary_jump"],
                "max_boundary_discontinuity": m["max_boundary_discontinuity"],
                "median_episode_max_discontinuity": float(
                    np.median([e["max_discontinuity"] for e in per_episode])
                ),
                "mean_boundary_discontinuity": m["mean_boundary_discontinuity"],
                "held_ticks": m["held_ticks"],
                "ticks": m["ticks"],
                "wall_s": round(time.perf_counter() - start, 1),
                "per_episode": per_episode,
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_episode"}), flush=True)
    return rows


TIMING_KEYS = ["inference", "strategy", "ticks", "missed_ticks", "late_ticks", "held_ticks", "jitter_p50_ms"]
TIMING_KEYS += [
    "jitter_p99_ms",
    "jitter_max_ms",
    "infer_p50_ms",
    "infer_p99_ms",
    "max_boundary_jump",
    "max_boundary_discontinuity",
    "wall_s",
]


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--strategies", default="sync,async,rtc")
    parser.add_argument("--sync-ticks", type=int, default=1500, help="ticks of the sync run (it stalls)")
    parser.add_argument(
        "--inference", default="process,thread", help="where the policy runs: process (a child), thread"
    )
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--calibration-ticks", type=int, default=250)
    parser.add_argument(
        "--episode-ticks", type=int, default=2000, help="sim episode length in the timing run"
    )
    parser.add_argument("--checkpoint", default=None, help="a trained checkpoint for the comparison")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--compare-steps", type=int, default=None, help="cap on ticks per compared episode")
    parser.add_argument("--compare-rate", type=float, default=None, help="default: 30 trained, else --rate")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core for inference, one for the control loop and the sim
    machine = f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}"
    with tempfile.TemporaryDirectory() as tmp:
        tiny = random_tiny(Path(tmp), args.image_size)
        if not args.skip_timing:
            rows = timing(args, tiny)
            out = {"benchmark": "runner_timing", "machine": machine, "date": str(date.today()), "rows": rows}
            out.update(rate_hz=args.rate, latency_ms=args.latency_ms, image_size=args.image_size)
            (RESULTS / f"runner_timing{args.tag}.json").write_text(json.dumps(out, indent=2))
            print(_table(rows, TIMING_KEYS))
        if not args.skip_compare:
            trained = args.checkpoint is not None
            rows = compare(args, Path(args.checkpoint) if trained else tiny, trained)
            out = {"benchmark": "runner_compare", "machine": machine, "date": str(date.today()), "rows": rows}
            out["model"] = (
                f"trained checkpoint {args.checkpoint}" if trained else "random tiny VLA (jumps only)"
            )
            (RESULTS / f"runner_compare{args.tag}.json").write_text(json.dumps(out, indent=2))
            keys = ["strategy", "delay_ticks", "episodes", "successes", "max_boundary_jump"]
            keys += ["median_episode_max_jump", "mean_boundary_jump", "max_boundary_discontinuity"]
            print(_table(rows, [*keys, "median_episode_max_discontinuity", "held_ticks"]))


if __name__ == "__main__":
    main()
