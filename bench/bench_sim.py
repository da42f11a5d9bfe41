"""Simulation speed: control steps per second of the SO-101 env with both cameras rendered.

Each control step includes the physics substeps and two offscreen renders (front + wrist) on the CPU
(MUJOCO_GL=egl, Mesa llvmpipe). Writes bench/results/sim_speed.json and prints a markdown table.

    MUJOCO_GL=egl .venv/bin/python -m bench.bench_sim [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np

from envs.so101.env import HOME, SO101Env
from envs.so101.model import SUBSTEPS

RESULTS = Path(__file__).parent / "results" / "sim_speed.json"


def measure(image_size: int, cameras: tuple[str, ...], steps: int, warmup: int = 30) -> float:
    """Control steps per second for one configuration (a slow sinusoidal sweep of the joints)."""
    env = SO101Env(task="bin", image_size=image_size, cameras=cameras, max_episode_steps=10**9)
    try:
        env.reset(seed=0)
        amplitude = np.array([30.0, 15.0, 15.0, 15.0, 40.0, 30.0], dtype=np.float32)

        def action(t: int) -> np.ndarray:
            return HOME + amplitude * np.sin(t / 20.0)

        for t in range(warmup):
            env.step(action(t))
        start = time.perf_counter()
        for t in range(steps):
            env.step(action(t))
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for size, cameras in ((96, ("front", "wrist")), (224, ("front", "wrist")), (96, ())):
        rate = measure(size, cameras, args.steps)
        rows.append({"image_size": size, "cameras": list(cameras), "steps_per_s": round(rate, 1)})
    result = {
        "benchmark": "sim_speed",
        "substeps_per_control_step": SUBSTEPS,
        "steps": args.steps,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or platform.system()}",
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "date": time.strftime("%Y-%m-%d"),
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| image size | cameras | control steps/s |\n|---|---|---|")
    for r in rows:
        print(
            f"| {r['image_size']}x{r['image_size']} | {', '.join(r['cameras']) or 'none'} | {r['steps_per_s']} |"
        )


if __name__ == "__main__":
    main()
