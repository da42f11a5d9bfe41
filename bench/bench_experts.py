"""Scripted-expert quality: success rate and mean episode length over seeded episodes per task.

Rendering is off (cameras=()): the expert reads privileged state, so images do not change the result.
Writes bench/results/experts.json and prints a markdown table.

    .venv/bin/python -m bench.bench_experts [--episodes 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from envs import TASKS
from envs.sim_robot import SimRobot
from policies.scripted import ScriptedExpert
from vla.runner import Runner, RunnerConfig

RESULTS = Path(__file__).parent / "results" / "experts.json"


def evaluate(task: str, episodes: int) -> dict:
    """Run seeds 0..episodes-1 of `task`; success is LeRobot's rule (is_success at any step)."""
    robot = SimRobot(task=task, cameras=())
    robot.connect()
    try:
        policy = ScriptedExpert(robot)
        limit = robot.env.max_episode_steps
        start = time.perf_counter()
        runner = Runner(robot, policy, RunnerConfig(realtime=False, measure_compute=False))  # the plain loop
        results = [runner.run_episode(seed) for seed in range(episodes)]
        seconds = time.perf_counter() - start
    finally:
        robot.disconnect()
    return {
        "task": task,
        "episodes": episodes,
        "success_rate": sum(r.success for r in results) / episodes,
        "mean_length": float(np.mean([r.steps for r in results])),
        "max_steps": limit,
        "failed_seeds": [r.seed for r in results if not r.success],
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    rows = [evaluate(task, args.episodes) for task in TASKS]
    result = {
        "benchmark": "scripted_experts",
        "seeds": f"0..{args.episodes - 1}",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| task | episodes | success | mean length (steps @ 30 Hz) | step limit |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['episodes']} | {100 * r['success_rate']:.0f}% | {r['mean_length']:.1f} "
            f"| {r['max_steps']} |"
        )


if __name__ == "__main__":
    main()
