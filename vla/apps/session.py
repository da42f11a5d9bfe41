"""A session on a robot: a policy (a checkpoint, or a teleop device) drives a Robot through the real-time
runner for some episodes or some seconds, optionally recorded into a LeRobotDataset. `vla-teleop` and
`vla-deploy` are this loop with different policies.

Safety and data guarantees: the first Ctrl-C (or SIGTERM) ends the episode under way, which is dropped;
every finished episode is kept and the dataset is finalised; the robot is disconnected (torque off on
arms) in every case; `<output_dir>/runner_metrics.json` holds the runner's metrics plus, for serial
arms, the buses' error and retry counts.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from vla.apps.common import GracefulStop, prepare_output_dir
from vla.apps.keys import EpisodeControls, TerminalKeys
from vla.errors import VLAError
from vla.runner.config import RunnerConfig


@dataclass
class SessionDataset:
    root: str | None = None  # null: nothing is recorded
    repo_id: str = "local/session"
    video: bool = True
    resume: bool = False


@dataclass
class SessionConfig:
    """What teleop and deploy share (their configs extend it)."""

    robot: Any = MISSING
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    dataset: SessionDataset = field(default_factory=SessionDataset)
    task: str | None = None  # the instruction recorded with each frame (null: the robot's own, in simulation)
    episodes: int = 1
    episode_time_s: float | None = None  # null: until the simulated episode ends (or duration_s, or Ctrl-C)
    reset_time_s: float = 0.0  # between episodes: the policy keeps running, nothing is recorded
    duration_s: float | None = None  # end the whole session after this long (scripts, tests)
    seed: int = 0
    output_dir: str = "outputs/session"
    progress: bool = True
    keys: bool = True  # in a terminal: n ends the episode (kept), x records it again, Esc/q ends the session
    display: bool = False  # show the cameras live in a window (needs a display)


@dataclass
class SessionResult:
    episodes: list[dict[str, Any]]
    interrupted: bool
    seconds: float
    metrics: dict[str, Any]
    dataset: dict[str, Any] | None


def validate(cfg: Any) -> None:
    for name in ("episode_time_s", "duration_s"):
        value = cfg.get(name)
        if value is not None and not value > 0:
            raise VLAError(f"{name}={value}: must be > 0 (or null)")
    if cfg.episodes < 1:
        raise VLAError(f"episodes={cfg.episodes}: must be at least 1")
    if cfg.reset_time_s < 0:
        raise VLAError(f"reset_time_s={cfg.reset_time_s}: must be ≥ 0")


def _task(cfg: Any, robot: Any) -> str:
    if cfg.task:
        return str(cfg.task)
    if hasattr(robot, "task"):
        return ""  # the simulated robot's own instruction, per episode
    if cfg.dataset.root:
        raise VLAError("task is required when recording a real robot; pass task='pick up the red cube'")
    return ""


def bus_stats(*things: Any) -> dict[str, Any]:
    """The serial buses' counters of whatever arms are involved (robot, leader)."""
    out = {}
    for name, thing in things:
        bus = getattr(thing, "bus", None) or getattr(getattr(thing, "leader", None), "bus", None)
        if bus is None:
            arm = getattr(thing, "arm", None)  # the virtual SO-101
            bus = getattr(arm, "bus", None)
        stats = getattr(bus, "stats", None)
        if stats is not None:
            out[name] = dict(vars(stats))
    return out


