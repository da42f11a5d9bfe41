"""vla-record: drive a Robot with a Policy at the robot's fps and write a LeRobotDataset v3.0.

    vla-record env.task=pick policy=scripted episodes=20 dataset.root=/tmp/x

Episode i uses seed `seed + i` (continuing after the episodes already there when resuming), so a
recording is reproducible. Ctrl-C stops after the current step: finished episodes are kept, the
unfinished one is dropped, and the dataset is finalised.
"""

from __future__ import annotations

import enum
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from vla.apps.common import GracefulStop, instantiate, user_errors
from vla.errors import VLAError
from vla.metrics import wilson_interval

APP = "vla-record"


class Keep(enum.Enum):
    all = "all"
    success = "success"


@dataclass
class DatasetConfig:
    # Where the dataset is written (LeRobot's layout); required, so nothing lands somewhere unexpected.
    root: str = MISSING
    # Any "<owner>/<name>" string; with a local root nothing is looked up on a hub.
    repo_id: str = "local/so101"
    video: bool = True


@dataclass
class RecordConfig:
    env: Any = MISSING
    policy: Any = MISSING
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    episodes: int = 20
    seed: int = 0
    resume: bool = False
    keep: Keep = Keep.all
    max_steps: int | None = None
    progress: bool = True


ConfigStore.instance().store(name="record_schema", node=RecordConfig)


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

    def summary(self) -> str:
        lo, hi = self.success_ci95
        lines = [
            f"policy success: {self.successes}/{self.episodes_run} = {100 * self.success_rate:.1f}% "
            f"(95% CI {100 * lo:.1f}-{100 * hi:.1f}%)",
            f"kept {self.episodes_kept} episodes, {self.frames_kept} frames, in {self.seconds:.1f} s"
            + (" (interrupted)" if self.interrupted else ""),
            f"dataset: {self.dataset_root} (repo_id {self.repo_id}, {self.episodes_in_dataset} episodes in all)",
        ]
        return "\n".join(lines)


def _validate(cfg: DictConfig) -> None:
    if cfg.episodes <= 0:
        raise VLAError(f"episodes={cfg.episodes}: must be at least 1")
    if cfg.max_steps is not None and cfg.max_steps <= 0:
        raise VLAError(f"max_steps={cfg.max_steps}: must be at least 1 (or null for the env's limit)")
    if cfg.seed < 0:
        raise VLAError(f"seed={cfg.seed}: must be ≥ 0")


def record(cfg: DictConfig) -> RecordReport:
    """Record `cfg.episodes` episodes; returns the report (also printed and written by `main`)."""
    from tqdm import tqdm

    from vla.dataset import open_for_recording
    from vla.episode import run_episode

    _validate(cfg)
    robot = instantiate(cfg.env, "env")
    policy = instantiate(cfg.policy, "policy", robot=robot)
    keep_only_success = cfg.keep == Keep.success
    features = {**robot.observation_features, **robot.action_features}
    writer = open_for_recording(
        cfg.dataset.root,
        cfg.dataset.repo_id,
        features,
        robot.fps,
        robot.robot_type,
        cfg.resume,
        use_videos=cfg.dataset.video,
    )
    per_episode: list[dict[str, Any]] = []
    started = time.perf_counter()
    interrupted = False
    try:
        robot.connect()
        with GracefulStop() as stop:
            bar = tqdm(
                range(cfg.episodes),
                desc="recording",
                unit="ep",
                disable=not cfg.progress,
                dynamic_ncols=True,
                file=sys.stderr,
            )
            for i in bar:
                seed = cfg.seed + writer.episodes_before + i

                def on_step(obs: dict, action: Any) -> None:
                    writer.add_frame(obs, action, robot.task)

                result = run_episode(
                    robot, policy, seed, on_step=on_step, should_stop=stop, max_steps=cfg.max_steps
                )
                if result.interrupted:
                    interrupted = True
                    writer.drop_episode()
                    break
                kept = result.success or not keep_only_success
                if kept:
                    writer.save_episode()
                else:
                    writer.drop_episode()
                per_episode.append(
                    {
                        "seed": seed,
                        "task": result.task,
                        "success": result.success,
                        "steps": result.steps,
                        "kept": kept,
                    }
                )
                wins = sum(e["success"] for e in per_episode)
                bar.set_postfix(
                    success=f"{wins}/{len(per_episode)}", kept=writer.episodes_saved, refresh=False
                )
                bar.update(1)
                if stop.requested:
                    interrupted = True
                    break
            bar.close()
    finally:
        try:
            robot.disconnect()
        finally:
            writer.close()
    successes = sum(e["success"] for e in per_episode)
    n = len(per_episode)
    return RecordReport(
        dataset_root=str(writer.root),
        repo_id=writer.repo_id,
        task_suite=str(cfg.env.get("task", "")),
        episodes_run=n,
        successes=successes,
        success_rate=successes / n if n else 0.0,
        success_ci95=wilson_interval(successes, n),
        episodes_kept=writer.episodes_saved,
        frames_kept=writer.frames_saved,
        episodes_in_dataset=writer.episodes_before + writer.episodes_saved,
        interrupted=interrupted,
        seconds=time.perf_counter() - started,
        per_episode=per_episode,
    )


@hydra.main(version_base="1.3", config_path="pkg://configs", config_name="record")
@user_errors(APP)
def main(cfg: DictConfig) -> None:
    report = record(cfg)
    print(report.summary(), flush=True)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    out = out_dir / "record_report.json"
    out.write_text(
        json.dumps(
            {**asdict(report), "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)},
            indent=2,
        )
    )
    if report.episodes_kept == 0 and report.episodes_in_dataset == 0:
        print("no episode was kept; nothing was written", file=sys.stderr)


if __name__ == "__main__":
    main()
