"""`run_episodes`: the one episode driver. Every app that moves a robot runs its episodes here, through the
real-time runner (rate, safety filter, watchdog, metrics), feeding sinks with what an episode produces.

    outcome = run_episodes(robot, policy, RunnerConfig(realtime=False), EpisodePlan(episodes=20),
                           [DatasetSink(writer, robot)], stop=stop, recorder=RunnerMetrics())

Guarantees, whatever the app: the robot is connected here and always disconnected (torque off on arms);
the policy is connected and closed here when it has those capabilities; an episode cut short by Ctrl-C
(or an exception) is dropped by every sink, so every finished episode stays whole; a second Ctrl-C stops
at once and the finished episodes are still reported.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.policy import ClosablePolicy, ConnectablePolicy, Policy
from vla.robot import EpisodicRobot, Robot
from vla.runner import Runner, RunnerConfig, RunnerMetrics
from vla.runner.result import EpisodeResult
from vla.session.keys import EpisodeControls
from vla.stop import GracefulStop

__all__ = ["Episode", "EpisodePlan", "EpisodeSink", "SessionOutcome", "bus_stats", "run_episodes"]


@dataclass
class Episode:
    """The episode a sink is told about: its place in the session, its seed, the robot it runs on."""

    index: int
    seed: int | None
    robot: Robot


class EpisodeSink(Protocol):
    """Something an episode produces (a dataset, a video, a live view, grounding facts)."""

    def begin(self, episode: Episode) -> None: ...

    def step(self, observation: dict[str, np.ndarray], action: np.ndarray) -> None: ...

    def end(self, episode: Episode, result: EpisodeResult) -> dict[str, Any]:
        """The episode finished: keep what it produced; returns fields for the episode's record."""
        ...

    def drop(self, episode: Episode) -> None:
        """The episode was cut short or is recorded again: leave nothing of it."""
        ...

    def close(self) -> None: ...


@dataclass
class EpisodePlan:
    """Which episodes to run and when to stop.

    episodes: how many to finish. seed: episode i is seeded with seed + i (a re-recorded episode keeps its
    seed). max_steps: ticks per episode (None: until the robot's episode ends). finish_on_stop: a stop
    request lets the episode under way finish (evaluation), instead of dropping it (recording).
    duration_s: end the whole session after this long. reset_s: between episodes on a robot that cannot
    reset itself, the policy keeps driving this long and nothing is recorded. recording: an episode cut
    short by `duration_s` is kept (a recording's last); otherwise it ends an unrecorded session.
    """

    episodes: int
    seed: int = 0
    max_steps: int | None = None
    finish_on_stop: bool = False
    duration_s: float | None = None
    reset_s: float = 0.0
    recording: bool = False


@dataclass
class SessionOutcome:
    episodes: list[dict[str, Any]] = field(default_factory=list)  # one record per finished episode
    interrupted: bool = False  # a stop request (or a second Ctrl-C) ended the session early


def run_episodes(
    robot: Robot,
    policy: Policy,
    config: RunnerConfig,
    plan: EpisodePlan,
    sinks: Sequence[EpisodeSink] = (),
    *,
    stop: GracefulStop,
    recorder: RunnerMetrics | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    controls: EpisodeControls | None = None,
) -> SessionOutcome:
    """Connect, run `plan` through one Runner, and always clean up (policy closed, robot disconnected,
    sinks closed). Each finished episode's record is {episode, seed, task (the instruction), success,
    steps} plus what the sinks return; `on_episode` sees each as it is made. `recorder` collects the
    runner's metrics and, before anything closes, the serial buses' counters (`info["bus"]`)."""
    recorder = recorder if recorder is not None else RunnerMetrics()
    outcome = SessionOutcome()
    runner = None
    try:
        robot.connect()
        if isinstance(policy, ConnectablePolicy):
            policy.connect()
        runner = Runner(robot, policy, config, recorder=recorder, on_status=on_status)
        _loop(runner, robot, plan, sinks, stop, controls, outcome, on_episode)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; finished episodes are kept
        outcome.interrupted = True
    finally:
        try:
            if runner is not None:
                runner.close()
            stats = bus_stats(("robot", robot), ("teleop", policy))  # before they close
            if stats:
                recorder.info["bus"] = stats
            if isinstance(policy, ClosablePolicy):
                policy.close()
        finally:
            try:
                robot.disconnect()
            finally:
                for sink in sinks:
                    sink.close()
    return outcome