def run_session(cfg: Any, robot: Any, policy: Any, app: str) -> SessionResult:
    """Connect, drive, record, and always clean up. `robot` and `policy` are built, not connected."""
    from tqdm import tqdm

    from vla.runner import Runner, RunnerMetrics

    validate(cfg)
    runner_cfg = RunnerConfig.from_any(cfg.runner)
    task_override = _task(cfg, robot)
    rate = float(runner_cfg.rate_hz or robot.fps)
    out = Path(cfg.output_dir).absolute()
    prepare_output_dir(out)
    viewer = camera_window(robot) if cfg.display else None  # before anything is written
    writer = None
    if cfg.dataset.root:
        from vla.dataset import open_for_recording

        features = {**robot.observation_features, **robot.action_features}
        fps = round(rate)
        if not math.isclose(fps, rate):
            raise VLAError(
                f"runner.rate_hz={rate}: a recorded dataset needs a whole number of frames per second"
            )
        writer = open_for_recording(
            cfg.dataset.root,
            cfg.dataset.repo_id,
            features,
            fps,
            robot.robot_type,
            cfg.dataset.resume,
            use_videos=cfg.dataset.video,
        )
    recorder = RunnerMetrics()
    # where the policy ran: a child process (policies.process), or this one (thread / inline)
    in_child = getattr(policy, "pid", None) is not None
    recorder.info["inference"] = (
        "process" if in_child else ("inline" if runner_cfg.inference == "inline" else "thread")
    )
    episodes: list[dict[str, Any]] = []
    interrupted = False
    started = time.perf_counter()
    runner = None
    bar = tqdm(
        total=cfg.episodes, desc=app, unit="ep", disable=not cfg.progress, dynamic_ncols=True, file=sys.stderr
    )
    keyboard_policy = type(policy).__name__ == "KeyboardTeleop"  # it reads the keys itself
    key_source = TerminalKeys() if cfg.keys and not keyboard_policy else None
    controls = EpisodeControls(key_source)
    try:
        robot.connect()
        if hasattr(policy, "connect"):
            policy.connect()
        ended_at = None if cfg.duration_s is None else started + float(cfg.duration_s)

        def time_up() -> bool:
            return ended_at is not None and time.perf_counter() >= ended_at

        with GracefulStop("stopping: the episode under way is dropped, the rest is kept") as stop:

            def show(status: dict[str, Any]) -> None:
                bar.set_postfix(**status, refresh=True)

            runner = Runner(
                robot, policy, runner_cfg, recorder=recorder, on_status=show if cfg.progress else None
            )
            steps = None if cfg.episode_time_s is None else max(1, round(cfg.episode_time_s * rate))
            i = 0
            while i < cfg.episodes:
                seed = cfg.seed + i + (writer.episodes_before if writer is not None else 0)
                controls.clear()

                def on_step(obs: dict, action: Any) -> None:
                    if writer is not None:
                        writer.add_frame(obs, action, task_override or str(robot.task))
                    if viewer is not None:
                        viewer(obs)

                result = runner.run_episode(
                    seed,
                    max_steps=steps,
                    on_step=on_step,
                    should_stop=lambda: stop() or time_up() or controls.poll(),
                )
                if controls.action == "rerecord" and not stop.requested:
                    if writer is not None:
                        writer.drop_episode()
                    print(f"\nre-recording episode {i}", file=sys.stderr, flush=True)
                    continue
                ended_early = result.interrupted and controls.action is None
                if ended_early and (stop.requested or writer is None):
                    interrupted = stop.requested
                    if writer is not None:
                        writer.drop_episode()
                    if not stop.requested:  # the duration ran out: the unrecorded session is complete
                        episodes.append(_record(i, seed, result))
                    break
                if writer is not None:
                    writer.save_episode()
                episodes.append(_record(i, seed, result))
                bar.update(1)
                i += 1
                if ended_early or time_up() or controls.action == "stop":
                    break
                real = not hasattr(robot, "reset")  # a simulation resets itself at the next episode
                if real and cfg.reset_time_s and i < cfg.episodes:  # the operator resets the scene
                    runner.run_episode(
                        None, max_steps=max(1, round(cfg.reset_time_s * rate)), should_stop=stop
                    )
                    if stop.requested:
                        interrupted = True
                        break
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; the cleanup below still runs
        interrupted = True
    finally:
        bar.close()
        try:
            if runner is not None:
                runner.close()
            recorder.info["bus"] = bus_stats(("robot", robot), ("teleop", policy))  # before they close
            if hasattr(policy, "close"):
                policy.close()
        finally:
            try:
                robot.disconnect()
            finally:
                if key_source is not None:
                    key_source.close()
                if writer is not None:
                    writer.close()
    metrics = recorder.summary()
    recorder.write(out / "runner_metrics.json")
    dataset = None
    if writer is not None:
        dataset = {
            "root": str(writer.root),
            "repo_id": writer.repo_id,
            "episodes_saved": writer.episodes_saved,
            "frames_saved": writer.frames_saved,
            "episodes_in_dataset": writer.episodes_before + writer.episodes_saved,
        }
    return SessionResult(episodes, interrupted, time.perf_counter() - started, metrics, dataset)


def camera_window(robot: Any) -> Any:
    """A live view of the robot's cameras (OpenCV window); a clear error without a display."""
    import os

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise VLAError("display=true needs a graphical display (DISPLAY is not set); run without it")
    import cv2
    import numpy as np

    from vla.robot import camera_keys

    keys = camera_keys(robot.observation_features)

    def show(obs: dict[str, Any]) -> None:
        frames = [np.asarray(obs[k]) for k in keys if k in obs]
        if frames:
            height = max(f.shape[0] for f in frames)
            padded = [np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0))) for f in frames]
            cv2.imshow("vla", cv2.cvtColor(np.concatenate(padded, axis=1), cv2.COLOR_RGB2BGR))
            cv2.waitKey(1)

    return show


def _record(i: int, seed: int, result: Any) -> dict[str, Any]:
    return {"episode": i, "seed": seed, "task": result.task, "success": result.success, "steps": result.steps}


def summary_lines(result: SessionResult) -> list[str]:
    from vla.metrics import wilson_interval

    m = result.metrics
    lines = []
    n = len(result.episodes)
    wins = sum(bool(e["success"]) for e in result.episodes)
    if n:
        lo, hi = wilson_interval(wins, n)
        lines.append(
            f"episodes: {n}, success {wins}/{n} = {100 * wins / n:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"
        )
    lines.append(
        f"ticks {m['ticks']}, missed {m['missed_ticks']}, jitter p99 {m['jitter_p99_ms']:.3f} ms, "
        f"safety interventions {m['safety_interventions']}"
    )
    for name, stats in m.get("bus", {}).items():
        lines.append(
            f"{name} bus: {stats.get('transactions', 0)} transactions, {stats.get('retries', 0)} retries, "
            f"{stats.get('checksum_errors', 0)} bad checksums, {stats.get('timeouts', 0)} timeouts, "
            f"{stats.get('failures', 0)} failures"
        )
    if result.dataset is not None:
        d = result.dataset
        lines.append(
            f"dataset: {d['root']}: kept {d['episodes_saved']} episodes, {d['frames_saved']} frames "
            f"({d['episodes_in_dataset']} in all)"
        )
    if result.interrupted:
        lines.append("interrupted: the episode under way was dropped, finished ones are kept")
    lines.append(f"{result.seconds:.1f} s")
    return lines
