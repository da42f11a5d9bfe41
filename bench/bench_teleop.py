"""Teleoperation and deployment acceptance runs on emulated hardware (no arm needed).

1. Leader -> follower at 100 Hz for `--seconds` (60): two `vla-emulate` SO-101 buses (leader and follower)
   with `faults.corrupt`, `vla-teleop` between them. Ticks, missed ticks, jitter, and per bus the damaged
   replies injected by its emulator vs detected and retried by our driver.
2. Deploy vs rollout (`--checkpoint`): the same checkpoint, the same 50 held-out seeds, the same runner
   settings (simulated time, a fixed latency), once with `vla-rollout` on the plain simulation and once
   with `vla-deploy` on the virtual SO-101 (the whole serial path, with corrupted replies injected).

Writes bench/results/teleop.json (and deploy_vs_rollout.json) and prints markdown tables.

    .venv/bin/python -m bench.bench_teleop --seconds 60
    .venv/bin/python -m bench.bench_teleop --skip-teleop --checkpoint outputs/demo/train/checkpoints/last
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from hardware.calibration import MotorCalibration, save
from hardware.specs import ARMS

RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent


def _emulator(robot: str, *overrides: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(BIN / "vla-emulate"), f"robot={robot}", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("port: "):
        raise RuntimeError(f"vla-emulate did not start: {line!r}")
    return proc, line.removeprefix("port: ").strip()


def _injected(proc: subprocess.Popen) -> dict[str, int]:
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    m = re.search(r"served (\d+) requests.*faults injected: (\d+) corrupted, (\d+) garbage", err)
    assert m is not None, err
    return {"requests": int(m[1]), "corrupted": int(m[2]), "garbage": int(m[3])}


def _calibration(path: Path, robot: str) -> Path:
    cal = {
        j.name: MotorCalibration(j.id, 0, 0, 1247, 2847)
        if j.name != "gripper"
        else MotorCalibration(j.id, 0, 0, 2000, 3000)
        for j in ARMS[robot].joints
    }
    return save(path, cal)


def teleop(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    faults = [f"faults.corrupt={args.corrupt}"]
    leader, lport = _emulator("so101_leader", *faults, "seed=1")
    follower, fport = _emulator("so101", *faults, "seed=2")
    try:
        cmd = [
            str(BIN / "vla-teleop"),
            "teleop=so101_leader",
            f"teleop.leader.port={lport}",
            f"teleop.leader.calibration={_calibration(tmp / 'leader.json', 'so101_leader')}",
            "robot=so101",
            f"robot.port={fport}",
            f"robot.calibration={_calibration(tmp / 'follower.json', 'so101')}",
            f"runner.rate_hz={args.rate}",
            f"duration_s={args.seconds}",
            f"output_dir={tmp / 'teleop'}",
            "progress=false",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    finally:
        injected = {"teleop": _injected(leader), "robot": _injected(follower)}
    m = json.loads((tmp / "teleop" / "runner_metrics.json").read_text())
    keys = [
        "ticks",
        "missed_ticks",
        "late_ticks",
        "held_ticks",
        "jitter_p50_ms",
        "jitter_p99_ms",
        "jitter_max_ms",
    ]
    return {
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "corrupt": args.corrupt,
        "exit_code": done.returncode,
        **{k: m[k] for k in keys},
        "buses": {side: {**m["bus"][side], "injected": injected[side]} for side in ("teleop", "robot")},
    }


def deploy_vs_rollout(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    common = [
        f"policy.checkpoint={args.checkpoint}",
        "policy.n_action_steps=10",
        "runner.realtime=false",
        "runner.measure_compute=false",
        f"runner.extra_latency_ms={args.latency_ms}",
        f"episodes={args.episodes}",
        "seed=100000",
        "progress=false",
    ]
    task = f"={args.task}"
    rollout = subprocess.run(
        [str(BIN / "vla-rollout"), f"robot.task{task}", "videos=0", f"output_dir={tmp / 'rollout'}", *common],
        capture_output=True,
        text=True,
    )
    deploy = subprocess.run(
        [
            str(BIN / "vla-deploy"),
            "robot=virtual_so101",
            f"robot.task{task}",
            f"robot.faults.corrupt={args.corrupt}",
            f"output_dir={tmp / 'deploy'}",
            *common,
        ],
        capture_output=True,
        text=True,
    )
    for name, done in (("vla-rollout", rollout), ("vla-deploy", deploy)):
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
    r = json.loads((tmp / "rollout" / "report.json").read_text())
    d = json.loads((tmp / "deploy" / "deploy_report.json").read_text())
    r_wins = [bool(e["success"]) for e in r["per_episode"]]
    d_wins = [bool(e["success"]) for e in d["episodes"]]
    return {
        "checkpoint": args.checkpoint,
        "task": args.task,
        "episodes": args.episodes,
        "seeds": [100000, 100000 + args.episodes - 1],
        "latency_ms": args.latency_ms,
        "rollout_success": sum(r_wins) / len(r_wins),
        "deploy_success": sum(d_wins) / len(d_wins),
        "same_outcome_episodes": sum(a == b for a, b in zip(r_wins, d_wins, strict=False)),
        "deploy_bus": d["metrics"]["bus"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--corrupt", type=float, default=0.05)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--task", default="touch")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--skip-teleop", action="store_true")
    args = parser.parse_args()
    machine = f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}"
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_teleop:
            out = {
                "benchmark": "teleop",
                "machine": machine,
                "date": str(date.today()),
                **teleop(args, Path(tmp)),
            }
            (RESULTS / "teleop.json").write_text(json.dumps(out, indent=2))
            print(json.dumps(out, indent=2))
        if args.checkpoint:
            out = {"benchmark": "deploy_vs_rollout", "machine": machine, "date": str(date.today())}
            out.update(deploy_vs_rollout(args, Path(tmp)))
            (RESULTS / "deploy_vs_rollout.json").write_text(json.dumps(out, indent=2))
            print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
