"""Side by side with LeRobot: our VLA vs LeRobot's ACT and Diffusion Policy, same data, same wall clock.

For each task (our SO-101 `touch` and Meta-World tasks) the harness
  1. records `--demos` scripted demonstrations with `vla-record` (seeds 0..N-1, PNG frames, kept if the
     expert succeeded), once, under `--root`;
  2. trains each method for `--budget` seconds of wall clock from random initialisation (no pretrained
     weights anywhere), each job pinned to one CPU core with one torch thread, `--parallel` jobs at a time;
  3. evaluates every trained policy on the same held-out seeds (100000..) through our runner in simulated
     time, synchronously, as LeRobot's eval does (success = `is_success` at any step; no latency).

Fairness (what a sceptical reader asks): every method reads the same frames, decoded once into memory
before its clock starts, and its batches are built by the same code (action chunks padded at episode ends
with `action_is_pad`, Diffusion's two-frame history clamped at episode starts). The clock covers batch
building, forward, backward and the optimiser step. Each method keeps its own loss, optimiser type,
batch size and gradient clip (LeRobot's presets for theirs); all share one learning-rate shape over the
budget (linear warm-up over the first 5%, cosine to 10% at the end). Deviations from LeRobot's defaults are
listed in the JSON (`methods`) and in bench/README.md.

What is vla-train's own here: ours prepares each batch with vla.train.data.training_batch (model keys,
device, augmentation) and trains with its optimiser (vla.train.common.adamw); every method's step ends in
vla.train.common.apply_gradients (clip, then step); the learning-rate shape is vla-train's lr_factor. What
stays here, and why: the batches come from the frames in memory (contestants.Frames.batch, the same
chunks and padding LeRobotDataset's delta_timestamps give) because decoding under the clock would time the
decoder, and Diffusion needs an observation history vla-train does not build; and the loop is a wall-clock
budget over three methods' losses, where vla-train's loop counts steps and writes checkpoints.

    python -m bench.side_by_side                      # touch + 5 Meta-World easy tasks, 300 s each
    python -m bench.side_by_side --tasks touch,reach-v3 --budget 60 --eval-episodes 10

Writes `--out` (JSON, default bench/results/side_by_side.json) and prints a markdown table.
A job (one task, one method) runs in its own process: `--job TASK METHOD` (used by the driver).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.contestants import (
    METHODS,
    Frames,
    Method,
    TimedPolicy,
    make_method,
)
from vla.io import atomic_file, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]

EVAL_SEED = 100000  # held out: recording uses seeds 0..demos-1
WARMUP_FRACTION = 0.05
MIN_LR_RATIO = 0.1


def easy_tasks(count: int) -> list[str]:
    """`count` Meta-World easy tasks picked by a fixed rule (evenly spaced through LeRobot's easy list,
    starting at its first), so the choice is not made after seeing results."""
    from envs.metaworld import DIFFICULTY

    easy = DIFFICULTY["easy"]
    stride = max(1, len(easy) // count)
    return [easy[i * stride] for i in range(count)]


def expand_tasks(spec: str) -> list[str]:
    tasks: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item.startswith("easy:"):
            tasks += easy_tasks(int(item.split(":", 1)[1]))
        elif item:
            tasks.append(item)
    return tasks


def robot_name(task: str) -> str:
    """The robot (configs/robot/<name>.yaml) that runs `task`: Meta-World's tasks or the SO-101 simulation's."""
    from envs.metaworld import INSTRUCTIONS

    return "metaworld" if task in INSTRUCTIONS else "sim"


def make_robot(task: str) -> Any:
    """The robot as vla-record and vla-rollout build it (robot=<name> is configs/robot/<name>.yaml)."""
    from omegaconf import OmegaConf

    from vla.instantiate import instantiate

    cfg = OmegaConf.load(ROOT / "configs" / "robot" / f"{robot_name(task)}.yaml")
    return instantiate(cfg, "robot", task=task)


def record(task: str, demos: int, root: Path) -> Path:
    """Scripted demonstrations for `task` (reused when already there)."""
    path = root / "data" / task
    if (path / "meta" / "info.json").is_file():
        return path
    cmd = [
        str(Path(sys.executable).with_name("vla-record")),
        f"robot={robot_name(task)}",
        f"robot.task={task}",
        "policy=scripted",
        f"episodes={demos}",
        "keep=success",
        "dataset.video=false",  # PNG frames: decoded once into memory below, no video decoder involved
        f"dataset.root={path}",
        f"dataset.repo_id=local/{task}",
        "progress=false",
        f"hydra.run.dir={root / 'logs' / ('record_' + task)}",
    ]
    print(f"[record] {task}: {demos} scripted demonstrations", flush=True)
    subprocess.run(cmd, check=True)
    return path


# ---------------------------------------------------------------------------------------- train + eval


def lr_shape(progress: float) -> float:
    """The learning-rate factor at a fraction of the budget: our trainer's warm-up + cosine schedule
    (vla.train.common.lr_factor) on a clock of 1,000 ticks per budget."""
    from vla.train.common import lr_factor

    ticks = 1000
    return lr_factor(min(int(progress * ticks), ticks), int(WARMUP_FRACTION * ticks), ticks, MIN_LR_RATIO)


def train_for(method: Method, seconds: float, seed: int) -> dict[str, Any]:
    """Train until `seconds` of wall clock have passed (the step under way finishes)."""
    import torch

    from vla.train.common import apply_gradients

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = method.optimizer()
    base = [g["lr"] for g in optimizer.param_groups]
    params = method.parameters()
    n = len(method.frames.state)
    steps, losses = 0, []
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for group, lr in zip(optimizer.param_groups, base, strict=True):
            group["lr"] = lr * lr_shape(elapsed / seconds)
        batch = method.frames.batch(rng.integers(0, n, method.batch_size), method.horizon, method.obs_steps)
        loss = method.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        apply_gradients(optimizer, params, method.grad_clip)  # vla-train's step: clip, then step
        losses.append(float(loss.detach()))
        steps += 1
    took = time.perf_counter() - started
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "seconds": took,
        "steps": steps,
        "samples": steps * method.batch_size,
        "steps_per_s": steps / took,
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(tail)) if tail else None,
    }


def evaluate(method: Method, task: str, episodes: int) -> dict[str, Any]:
    """Seeded held-out episodes through our runner, synchronously, in simulated time. torch's global
    generator is seeded first, so LeRobot's policies draw the same sampling noise on a rerun (ours draws
    from its own seeded generator)."""
    import torch

    from vla.runner import Runner, RunnerConfig
    from vla.session.report import summarize

    torch.manual_seed(EVAL_SEED)

    robot = make_robot(task)
    policy = TimedPolicy(method.policy(robot))
    config = RunnerConfig(strategy="sync", realtime=False, measure_compute=False, warmup=False)
    results: list[dict[str, Any]] = []
    inference: dict[str, Any] = {}
    started = time.perf_counter()
    robot.connect()
    runner = Runner(robot, policy, config)
    try:
        for i in range(episodes):
            r = runner.run_episode(EVAL_SEED + i)
            results.append(
                {"task": task, "seed": EVAL_SEED + i, "success": bool(r.success), "steps": r.steps}
            )
            print(f"[eval] {task} {method.name} seed {EVAL_SEED + i}: "
                  f"{'success' if r.success else 'fail'} in {r.steps} steps", flush=True)  # fmt: skip
        calls = np.asarray(policy.seconds) * 1e3
        ticks = sum(r["steps"] for r in results)
        inference = {
            "calls": len(calls),
            "ms_per_control_step": float(calls.sum() / max(1, ticks)),
            "p50_ms_per_call": float(np.percentile(calls, 50)) if len(calls) else None,
            "max_ms_per_call": float(calls.max()) if len(calls) else None,
        }
    finally:
        runner.close()
        robot.disconnect()
    stats = summarize(results)
    stats.update(seconds=time.perf_counter() - started, episodes_detail=results, inference_ms=inference)
    return stats


def eval_episodes(task: str, args: argparse.Namespace) -> int:
    return int(args.so101_eval_episodes if robot_name(task) == "sim" else args.eval_episodes)


def job_name(task: str, method: str, seed: int) -> str:
    """A job's file stem: `<task>__<method>`, with `__s<seed>` for training seeds other than 0."""
    return f"{task}__{method}" + (f"__s{seed}" if seed else "")


