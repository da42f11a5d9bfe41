"""vla-rollout: evaluate a Policy on the simulated robot and report its success rate honestly.

    vla-rollout env.task=pick policy=scripted episodes=50
    vla-rollout tasks=[touch,pick,bin] episodes=20 videos=2 output_dir=/tmp/eval
    vla-rollout policy=vla checkpoints=[runs/a/step_1000,runs/a/step_2000]

Episode i of every task (and every checkpoint) is seeded with `seed + i`, held out from recording's seeds,
so checkpoints are compared on the same scenes. Success is LeRobot's rule: `is_success` at any step.
`<output_dir>/report.json` holds the pooled success rate with its 95% Wilson interval, per task, per
episode and, with `checkpoints`, per checkpoint (plus `success_vs_step.svg`); the first `videos`
episodes per task are saved as mp4 (front | wrist). Ctrl-C stops after the current episode and the
partial report is written with `"interrupted": true`.

Episodes run through the real-time runner (`runner.*`: strategy sync|async|rtc|ensemble, rate_hz,
extra_latency_ms, realtime, ...); `<output_dir>/runner_metrics.json` holds its metrics over the whole run,
and report.json repeats them under `runner`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from vla.apps.common import GracefulStop, build_policy, instantiate, prepare_output_dir, user_errors
from vla.errors import VLAError
from vla.metrics import wilson_interval
from vla.plot import success_vs_step_svg
from vla.robot import EpisodicRobot
from vla.runner.config import RunnerConfig

APP = "vla-rollout"


@dataclass
class RolloutConfig:
    env: Any = MISSING
    policy: Any = MISSING
    episodes: int = 50
    seed: int = 100_000
    tasks: list[str] | None = None
    videos: int = 4
    checkpoints: list[str] | None = None
    max_steps: int | None = None
    progress: bool = True
    output_dir: str = MISSING
    runner: RunnerConfig = field(default_factory=RunnerConfig)


ConfigStore.instance().store(name="rollout_schema", node=RolloutConfig)


# "005000", "step_1000", "ckpt-200", "checkpoint3000": a training step in a checkpoint directory's name.
STEP_IN_NAME = re.compile(r"^(?:.*?(?:step|ckpt|checkpoint|iter)[_\-]?)?(\d+)$", re.IGNORECASE)


def checkpoint_step(path: Path) -> int | None:
    """The training step a checkpoint dir was saved at: a `step` field in train_state.json or config.json,
    else its name (or its parent's, for LeRobot's `checkpoints/005000/pretrained_model`); None if unknown."""
    for name in ("train_state.json", "config.json"):
        try:
            data = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        step = data.get("step") if isinstance(data, dict) else None
        if isinstance(step, int) and not isinstance(step, bool):
            return step
    resolved = path.resolve()  # LeRobot's `checkpoints/last` is a link to the numbered dir
    for part in (resolved.name, resolved.parent.name if resolved.name == "pretrained_model" else ""):
        match = STEP_IN_NAME.match(part)
        if match:
            return int(match.group(1))
    return None


def _expand_tasks(cfg: DictConfig) -> list[str]:
    """`tasks=[...]`, with the env's named groups expanded (an env class may offer `task_group(name)` ->
    its tasks, e.g. Meta-World's `tasks=[easy]`); the env is named by its _target_, never imported here."""
    from hydra.utils import get_class

    names = [str(t) for t in cfg.tasks]
    try:
        expand = getattr(get_class(str(cfg.env.get("_target_"))), "task_group", None)
    except Exception:  # a bad _target_ is reported when the env is built
        expand = None
    out: list[str] = []
    for name in names:
        group = expand(name) if expand is not None else None
        out.extend(group if group else [name])
    return out