def _loop(
    runner: Runner,
    robot: Robot,
    plan: EpisodePlan,
    sinks: Sequence[EpisodeSink],
    stop: GracefulStop,
    controls: EpisodeControls | None,
    outcome: SessionOutcome,
    on_episode: Callable[[dict[str, Any]], None] | None,
) -> None:
    ended_at = None if plan.duration_s is None else time.perf_counter() + float(plan.duration_s)

    def time_up() -> bool:
        return ended_at is not None and time.perf_counter() >= ended_at

    why: list[str] = []  # what cut the episode under way short: "stop", "time" or "key"

    def should_stop() -> bool:
        if not plan.finish_on_stop and stop():
            why.append("stop")
        elif time_up():
            why.append("time")
        elif controls is not None and controls.poll():
            why.append("key")
        return bool(why)

    def on_step(observation: dict[str, np.ndarray], action: np.ndarray) -> None:
        for sink in sinks:
            sink.step(observation, action)

    i = 0
    while i < plan.episodes:
        if stop.requested:
            outcome.interrupted = True
            return
        episode = Episode(i, plan.seed + i, robot)
        why.clear()
        if controls is not None:
            controls.clear()
        for sink in sinks:
            sink.begin(episode)
        try:
            result = runner.run_episode(
                episode.seed, max_steps=plan.max_steps, on_step=on_step, should_stop=should_stop
            )
        except BaseException:
            _drop(sinks, episode)
            raise
        key = controls.action if controls is not None else None
        if key == "rerecord" and not stop.requested:
            _drop(sinks, episode)
            print(f"\nre-recording episode {i}", file=sys.stderr, flush=True)
            continue
        cut = why[0] if result.interrupted and why else None
        if cut == "stop" or (cut == "time" and not plan.recording):
            _drop(sinks, episode)
            outcome.interrupted = cut == "stop"
            if cut == "time":  # the duration ran out: the unrecorded session is complete
                outcome.episodes.append(_record(episode, result, {}))
            return
        extras: dict[str, Any] = {}
        for sink in sinks:
            extras.update(sink.end(episode, result))
        record = _record(episode, result, extras)
        outcome.episodes.append(record)
        if on_episode is not None:
            on_episode(record)
        i += 1
        if cut == "time" or time_up() or key == "stop":
            return
        if plan.reset_s and not isinstance(robot, EpisodicRobot) and i < plan.episodes:
            # the operator resets the scene; a simulation resets itself at the next episode
            runner.run_episode(None, max_steps=max(1, round(plan.reset_s * runner.rate)), should_stop=stop)
            if stop.requested:
                outcome.interrupted = True
                return


def _drop(sinks: Sequence[EpisodeSink], episode: Episode) -> None:
    for sink in sinks:
        sink.drop(episode)


def _record(episode: Episode, result: EpisodeResult, extras: dict[str, Any]) -> dict[str, Any]:
    return {
        "episode": episode.index,
        "seed": episode.seed,
        "task": result.task,
        "success": result.success,
        "steps": result.steps,
        **extras,
    }


# ---------------------------------------------------------------------------- the buses' counters


@runtime_checkable
class BusReporter(Protocol):
    """Something that talks over a serial bus and reports its counters (a teleop leader arm)."""

    @property
    def bus_stats(self) -> dict[str, Any]: ...


@runtime_checkable
class OnABus(Protocol):
    """A serial arm: its `bus` counts transactions, retries, bad checksums, timeouts, failures."""

    bus: Any


@runtime_checkable
class CountingBus(Protocol):
    """A serial bus with its counters (hardware.bus.BusStats)."""

    stats: Any


@runtime_checkable
class WrapsAnArm(Protocol):
    """A robot driving a serial arm inside it (the virtual SO-101); `arm` is None while disconnected."""

    arm: Any


def _stats_of(thing: object) -> dict[str, Any] | None:
    if isinstance(thing, BusReporter):
        return dict(thing.bus_stats)
    if isinstance(thing, OnABus) and isinstance(thing.bus, CountingBus):
        return dict(vars(thing.bus.stats))
    if isinstance(thing, WrapsAnArm) and thing.arm is not None:
        return _stats_of(thing.arm)
    return None


def bus_stats(*things: tuple[str, object]) -> dict[str, dict[str, Any]]:
    """The serial buses' counters of whatever arms are involved, by role (robot, teleop)."""
    out = {}
    for name, thing in things:
        stats = _stats_of(thing)
        if stats is not None:
            out[name] = stats
    return out