def run_job(task: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one method on one task for the budget (or, with --reeval, load the weights an earlier run
    kept), evaluate it, and keep its weights under <root>/weights/."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)  # the initial weights too
    root = Path(args.root)
    stem = job_name(task, name, args.seed)
    weights, record = root / "weights" / f"{stem}.pt", root / "jobs" / f"{stem}.json"
    if args.reeval and not (weights.is_file() and record.is_file()):
        raise SystemExit(f"error: --reeval needs {weights} and {record} (from a run that kept weights)")
    earlier: dict[str, Any] = json.loads(record.read_text()) if args.reeval else {}
    t0 = time.perf_counter()
    frames = Frames.load(root / "data" / task, f"local/{task}")
    load_s = time.perf_counter() - t0
    method = make_method(name, frames, args, task)
    if args.reeval:
        method.model.load_state_dict(torch.load(weights, map_location=args.device, weights_only=True))
        train = earlier["train"]
        print(f"[reeval] {stem}: weights from {weights}", flush=True)
    else:
        print(f"[train] {stem}: {method.num_parameters() / 1e6:.1f}M parameters, "
              f"{len(frames.state)} frames, {args.budget:.0f} s", flush=True)  # fmt: skip
        train = train_for(method, args.budget, args.seed)
        print(f"[train] {stem}: {train['steps']} steps, loss {train['first_loss']:.3f} -> "
              f"{train['final_loss']:.3f}", flush=True)  # fmt: skip
        weights.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(weights) as tmp:
            torch.save(method.model.state_dict(), tmp)
    evaluation = evaluate(method, task, eval_episodes(task, args))
    previous = [*earlier.get("previous_evals", []), earlier["eval"]] if args.reeval else []
    return {
        "task": task,
        "method": name,
        "train_seed": args.seed,
        "parameters_m": round(method.num_parameters() / 1e6, 2),
        "settings": method.settings,
        "batch_size": method.batch_size,
        "grad_clip": method.grad_clip,
        "frames": len(frames.state),
        "demonstrations": frames.episodes,
        "load_seconds": load_s,
        "train": train,
        "eval": evaluation,
        "previous_evals": previous,  # --reeval keeps what earlier evaluations found
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }


# -------------------------------------------------------------------------------------------- driver


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        LP_NUM_THREADS="1",  # Mesa llvmpipe (offscreen MuJoCo rendering) on the job's core only
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
        PYOPENGL_PLATFORM=env.get("PYOPENGL_PLATFORM", "egl"),
    )
    return env


