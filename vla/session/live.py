"""A live session on a robot (vla-teleop, vla-deploy): a policy (a checkpoint, or a teleop device) drives a
Robot through the one driver for some episodes or some seconds, optionally recorded into a LeRobotDataset.

Safety and data guarantees: the first Ctrl-C (or SIGTERM) ends the episode under way, which is dropped;
every finished episode is kept and the dataset is finalised; the robot is disconnected (torque off on
arms) in every case; `<output_dir>/runner_metrics.json` holds the runner's metrics plus, for serial
arms, the buses' error and retry counts.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla.errors import VLAError
from vla.io import prepare_output_dir
from vla.policy import Policy
from vla.robot import EpisodicRobot, Robot
from vla.runner import RunnerConfig, RunnerMetrics
from vla.session.config import check_common, inference_label
from vla.session.driver import EpisodePlan, EpisodeSink, run_episodes
from vla.session.keys import EpisodeControls, KeyReadingPolicy, TerminalKeys
from vla.session.report import outcome_stats
from vla.session.sinks import DatasetSink, ViewerSink, open_dataset
from vla.stop import GracefulStop


@dataclass
class SessionResult:
    episodes: list[dict[str, Any]]
    interrupted: bool
    seconds: float
    metrics: dict[str, Any]
    dataset: dict[str, Any] | None


def validate(cfg: Any) -> None:
    check_common(cfg)
    for name in ("episode_time_s", "duration_s"):
        value = cfg.get(name)
        if value is not None and not value > 0:
            raise VLAError(f"{name}={value}: must be > 0 (or null)")
    if cfg.reset_time_s < 0:
        raise VLAError(f"reset_time_s={cfg.reset_time_s}: must be ≥ 0")


def _task(cfg: Any, robot: Robot) -> str:
    if cfg.task:
        return str(cfg.task)
    if isinstance(robot, EpisodicRobot):
        return ""  # the simulated robot's own instruction, per episode
    if cfg.dataset.root:
        raise VLAError("task is required when recording a real robot; pass task='pick up the red cube'")
    return ""


def run_session(cfg: Any, robot: Robot, policy: Policy, app: str, in_child: bool = False) -> SessionResult:
    """Connect, drive, record, and always clean up. `robot` and `policy` are built, not connected;
    `in_child`: the policy runs in a child process (for runner_metrics.json's `inference`)."""
    from tqdm import tqdm

    validate(cfg)
    runner_cfg = RunnerConfig.from_any(cfg.runner)
    task = _task(cfg, robot)
    rate = float(runner_cfg.rate_hz or robot.fps)
    out = Path(cfg.output_dir).absolute()
    prepare_output_dir(out)
    sinks: list[EpisodeSink] = []
    if cfg.display:
        sinks.append(ViewerSink(robot))  # before anything is written
    dataset = None
    if cfg.dataset.root:
        writer = open_dataset(
            robot, cfg.dataset.root, cfg.dataset.repo_id, rate, cfg.resume, cfg.dataset.video
        )
        dataset = DatasetSink(writer, robot, task=task)
        sinks.insert(0, dataset)
    recorder = RunnerMetrics()
    recorder.info["inference"] = inference_label(runner_cfg, in_child)
    started = time.perf_counter()
    bar = tqdm(
        total=cfg.episodes, desc=app, unit="ep", disable=not cfg.progress, dynamic_ncols=True, file=sys.stderr
    )
    # a keyboard teleop reads the keys itself; otherwise n / x / q control the episodes
    key_source = TerminalKeys() if cfg.keys and not isinstance(policy, KeyReadingPolicy) else None
    plan = EpisodePlan(
        cfg.episodes,
        seed=cfg.seed + (dataset.writer.episodes_before if dataset is not None else 0),
        max_steps=None if cfg.episode_time_s is None else max(1, round(cfg.episode_time_s * rate)),
        duration_s=cfg.duration_s,
        reset_s=cfg.reset_time_s,
        recording=dataset is not None,
    )

    def show(status: dict[str, Any]) -> None:
        bar.set_postfix(**status, refresh=True)

    try:
        with GracefulStop("stopping: the episode under way is dropped, the rest is kept") as stop:
            outcome = run_episodes(
                robot,
                policy,
                runner_cfg,
                plan,
                sinks,
                stop=stop,
                recorder=recorder,
                on_status=show if cfg.progress else None,
                on_episode=lambda record: bar.update(1),
                controls=EpisodeControls(key_source),
            )
    finally:
        bar.close()
        if key_source is not None:
            key_source.close()
    metrics = recorder.summary()
    recorder.write(out / "runner_metrics.json")
    return SessionResult(
        outcome.episodes,
        outcome.interrupted,
        time.perf_counter() - started,
        metrics,
        dataset.summary() if dataset is not None else None,
    )


def session_summary(result: SessionResult) -> list[str]:
    """What vla-teleop and vla-deploy print: the one summary (vla.session.report)."""
    from vla.session.report import summary_lines

    stats = outcome_stats(result.episodes)
    view = {**stats, "seconds": result.seconds, "interrupted": result.interrupted}
    return summary_lines({**view, "runner": result.metrics, "dataset": result.dataset})