def _validate(cfg: DictConfig) -> tuple[list[str], list[str | None]]:
    """Check the plain fields; returns the task ids and the checkpoints ([None]: the policy as configured)."""
    if cfg.episodes <= 0:
        raise VLAError(f"episodes={cfg.episodes}: must be at least 1")
    if cfg.videos < 0:
        raise VLAError(f"videos={cfg.videos}: must be ≥ 0 (0 records no video)")
    if cfg.seed < 0:
        raise VLAError(f"seed={cfg.seed}: must be ≥ 0")
    if cfg.max_steps is not None and cfg.max_steps <= 0:
        raise VLAError(f"max_steps={cfg.max_steps}: must be at least 1 (or null for the env's limit)")
    tasks = [str(cfg.env.get("task"))] if cfg.tasks is None else _expand_tasks(cfg)
    if not tasks or len(set(tasks)) != len(tasks):
        raise VLAError(
            f"tasks={tasks}: give each task id once, e.g. tasks=[touch,pick] (or null for env.task)"
        )
    if cfg.checkpoints is None:
        return tasks, [None]
    if not cfg.checkpoints:
        raise VLAError(
            "checkpoints=[]: give at least one checkpoint dir (or null for the policy as configured)"
        )
    if "checkpoint" not in list(cfg.policy.keys()):  # `in` on a DictConfig skips ??? values
        raise VLAError(
            f"checkpoints=... needs a policy that loads checkpoints (a `checkpoint` key); "
            f"policy {cfg.policy.get('_target_', '?')} has none"
        )
    for i, ckpt in enumerate(cfg.checkpoints):
        if not Path(ckpt).is_dir():
            raise VLAError(f"checkpoints[{i}]={ckpt}: no such directory")
    return tasks, [str(c) for c in cfg.checkpoints]


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers never see half a report: write a temp file next to it, then rename over."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _first_touch(robot: Any) -> dict[str, Any]:
    """Grounding on tasks that name one of several objects (the SO-101 cubes): which object the hand
    touched (or grasped) first in the episode and whether it was the named one; {} where the robot's info
    does not say (Meta-World, real arms)."""
    info = robot.info if isinstance(robot, EpisodicRobot) else {}
    if "target" not in info or "first_touched" not in info:
        return {}
    first = info["first_touched"]
    return {"target": info["target"], "first_touched": first, "named_first": first == info["target"]}


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate, Wilson 95% interval and lengths of per-episode records (rate None: nothing ran), and
    where episodes say which object was touched first, `named_first_share` (episodes whose first touch was
    the named object, over all episodes) and `touched_share` (episodes that touched any)."""
    n = len(episodes)
    wins = sum(e["success"] for e in episodes)
    lengths = [e["steps"] for e in episodes]
    out = {
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else None,
        "success_ci95": list(wilson_interval(wins, n)),
        "mean_length": float(np.mean(lengths)) if lengths else None,
        "lengths": lengths,
    }
    grounded = [e for e in episodes if "named_first" in e]
    if grounded:
        named = sum(e["named_first"] for e in grounded)
        out["named_first_share"] = named / len(grounded)
        out["named_first_ci95"] = list(wilson_interval(named, len(grounded)))
        out["touched_share"] = sum(e["first_touched"] is not None for e in grounded) / len(grounded)
    return out


def per_task(episodes: list[dict[str, Any]], tasks: list[str]) -> dict[str, dict[str, Any]]:
    return {t: summarize([e for e in episodes if e["task"] == t]) for t in tasks}


def _run_one(runner: Any, seed: int, max_steps: int | None, video: Any) -> Any:
    """The one place an episode is run: through the real-time runner."""
    from vla.robot import camera_keys

    cams = camera_keys(runner.robot.observation_features)

    def on_step(observation: dict[str, np.ndarray], action: np.ndarray) -> None:
        from vla.video import side_by_side

        video.add(side_by_side([observation[k] for k in cams]))  # [H, W_front + W_wrist, 3]

    return runner.run_episode(seed, max_steps=max_steps, on_step=on_step if video and cams else None)


def _episodes(
    cfg: DictConfig,
    robot: Any,
    policy: Any,
    task: str,
    out: Path,
    videos: Path,
    stop: GracefulStop,
    live: tuple[Any, Any],
) -> Iterator[dict[str, Any]]:
    """Run one task's episodes until done or a stop request, yielding a record for each; the first
    `cfg.videos` are filmed into `out / videos`. live: (the run's RunnerMetrics, a status callback)."""
    from vla.runner import Runner
    from vla.video import VideoWriter

    runner = None
    try:
        robot.connect()
        runner = Runner(robot, policy, RunnerConfig.from_any(cfg.runner), recorder=live[0], on_status=live[1])
        for i in range(cfg.episodes):
            if stop.requested:
                return
            video = VideoWriter(out / videos / f"{task}_ep{i}.mp4", robot.fps) if i < cfg.videos else None
            try:
                result = _run_one(runner, cfg.seed + i, cfg.max_steps, video)
            except BaseException:
                if video is not None:
                    video.discard()
                raise
            grounding = _first_touch(robot)
            name = None
            if video is not None:  # the outcome goes into the name, so a folder listing tells it
                name = videos / f"{task}_ep{i}_{'success' if result.success else 'fail'}.mp4"
                video.close(out / name)
            yield {
                "task": task,
                "seed": cfg.seed + i,
                "instruction": result.task,
                "success": result.success,
                "steps": result.steps,
                **grounding,
                "video": str(name) if name else None,  # relative to output_dir
            }
    finally:
        if runner is not None:
            runner.close()
        robot.disconnect()


def rollout(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation, write report.json (and videos, plot) under cfg.output_dir; returns the report."""
    from tqdm import tqdm

    from vla.runner import RunnerMetrics

    tasks, checkpoints = _validate(cfg)
    out = Path(cfg.output_dir).absolute()
    prepare_output_dir(out)
    robots: dict[str, Any] = {}
    for task in tasks:  # built before anything runs, so an unknown task id fails first
        try:
            robots[task] = instantiate(cfg.env, "env", task=task)
        except VLAError as e:
            raise (VLAError(f"tasks=[{','.join(tasks)}]: {e}") if cfg.tasks is not None else e) from None
    groups = [(c, ckpt, task) for c, ckpt in enumerate(checkpoints) for task in tasks]

    runner_cfg = RunnerConfig.from_any(cfg.runner)
    in_process = runner_cfg.in_process(loads_checkpoint="checkpoint" in list(cfg.policy.keys()))

    def make_policy(ckpt: str | None, task: str) -> Any:
        override = {} if ckpt is None else {"checkpoint": ckpt}
        return build_policy(cfg.policy, cfg.runner, robots[task], **override)

    first_policy = make_policy(groups[0][1], groups[0][2])  # a bad policy config fails before the bar shows
    total = len(groups) * cfg.episodes
    per_episode: list[dict[str, Any]] = []
    started = time.perf_counter()
    bar = tqdm(
        total=total, desc="rollout", unit="ep", disable=not cfg.progress, dynamic_ncols=True, file=sys.stderr
    )
    recorder = RunnerMetrics()

    def show(status: dict[str, Any]) -> None:  # the runner calls it at most every runner.status_every_s
        wins = sum(e["success"] for e in per_episode)
        bar.set_postfix(success=f"{wins}/{len(per_episode)}", **status, refresh=True)

    with GracefulStop("stopping after this episode (Ctrl-C again to abort it)") as stop:
        try:
            for g, (c, ckpt, task) in enumerate(groups):
                if stop.requested:
                    break
                videos = Path("videos") if ckpt is None else Path("videos", f"{c}_{Path(ckpt).name}")
                policy = first_policy if g == 0 else make_policy(ckpt, task)
                live = (recorder, show if cfg.progress else None)
                try:
                    for record in _episodes(cfg, robots[task], policy, task, out, videos, stop, live):
                        per_episode.append({"checkpoint": ckpt, **record})
                        wins = sum(e["success"] for e in per_episode)
                        bar.set_postfix(task=task, success=f"{wins}/{len(per_episode)}", refresh=False)
                        bar.update(1)
                finally:
                    if hasattr(policy, "close"):  # a policy process, a server connection
                        policy.close()
        except KeyboardInterrupt:  # a second Ctrl-C: the episode under way is dropped, the rest reported
            pass
        finally:
            bar.close()
    report = _report(cfg, tasks, checkpoints, per_episode, out)
    report.update(interrupted=len(per_episode) < total, seconds=time.perf_counter() - started)
    recorder.info["inference"] = "process" if in_process else "thread"
    report["runner"] = {"config": OmegaConf.to_container(cfg.runner, resolve=True), **recorder.summary()}
    recorder.write(out / "runner_metrics.json")
    write_json_atomic(out / "report.json", report)
    return report


def _report(
    cfg: DictConfig, tasks: list[str], checkpoints: list[str | None], per_episode: list[dict], out: Path
) -> dict[str, Any]:
    report: dict[str, Any] = {
        **{k: v for k, v in summarize(per_episode).items() if k != "lengths"},
        "episodes_per_task": cfg.episodes,
        "seed": cfg.seed,
        "tasks": tasks,
        "per_task": per_task(per_episode, tasks),
        "per_episode": per_episode,
        "policy": OmegaConf.to_container(cfg.policy, resolve=True, throw_on_missing=False),
        "env": OmegaConf.to_container(cfg.env, resolve=True, throw_on_missing=False),
        "max_steps": cfg.max_steps,
        "output_dir": str(out),
        "videos": [e["video"] for e in per_episode if e["video"]],
    }
    if checkpoints != [None]:
        rows = []
        for ckpt in checkpoints:
            mine = [e for e in per_episode if e["checkpoint"] == ckpt]
            stats = {k: v for k, v in summarize(mine).items() if k != "lengths"}
            rows.append(
                {"checkpoint": ckpt, "step": checkpoint_step(Path(str(ckpt))), **stats}
                | {"per_task": per_task(mine, tasks)}
            )
        # By training step; checkpoints whose step is unknown keep their given order, last.
        rows.sort(key=lambda r: (r["step"] is None, r["step"] or 0))
        report["per_checkpoint"] = rows
        plot = out / "success_vs_step.svg"
        tmp = plot.with_name(f".{plot.name}.tmp")
        tmp.write_text(success_vs_step_svg(rows))
        os.replace(tmp, plot)
        report["plot"] = plot.name
    return report


def _table(per_task_stats: dict[str, dict[str, Any]], overall: dict[str, Any]) -> str:
    w = max(10, *(len(name) for name in per_task_stats))  # long task names (Meta-World) stay aligned
    grounding = any("named_first_share" in s for s in per_task_stats.values())
    extra = f" {'named first':>12}" if grounding else ""
    lines = [f"{'task':<{w}} {'episodes':>8} {'success':>8} {'95% CI':>15} {'mean length':>12}{extra}"]
    for name, s in [*per_task_stats.items(), ("all", overall)]:
        if not s["episodes"]:
            lines.append(f"{name:<{w}} {0:>8} {'-':>8} {'-':>15} {'-':>12}")
            continue
        lo, hi = s["success_ci95"]
        ci = f"{100 * lo:.1f}-{100 * hi:.1f}%"
        rate, length = 100 * s["success_rate"], s["mean_length"]
        named = s.get("named_first_share")
        cell = (f" {100 * named:>11.1f}%" if named is not None else f" {'-':>12}") if grounding else ""
        lines.append(f"{name:<{w}} {s['episodes']:>8} {rate:>7.1f}% {ci:>15} {length:>12.1f}{cell}")
    return "\n".join(lines)


def summary(report: dict[str, Any]) -> str:
    """The closing table(s) a user reads: per task and overall (per checkpoint when there are several)."""
    out = Path(report["output_dir"])
    parts = []
    for row in report.get("per_checkpoint", []):
        step = "unknown" if row["step"] is None else row["step"]
        parts.append(f"checkpoint {row['checkpoint']} (step {step})\n{_table(row['per_task'], row)}")
    if "per_checkpoint" in report:
        parts.append(f"plot: {out / report['plot']}")
    else:
        parts.append(_table(report["per_task"], report))
    extra = " (interrupted)" if report["interrupted"] else ""
    parts.append(f"{report['episodes']} episodes in {report['seconds']:.1f} s{extra}")
    parts.append(f"report: {out / 'report.json'}")
    if report["videos"]:
        parts.append(f"videos: {out / 'videos'} ({len(report['videos'])} files)")
    return "\n".join(parts)


@hydra.main(version_base="1.3", config_path="pkg://configs", config_name="rollout")
@user_errors(APP)
def main(cfg: DictConfig) -> None:
    report = rollout(cfg)
    print(summary(report), flush=True)


if __name__ == "__main__":
    main()