def run_all(args: argparse.Namespace, tasks: list[str], methods: list[str]) -> list[dict[str, Any]]:
    """Every (task, method) job, `args.parallel` at a time, each pinned to its own core. Jobs are
    ordered so that each method runs beside each other method (no method always has the same
    neighbour), and a finished job's JSON is reused on a rerun."""
    root = Path(args.root)
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    jobs = [
        (t, m, seed)
        for seed in args.seeds
        for i, t in enumerate(tasks)
        for m in (methods[i % len(methods) :] + methods[: i % len(methods)])
    ]
    if args.reeval:
        missing = [job_name(*j) for j in jobs if not (root / "weights" / f"{job_name(*j)}.pt").is_file()]
        if missing:
            raise SystemExit(
                f"error: --reeval: no kept weights for {', '.join(missing)} under {root / 'weights'}"
            )
    parallel = 1 if args.device != "cpu" else max(1, args.parallel)  # one GPU: one job at a time
    cores = sorted(os.sched_getaffinity(0))[:parallel]
    free = list(cores)
    running: list[tuple[subprocess.Popen, int, Path, Any]] = []
    pending = list(jobs)
    failed: list[str] = []
    while pending or running:
        while pending and free:
            task, method, seed = pending.pop(0)
            stem = job_name(task, method, seed)
            out = root / "jobs" / f"{stem}.json"
            if out.is_file() and not (args.fresh or args.reeval):
                print(f"[reuse] {out}", flush=True)
                continue
            core = free.pop(0)
            log = open(root / "logs" / f"{stem}.log", "w")  # noqa: SIM115 (closed below)
            cmd = [sys.executable, "-m", "bench.side_by_side", "--job", task, method, "--job-out", str(out)]
            cmd += ["--seed", str(seed), *job_args(args)]
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=job_env(), stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(os.sched_setaffinity, 0, {core}),
            )  # fmt: skip
            print(f"[start] {stem} on core {core}", flush=True)
            running.append((proc, core, out, log))
        time.sleep(1.0)
        for item in list(running):
            proc, core, out, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            free.append(core)
            name = Path(log.name).stem
            if proc.returncode != 0:
                failed.append(name)
                print(f"[fail] {name} (exit {proc.returncode}); see {log.name}", flush=True)
            else:
                print(f"[done] {name}", flush=True)
    if failed:
        raise SystemExit(f"error: {len(failed)} job(s) failed: {', '.join(failed)}")
    return [json.loads((root / "jobs" / f"{job_name(*job)}.json").read_text()) for job in jobs]


