"""vla-rollout's library: evaluate a Policy on the simulated robot and report its success rate honestly.

Episode i of every task (and every checkpoint) is seeded with `seed + i`, held out from recording's seeds,
so checkpoints are compared on the same scenes. Success is LeRobot's rule: `is_success` at any step.
`<output_dir>/report.json` holds the pooled success rate with its 95% Wilson interval, per task, per
episode and, with `checkpoints`, per checkpoint (plus `success_vs_step.svg`); the first `videos`
episodes per task are saved as mp4 (front | wrist). Ctrl-C stops after the current episode and the
partial report is written with `"interrupted": true`. Episodes run through the one driver
(vla.session.driver) on the real-time runner; `<output_dir>/runner_metrics.json` holds its metrics over
the whole run, and report.json repeats them under `runner`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from omegaconf import DictConfig, OmegaConf

from vla.errors import VLAError
from vla.instantiate import instantiate
from vla.io import prepare_output_dir, write_json_atomic, write_text_atomic
from vla.plot import success_vs_step_svg
from vla.policy import ClosablePolicy, Policy
from vla.robot import EpisodicRobot, Robot
from vla.runner import RunnerConfig, RunnerMetrics
from vla.runner.result import EpisodeResult
from vla.session.config import PolicyBuilder, check_common, inference_label, policy_in_child
from vla.session.driver import Episode, EpisodePlan, EpisodeSink, run_episodes
from vla.session.report import per_task, summarize, summary_lines, task_table
from vla.session.sinks import VideoSink
from vla.stop import GracefulStop

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


@runtime_checkable
class GroupsTasks(Protocol):
    """A robot class that names groups of its tasks (Meta-World's `tasks=[easy]`): `task_group(name)` is
    the group's task ids, or None for a plain task id."""

    def task_group(self, name: str) -> list[str] | None: ...


def _expand_tasks(cfg: DictConfig) -> list[str]:
    """`tasks=[...]`, with the robot's named groups expanded; the robot is named by its _target_, never
    imported here."""
    from hydra.utils import get_class

    names = [str(t) for t in cfg.tasks]
    try:
        robot_class = get_class(str(cfg.robot.get("_target_")))
    except Exception:  # a bad _target_ is reported when the robot is built
        robot_class = None
    grouping = robot_class if isinstance(robot_class, GroupsTasks) else None  # checked on the class
    out: list[str] = []
    for name in names:
        group = grouping.task_group(name) if grouping is not None else None
        out.extend(group if group else [name])
    return out


def _validate(cfg: DictConfig) -> tuple[list[str], list[str | None]]:
    """Check the plain fields; returns the task ids and the checkpoints ([None]: the policy as configured)."""
    check_common(cfg)
    if cfg.videos < 0:
        raise VLAError(f"videos={cfg.videos}: must be ≥ 0 (0 records no video)")
    tasks = [str(cfg.robot.get("task"))] if cfg.tasks is None else _expand_tasks(cfg)
    if not tasks or len(set(tasks)) != len(tasks):
        raise VLAError(
            f"tasks={tasks}: give each task id once, e.g. tasks=[touch,pick] (or null for robot.task)"
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


class GroundingSink:
    """Grounding on tasks that name one of several objects (the SO-101 cubes): which object the hand
    touched (or grasped) first in the episode and whether it was the named one; nothing where the robot's
    info does not say (Meta-World, real arms)."""

    def __init__(self, robot: Robot) -> None:
        self.robot = robot if isinstance(robot, EpisodicRobot) else None

    def begin(self, episode: Episode) -> None:
        pass

    def step(self, observation: dict[str, Any], action: Any) -> None:
        pass

    def end(self, episode: Episode, result: EpisodeResult) -> dict[str, Any]:
        info = self.robot.info if self.robot is not None else {}
        if "target" not in info or "first_touched" not in info:
            return {}
        first = info["first_touched"]
        return {"target": info["target"], "first_touched": first, "named_first": first == info["target"]}

    def drop(self, episode: Episode) -> None:
        pass

    def close(self) -> None:
        pass


def rollout(cfg: DictConfig, build_policy: PolicyBuilder) -> dict[str, Any]:
    """Run the evaluation, write report.json (and videos, plot) under cfg.output_dir; returns the report."""
    from tqdm import tqdm

    tasks, checkpoints = _validate(cfg)
    out = Path(cfg.output_dir).absolute()
    prepare_output_dir(out)
    robots: dict[str, Robot] = {}
    for task in tasks:  # built before anything runs, so an unknown task id fails first
        try:
            robots[task] = instantiate(cfg.robot, "robot", task=task)
        except VLAError as e:
            raise (VLAError(f"tasks=[{','.join(tasks)}]: {e}") if cfg.tasks is not None else e) from None
    groups = [(c, ckpt, task) for c, ckpt in enumerate(checkpoints) for task in tasks]
    runner_cfg = RunnerConfig.from_any(cfg.runner)

    def make_policy(ckpt: str | None, task: str) -> Policy:
        override = {} if ckpt is None else {"checkpoint": ckpt}
        return build_policy(cfg.policy, cfg.runner, robots[task], **override)

    policy: Policy | None = make_policy(groups[0][1], groups[0][2])  # a bad config fails before the bar
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
            for c, ckpt, task in groups:
                if stop.requested:
                    break
                videos = Path("videos") if ckpt is None else Path("videos", f"{c}_{Path(ckpt).name}")
                robot = robots[task]
                policy = policy or make_policy(ckpt, task)

                def done(r: dict[str, Any], ckpt: str | None = ckpt, task: str = task) -> None:
                    per_episode.append(
                        {"checkpoint": ckpt, "task": task, "seed": r["seed"], "instruction": r["task"]}
                        | {k: v for k, v in r.items() if k not in ("episode", "seed", "task")}
                    )
                    wins = sum(e["success"] for e in per_episode)
                    bar.set_postfix(task=task, success=f"{wins}/{len(per_episode)}", refresh=False)
                    bar.update(1)

                sinks: list[EpisodeSink] = [
                    GroundingSink(robot),
                    VideoSink(out, videos, task, cfg.videos, robot.fps, robot),
                ]
                plan = EpisodePlan(cfg.episodes, seed=cfg.seed, max_steps=cfg.max_steps, finish_on_stop=True)
                group_policy, policy = policy, None  # run_episodes closes it
                outcome = run_episodes(
                    robot,
                    group_policy,
                    runner_cfg,
                    plan,
                    sinks,
                    stop=stop,
                    recorder=recorder,
                    on_status=show if cfg.progress else None,
                    on_episode=done,
                )
                if outcome.interrupted:
                    break
        finally:
            bar.close()
            if isinstance(policy, ClosablePolicy):  # built, never run (stopped before its group)
                policy.close()
    report = _report(cfg, tasks, checkpoints, per_episode, out)
    report.update(interrupted=len(per_episode) < total, seconds=time.perf_counter() - started)
    recorder.info["inference"] = inference_label(runner_cfg, policy_in_child(cfg.policy, runner_cfg))
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
        "robot": OmegaConf.to_container(cfg.robot, resolve=True, throw_on_missing=False),
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
        write_text_atomic(plot, success_vs_step_svg(rows))
        report["plot"] = plot.name
    return report


def _table(per_task_stats: dict[str, dict[str, Any]], overall: dict[str, Any]) -> str:
    return task_table(per_task_stats, overall)


def summary(report: dict[str, Any]) -> str:
    """The closing summary a user reads: the table(s) per task and overall (per checkpoint when there are
    several), then the summary every app prints."""
    out = Path(report["output_dir"])
    table = []
    for row in report.get("per_checkpoint", []):
        step = "unknown" if row["step"] is None else row["step"]
        table.append(f"checkpoint {row['checkpoint']} (step {step})\n{task_table(row['per_task'], row)}")
    if "per_checkpoint" in report:
        table.append(f"plot: {out / report['plot']}")
    else:
        table.append(task_table(report["per_task"], report))
    frames = sum(e["steps"] for e in report["per_episode"])
    view = {**report, "table": table, "frames": frames, "report": str(out / "report.json")}
    return "\n".join(summary_lines(view))
