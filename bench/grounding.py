"""Does a policy trained by bench/side_by_side.py read the instruction? `touch` names one of three cubes.

For each kept model (`<root>/weights/touch__<method>[__s<seed>].pt`) it runs held-out `touch` episodes
and records which cube the hand touched first. A policy that ignores the instruction touches the named
cube first in about 1/3 of the episodes where it touches any cube; one that reads it, far more often.
For our VLA it also measures, at each episode's first observation, how far the chunk's last action moves
when only the colour word changes (same noise) against how far it moves when only the noise changes
(same instruction); the cubes lie ~15-25 degrees of shoulder pan apart.

    python -m bench.grounding                          # methods and seeds whose weights are kept
    python -m bench.grounding --methods ours --episodes 50

Writes `--out` (JSON) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.contestants import METHODS, Frames, make_method
from vla.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]

TASK = "touch"
EVAL_SEED = 100000  # the side-by-side's held-out seeds


def first_touches(method: Any, episodes: int, seed0: int) -> list[dict[str, Any]]:
    """Run `episodes` touch episodes with the method's policy; per episode the colour touched first."""
    from envs.so101.env import SO101Env
    from envs.so101.tasks import COLOURS

    env = SO101Env(task=TASK, cameras=("front", "wrist"))
    policy = method.policy(None)
    rows: list[dict[str, Any]] = []
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=seed0 + i)
            policy.reset(info["task"])
            first, success = None, False
            queue: list[np.ndarray] = []
            while True:
                if not queue:
                    queue = list(policy.select_chunk(obs))
                obs, _, terminated, truncated, info = env.step(queue.pop(0))
                if first is None:
                    first = next((c for c in COLOURS if env.judge.touched(env.data, c)), None)
                success = success or bool(info["is_success"])
                if terminated or truncated:
                    break
            rows.append({"seed": seed0 + i, "target": env.target, "first": first, "success": success})
    finally:
        env.close()
    return rows


def instruction_effect(method: Any, episodes: int, seed0: int) -> dict[str, float]:
    """Our VLA at each episode's first frame: mean |change| of the chunk's last joint targets (degrees,
    arm joints) between colour words (same noise) and between noise draws (same words)."""
    import torch

    from envs.so101.env import SO101Env
    from envs.so101.tasks import COLOURS, task_spec

    env = SO101Env(task=TASK, cameras=("front", "wrist"))
    model, policy = method.model.eval(), method.policy(None)
    words = [task_spec(TASK).instruction.format(colour=c) for c in COLOURS]
    by_word, by_noise = [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed0 + i)
            last = np.empty((len(COLOURS), 2, 5))
            for c, instruction in enumerate(words):
                policy.reset(instruction)
                batch = policy.to_batch(obs)  # the observation as the runner's policy feeds it
                for s in range(2):
                    torch.manual_seed(s)
                    last[c, s] = model.sample_actions(batch)[0, -1, :5].numpy()
            pairs = [(a, b) for a in range(len(COLOURS)) for b in range(a + 1, len(COLOURS))]
            by_word.append(np.mean([np.abs(last[a, 0] - last[b, 0]).mean() for a, b in pairs]))
            by_noise.append(np.abs(last[:, 0] - last[:, 1]).mean())
    finally:
        env.close()
    return {"between_words_deg": float(np.mean(by_word)), "between_noise_deg": float(np.mean(by_noise))}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    touched = [r for r in rows if r["first"] is not None]
    right = sum(r["first"] == r["target"] for r in touched)
    return {
        "episodes": len(rows),
        "success": sum(r["success"] for r in rows),
        "touched_any": len(touched),
        "touched_named_first": right,
        "named_share_of_touches": right / len(touched) if touched else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--root", default="outputs/side_by_side")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--probe-episodes", type=int, default=20, help="first frames for the instruction probe")
    p.add_argument("--act-lr", type=float, default=1e-4, help=argparse.SUPPRESS)
    p.add_argument(
        "--ours-backbone", default=None, help="the pretrained VLM dir the kept 'ours' weights used"
    )
    p.add_argument("--out", default=str(ROOT / "bench/results/grounding.json"))
    args = p.parse_args()
    args.device, args.ours_model = "cpu", "tiny"
    if args.episodes < 1 or args.probe_episodes < 0:
        raise SystemExit("error: --episodes must be >= 1 and --probe-episodes >= 0")
    import torch

    torch.set_num_threads(1)
    root = Path(args.root)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    kept = {m: sorted((root / "weights").glob(f"{TASK}__{m}*.pt")) for m in methods}
    if not any(kept.values()):
        raise SystemExit(
            f"error: no kept {TASK} weights under {root / 'weights'}; run `python -m bench.side_by_side` first"
        )
    frames = Frames.load(root / "data" / TASK, f"local/{TASK}")
    results = []
    for m in methods:
        for path in kept[m]:
            method = make_method(m, frames, args, TASK)
            method.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            t0 = time.perf_counter()
            entry: dict[str, Any] = {"method": m, "weights": path.name}
            entry.update(summarise(first_touches(method, args.episodes, EVAL_SEED)))
            if m == "ours" and args.probe_episodes:
                entry["instruction_effect"] = instruction_effect(method, args.probe_episodes, EVAL_SEED)
            entry["seconds"] = time.perf_counter() - t0
            print(json.dumps(entry), flush=True)
            results.append(entry)
    lines = [
        "| model | success | touched a cube | named cube touched first | share (chance 1/3) | "
        "last action moves, words vs noise |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        share = "–" if r["named_share_of_touches"] is None else f"{r['named_share_of_touches']:.2f}"
        effect = r.get("instruction_effect")
        moves = (
            f"{effect['between_words_deg']:.1f}° vs {effect['between_noise_deg']:.1f}°"
            if effect
            else "– (reads no text)"
        )
        lines.append(
            f"| {r['weights'][:-3]} | {r['success']}/{r['episodes']} | {r['touched_any']} | "
            f"{r['touched_named_first']} | {share} | {moves} |"
        )
    md = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "eval_seeds": f"{EVAL_SEED}..",
        "results": results,
        "table": md,
    }
    write_json_atomic(out, report)
    print(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
