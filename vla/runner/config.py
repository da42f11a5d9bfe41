"""`RunnerConfig`: the `runner:` node of the apps (a hydra structured config)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla.runner.errors import RunnerConfigError

STRATEGIES = ("sync", "async", "rtc", "ensemble")
MERGES = ("replace", "average")
INFERENCE = ("auto", "thread", "process", "inline")


@dataclass
class RunnerConfig:
    """How the real-time runner schedules inference and filters actions.

    strategy: sync (infer when the chunk runs out) | async (infer when fewer than `async_threshold`
        actions remain) | rtc (real-time chunking) | ensemble (ACT temporal ensembling).
    rate_hz: control frequency (null: the robot's fps).
    extra_latency_ms: injected inference delay, added to the real one (tests, benchmarks).
    async_threshold: remaining actions that start the next inference (null: from the measured latency).
    merge: async only; replace (the new chunk wins) | average (a linear cross-fade over the overlap).
    execution_horizon: rtc: actions executed from a chunk before the next inference (null: chunk / 2).
    rtc_beta: clip on the guidance scale. ensemble_decay: ACT's m in w_i = exp(-m i).
    max_delta_per_tick: rate clamp per joint per tick (robot units, degrees; null: none).
    safe_stop_timeout_s: time without a valid action before the safe stop.
    realtime: true ticks on the clock; false steps as fast as inference allows, with latencies turned
        into ticks so scheduling is as in real time (quick evaluation).
    measure_compute: with realtime=false, count the measured compute time in the latency (false: only
        extra_latency_ms, for runs that are identical from machine to machine).
    warmup: run the policy once before the first tick (compilation, allocation, a first latency).
    inference: where the apps run the policy: thread (a worker thread of the control process) | process
        (a child process built from the policy's config, served over loopback: the control loop keeps
        its interpreter lock to itself, for sub-millisecond tick jitter) | auto (process for checkpoint
        policies when realtime, else thread) | inline (called in the control loop itself, sync only: for
        policies that answer in well under a tick, e.g. a teleop device). The Runner itself takes whatever
        policy object it is given; the apps build it in a child process for `process`.
    """

    strategy: str = "sync"
    rate_hz: float | None = None
    extra_latency_ms: float = 0.0
    async_threshold: int | None = None
    merge: str = "replace"
    execution_horizon: int | None = None
    rtc_beta: float = 5.0
    ensemble_decay: float = 0.01
    max_delta_per_tick: float | None = None
    safe_stop_timeout_s: float = 1.0
    realtime: bool = True
    measure_compute: bool = True
    warmup: bool = True
    status_every_s: float = 0.5
    inference: str = "auto"

    def validate(self) -> RunnerConfig:
        if self.strategy not in STRATEGIES:
            raise RunnerConfigError(
                f"runner.strategy={self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        if self.inference not in INFERENCE:
            raise RunnerConfigError(
                f"runner.inference={self.inference!r}: choose one of {', '.join(INFERENCE)}"
            )
        if self.inference == "inline" and self.strategy != "sync":
            raise RunnerConfigError(
                f"runner.inference=inline blocks the loop; it needs runner.strategy=sync, not {self.strategy}"
            )
        if self.merge not in MERGES:
            raise RunnerConfigError(f"runner.merge={self.merge!r}: choose one of {', '.join(MERGES)}")
        if self.rate_hz is not None and not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise RunnerConfigError(
                f"runner.rate_hz={self.rate_hz}: must be > 0 (or null for the robot's fps)"
            )
        positive = {"safe_stop_timeout_s": self.safe_stop_timeout_s, "rtc_beta": self.rtc_beta}
        for name, value in positive.items():
            if not value > 0:
                raise RunnerConfigError(f"runner.{name}={value}: must be > 0")
        if self.extra_latency_ms < 0 or self.ensemble_decay < 0:
            raise RunnerConfigError("runner.extra_latency_ms and runner.ensemble_decay must be ≥ 0")
        for name in ("async_threshold", "execution_horizon"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RunnerConfigError(f"runner.{name}={value}: must be ≥ 1 (or null to derive it)")
        if self.max_delta_per_tick is not None and not self.max_delta_per_tick > 0:
            raise RunnerConfigError(
                f"runner.max_delta_per_tick={self.max_delta_per_tick}: must be > 0 or null"
            )
        return self

    def in_process(self, loads_checkpoint: bool) -> bool:
        """Whether the policy should run in a child process (see `inference`)."""
        if self.inference == "auto":
            return self.realtime and loads_checkpoint
        return self.inference == "process"

    @classmethod
    def from_any(cls, node: object | None) -> RunnerConfig:
        """A RunnerConfig from itself, a dict or an OmegaConf node (None: the defaults)."""
        if node is None:
            return cls().validate()
        if isinstance(node, cls):
            return node.validate()
        from omegaconf import DictConfig, OmegaConf

        data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)  # type: ignore[call-overload]
        assert isinstance(data, dict)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise RunnerConfigError(f"runner.{sorted(unknown)[0]}: no such field")
        return cls(**data).validate()  # type: ignore[arg-type]
