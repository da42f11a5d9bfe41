"""The structured configs (hydra schemas) of the apps that run episodes: vla-record, vla-rollout,
vla-teleop and vla-deploy. The YAML files under configs/ hold the defaults and their comments."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from vla.errors import VLAError
from vla.policy import Policy
from vla.runner.config import RunnerConfig


class Keep(enum.Enum):
    all = "all"
    success = "success"


@dataclass
class DatasetConfig:
    """Where episodes are recorded (LeRobot's layout). `resume` is the apps' top-level key."""

    root: str | None = None  # null: nothing is recorded (vla-record requires one)
    repo_id: str = "local/session"  # any "<owner>/<name>"; with a local root nothing is looked up on a hub
    video: bool = True
    resume: Any = None  # moved to the top level: a value here is refused with a line naming `resume`


@dataclass
class RecordDatasetConfig(DatasetConfig):
    root: str | None = MISSING  # required, so nothing lands somewhere unexpected


@dataclass
class RecordConfig:
    robot: Any = MISSING
    policy: Any = MISSING
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    dataset: RecordDatasetConfig = field(default_factory=RecordDatasetConfig)
    episodes: int = 20
    seed: int = 0
    resume: bool = False
    keep: Keep = Keep.all
    max_steps: int | None = None
    progress: bool = True


@dataclass
class RolloutConfig:
    robot: Any = MISSING
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


@dataclass
class SessionConfig:
    """What teleop and deploy share (their configs extend it)."""

    robot: Any = MISSING
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    resume: bool = False  # append to the dataset at dataset.root (same schema required)
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
class TeleopConfig(SessionConfig):
    teleop: Any = MISSING


@dataclass
class DeployConfig(SessionConfig):
    policy: Any = MISSING


def check_common(cfg: Any) -> None:
    """The checks every episode app shares: counts, seeds, step caps, and the one `resume` key."""
    if cfg.episodes <= 0:
        raise VLAError(f"episodes={cfg.episodes}: must be at least 1")
    if cfg.seed < 0:
        raise VLAError(f"seed={cfg.seed}: must be ≥ 0")
    if cfg.get("max_steps") is not None and cfg.max_steps <= 0:
        raise VLAError(f"max_steps={cfg.max_steps}: must be at least 1 (or null for the robot's limit)")
    dataset = cfg.get("dataset")
    if dataset is not None and dataset.get("resume") is not None:
        raise VLAError(
            f"dataset.resume={dataset.resume}: the key is `resume` now; pass resume={dataset.resume}"
        )


def policy_in_child(policy_cfg: Any, runner: RunnerConfig) -> bool:
    """Whether the apps build this policy in a child process (`runner.inference`; auto: a checkpoint
    policy under real time)."""
    return runner.in_process(loads_checkpoint="checkpoint" in list(policy_cfg.keys()))  # `in` skips ???


def inference_label(runner: RunnerConfig, in_child: bool) -> str:
    """Where the policy ran, as runner_metrics.json says: process | inline | thread."""
    return "process" if in_child else ("inline" if runner.inference == "inline" else "thread")


# (policy_cfg, runner_cfg, robot, **override) -> the configured policy for the robot, in a child process
# when `runner.inference` says so: the apps pass in their build_policy (they sit on top of the library)
PolicyBuilder = Callable[..., Policy]