def job_args(args: argparse.Namespace) -> list[str]:
    return [
        "--root", str(args.root), "--budget", str(args.budget), "--eval-episodes", str(args.eval_episodes),
        "--so101-eval-episodes", str(args.so101_eval_episodes),
        "--act-lr", str(args.act_lr), "--device", args.device, *(["--reeval"] if args.reeval else []),
        "--ours-model", args.ours_model,
        *(["--ours-backbone", str(Path(args.ours_backbone).absolute())] if args.ours_backbone else []),
        "--ours-cotrain", str(args.ours_cotrain),
    ]  # fmt: skip


def table(results: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> tuple[str, dict[str, Any]]:
    """Markdown table and verdicts; several training seeds of a (task, method) pool their episodes."""
    pooled: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        cell = pooled.setdefault((r["task"], r["method"]), {"wins": 0, "episodes": 0, "steps": []})
        cell["wins"] += sum(bool(x["success"]) for x in r["eval"]["episodes_detail"])
        cell["episodes"] += len(r["eval"]["episodes_detail"])
        cell["steps"].append(r["train"]["steps"])
    head = "| task | " + " | ".join(methods) + " | ours ≥ best baseline |"
    lines = [head, "|" + "---|" * (len(methods) + 2)]
    verdicts: dict[str, Any] = {}
    rates: dict[tuple[str, str], float] = {}
    for task in tasks:
        cells = []
        for m in methods:
            c = pooled.get((task, m))
            if c is None:
                cells.append("–")
                continue
            rates[(task, m)] = c["wins"] / c["episodes"]
            cells.append(f"{c['wins']}/{c['episodes']} ({np.mean(c['steps']):.0f} steps)")
        baselines = [rates[(task, m)] for m in methods if m != "ours" and (task, m) in rates]
        ok = None if (task, "ours") not in rates or not baselines else rates[(task, "ours")] >= max(baselines)
        verdicts[task] = ok
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {'–' if ok is None else '✔' if ok else '✘'} |")
    means = {m: np.mean([rates[(t, m)] for t in tasks if (t, m) in rates]) for m in methods}
    lines.append("| **mean** | " + " | ".join(f"{100 * means[m]:.0f}%" for m in methods) + " | |")
    return "\n".join(lines), {"per_task": verdicts, "mean_success": {m: float(v) for m, v in means.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tasks", default="touch,easy:5", help="comma list; easy:K = K Meta-World easy tasks")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per (task, method)")
    p.add_argument("--demos", type=int, default=50, help="scripted demonstrations per task")
    p.add_argument("--eval-episodes", type=int, default=10, help="per Meta-World task (LeRobot's eval: 10)")
    p.add_argument("--so101-eval-episodes", type=int, default=50, help="per SO-101 task (short episodes)")
    p.add_argument("--parallel", type=int, default=2, help="jobs at a time, one CPU core each")
    p.add_argument("--seeds", default="0", help="training seeds, comma list: each (task, method) per seed")
    p.add_argument("--reeval", action="store_true", help="evaluate kept weights again (no training)")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)  # a job's own seed
    p.add_argument("--act-lr", type=float, default=1e-4)
    p.add_argument("--device", default="cpu", help="cpu | cuda (then one job at a time)")
    p.add_argument("--ours-model", default="tiny", help="our model config: tiny | smolvla (on a GPU)")
    p.add_argument(
        "--ours-backbone",
        default=None,
        help="SO-101 tasks: our backbone from this pretrained VLM dir (vla-pretrain's model/)",
    )
    p.add_argument(
        "--ours-cotrain",
        type=float,
        default=0.0,
        help="SO-101 tasks with --ours-backbone: co-training ratio (VLM samples per robot sample)",
    )
    p.add_argument("--root", default="outputs/side_by_side")
    p.add_argument("--out", default=str(ROOT / "bench/results/side_by_side.json"))
    p.add_argument("--fresh", action="store_true", help="rerun jobs whose JSON is already there")
    p.add_argument("--job", nargs=2, metavar=("TASK", "METHOD"), help=argparse.SUPPRESS)
    p.add_argument("--job-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.budget <= 0 or min(args.eval_episodes, args.so101_eval_episodes, args.demos) < 1:
        raise SystemExit("error: --budget, --eval-episodes and --demos must be positive")
    try:
        args.seeds = sorted({int(x) for x in args.seeds.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"error: --seeds must be a comma list of integers, got {args.seeds!r}") from None
    if not args.seeds or min(args.seeds) < 0:
        raise SystemExit("error: --seeds needs at least one seed >= 0")
    if args.job:
        result = run_job(args.job[0], args.job[1], args)
        write_json_atomic(Path(args.job_out), result)
        return
    tasks, methods = expand_tasks(args.tasks), [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    try:
        import diffusers  # noqa: F401
    except ImportError:
        if "diffusion" in methods:
            raise SystemExit(
                "error: LeRobot's Diffusion Policy needs diffusers; run `make install`"
            ) from None
    for task in tasks:
        make_robot(task).disconnect()  # an unknown task fails here, before anything is recorded
    root = Path(args.root)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for task in tasks:
        record(task, args.demos, root)
    results = run_all(args, tasks, methods)
    md, verdicts = table(results, tasks, methods)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "setup": {
            "tasks": tasks,
            "methods": methods,
            "budget_s_per_job": args.budget,
            "demonstrations_per_task": args.demos,
            "eval_episodes_per_task": {t: eval_episodes(t, args) for t in tasks},
            "eval_seeds": f"{EVAL_SEED}..{EVAL_SEED} + episodes - 1",
            "record_seeds": f"0..{args.demos - 1}",
            "train_seeds": args.seeds,
            "device": args.device,
            "ours_model": args.ours_model,
            "ours_backbone": args.ours_backbone,
            "ours_cotrain": args.ours_cotrain,
            "parallel_jobs": 1 if args.device != "cpu" else args.parallel,
            "threads_per_job": 1,
            "lr_shape": f"linear warm-up over {WARMUP_FRACTION:.0%} of the budget, cosine to {MIN_LR_RATIO}x",
        },
        "results": results,
        "verdicts": verdicts,
        "seconds": time.perf_counter() - started,
        "table": md,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, report)
    print(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
