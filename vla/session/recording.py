"""vla-record's library: drive a Robot with a Policy through the runner and write a LeRobotDataset v3.0.

Episode i uses seed `seed + i` (continuing after the episodes already there when resuming), so a
recording is reproducible. Ctrl-C stops after the current step: finished episodes are kept, the
unfinished one is dropped, and the dataset is finalised.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vla.instantiate import instantiate
from vla.io import write_json_atomic
from vla.policy import ClosablePolicy
from vla.runner import RunnerConfig, RunnerMetrics
from vla.session.config import Keep, PolicyBuilder, check_common, inference_label, policy_in_child
from vla.session.driver import EpisodePlan, run_episodes
from vla.session.report import outcome_stats, summary_lines
from vla.session.sinks import DatasetSink, open_dataset
from vla.stop import GracefulStop


@dataclass
class RecordReport:
    dataset_root: str
    repo_id: str
    task_suite: str
    episodes_run: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]
    episodes_kept: int
    frames_kept: int
    episodes_in_dataset: int
    interrupted: bool
    seconds: float
    per_episode: list[dict[str, Any]]
    runner: dict[str, Any] = field(default_factory=dict)  # the runner's metrics (runner_metrics.json)

    def summary(self) -> str:
        stats = outcome_stats(self.per_episode)
        dataset = {
            "root": self.dataset_root,
            "repo_id": self.repo_id,
            "episodes_saved": self.episodes_kept,
            "frames_saved": self.frames_kept,
            "episodes_in_dataset": self.episodes_in_dataset,
        }
        report = {**stats, "seconds": self.seconds, "interrupted": self.interrupted}
        return "\n".join(summary_lines({**report, "runner": self.runner, "dataset": dataset}))

    def write(self, out_dir: Path, cfg: DictConfig) -> None:
        """record_report.json (with the resolved config) and runner_metrics.json, into `out_dir`."""
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        write_json_atomic(out_dir / "record_report.json", {**asdict(self), "config": config})
        write_json_atomic(
            out_dir / "runner_metrics.json", {k: v for k, v in self.runner.items() if k != "config"}
        )


def record(cfg: DictConfig, build_policy: PolicyBuilder) -> RecordReport:
    """Record `cfg.episodes` episodes; returns the report (printed and written by the app)."""
    from tqdm import tqdm

    check_common(cfg)
    runner_cfg = RunnerConfig.from_any(cfg.runner)
    robot = instantiate(cfg.robot, "robot")
    policy = build_policy(cfg.policy, cfg.runner, robot)
    rate = float(runner_cfg.rate_hz or robot.fps)
    try:
        writer = open_dataset(
            robot, cfg.dataset.root, cfg.dataset.repo_id, rate, cfg.resume, video=cfg.dataset.video
        )
    except BaseException:
        if isinstance(policy, ClosablePolicy):  # a policy process, a server connection
            policy.close()
        raise
    sink = DatasetSink(writer, robot, keep=Keep(cfg.keep).value)
    recorder = RunnerMetrics()
    recorder.info["inference"] = inference_label(runner_cfg, policy_in_child(cfg.policy, runner_cfg))
    plan = EpisodePlan(cfg.episodes, seed=cfg.seed + writer.episodes_before, max_steps=cfg.max_steps)
    started = time.perf_counter()
    bar = tqdm(
        total=cfg.episodes,
        desc="recording",
        unit="ep",
        disable=not cfg.progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    wins = {"n": 0, "ok": 0}

    def show(status: dict[str, Any]) -> None:  # the runner calls it at most every runner.status_every_s
        bar.set_postfix(success=f"{wins['ok']}/{wins['n']}", kept=writer.episodes_saved, **status)

    def done(record: dict[str, Any]) -> None:
        wins["n"] += 1
        wins["ok"] += bool(record["success"])
        bar.set_postfix(success=f"{wins['ok']}/{wins['n']}", kept=writer.episodes_saved, refresh=False)
        bar.update(1)

    try:
        with GracefulStop() as stop:
            outcome = run_episodes(
                robot,
                policy,
                runner_cfg,
                plan,
                [sink],
                stop=stop,
                recorder=recorder,
                on_status=show if cfg.progress else None,
                on_episode=done,
            )
    finally:
        bar.close()
    episodes = [{k: v for k, v in e.items() if k != "episode"} for e in outcome.episodes]
    stats = outcome_stats(episodes)
    return RecordReport(
        dataset_root=str(writer.root),
        repo_id=writer.repo_id,
        task_suite=str(cfg.robot.get("task", "")),
        episodes_run=stats["episodes"],
        successes=stats["successes"],
        success_rate=stats["success_rate"] or 0.0,
        success_ci95=tuple(stats["success_ci95"]),  # type: ignore[arg-type]
        episodes_kept=writer.episodes_saved,
        frames_kept=writer.frames_saved,
        episodes_in_dataset=writer.episodes_before + writer.episodes_saved,
        interrupted=outcome.interrupted,
        seconds=time.perf_counter() - started,
        per_episode=episodes,
        runner={"config": OmegaConf.to_container(cfg.runner, resolve=True), **recorder.summary()},
    )
