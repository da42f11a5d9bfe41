"""`Runner`: the one control loop. Ticks at the control rate on absolute deadlines, sends one action per
tick through the safety filter, and schedules inference by the configured strategy without ever waiting
on it (sync waits at most within its own tick).

    runner = Runner(robot, policy, RunnerConfig(strategy="rtc", rate_hz=50))
    result = runner.run_episode(seed=0)         # an EpisodeResult (vla.runner.result)
    runner.write_metrics("runner_metrics.json")

A chunk computed from tick k's observation has its row 0 at tick k (see `vla.runner.plan`).
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vla.features import ACTION, IS_SUCCESS, STATE
from vla.policy import GuidedPolicy, Policy
from vla.robot import EpisodicRobot, Robot, SafeStopRobot
from vla.runner import rtc
from vla.runner.clock import Clock, RealClock
from vla.runner.config import RunnerConfig
from vla.runner.errors import PolicyUnavailable
from vla.runner.inference import (
    GuidedRequest,
    InferenceRequest,
    InferenceResult,
    InlineInference,
    ThreadedInference,
    call_policy,
)
from vla.runner.metrics import RunnerMetrics
from vla.runner.plan import ActionPlan
from vla.runner.result import EpisodeResult, StepCallback
from vla.runner.safety import HOLD, SAFE_STOP, SafetyFilter, joint_limits

StatusCallback = Callable[[dict[str, Any]], None]


class _Episode:
    """Per-episode state of the loop."""

    def __init__(self, plan: ActionPlan, hold: np.ndarray | None) -> None:
        self.plan = plan
        self.last_sent = hold  # last commanded position [A] (the watchdog holds it)
        self.last_planned: np.ndarray | None = None  # previous tick's planned action, for boundary jumps
        self.switched = False  # a chunk arrived this tick
        self.superseded: np.ndarray | None = None  # what the plan held for this tick before the switch
        self.starved_since: float | None = None
        self.stopped = False  # safe stop done, not yet resumed


class Runner:
    def __init__(
        self,
        robot: Robot,
        policy: Policy,
        config: RunnerConfig | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        recorder: RunnerMetrics | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.robot, self.policy = robot, policy
        # The robot's optional capabilities, looked up once: a simulation resets to a seed and judges
        # success; a serial arm can stop safely when the watchdog fires.
        self.episodic: EpisodicRobot | None = robot if isinstance(robot, EpisodicRobot) else None
        self.safe_stopper: SafeStopRobot | None = robot if isinstance(robot, SafeStopRobot) else None
        self.config = cfg = RunnerConfig.from_any(config)
        self.clock: Clock = clock or RealClock()
        self.recorder = recorder or RunnerMetrics()
        self.filter = SafetyFilter(None, cfg.max_delta_per_tick)
        self.on_status = on_status
        self.rate = float(cfg.rate_hz or robot.fps)
        self.period = 1.0 / self.rate
        self.guided = cfg.strategy == "rtc" and isinstance(policy, GuidedPolicy)
        self.action_dim = int(robot.action_features[ACTION]["shape"][0])
        self._latencies: deque[float] = deque(maxlen=10)
        self._episode_id = 0
        self._warm = not cfg.warmup
        self._backend: InlineInference | ThreadedInference | None = None
        self._last_status = -math.inf
        self.recorder.info.update(strategy=cfg.strategy, rate_hz=self.rate, realtime=cfg.realtime)
        self.recorder.info.update(extra_latency_ms=cfg.extra_latency_ms, guided=self.guided)

    # ------------------------------------------------------------------ public

    def metrics(self) -> dict[str, Any]:
        """Everything measured so far (all episodes), as written to runner_metrics.json."""
        return self.recorder.summary()

    def write_metrics(self, path: str | Path) -> Path:
        return self.recorder.write(path)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scheduling

    def _backend_for_run(self) -> InlineInference | ThreadedInference:
        if self._backend is None:
            cfg, extra = self.config, self.config.extra_latency_ms / 1000.0
            if cfg.realtime and cfg.inference != "inline":
                self._backend = ThreadedInference(self.policy, self.clock, extra)
            else:
                sync = cfg.strategy == "sync"
                self._backend = InlineInference(
                    self.policy, self.clock, self.period, extra, cfg.measure_compute, sync
                )
        return self._backend

    def delay_ticks(self) -> int:
        """Estimated inference delay d in ticks (≥ 1): the slowest recent latency, rounded up."""
        latency = max(self._latencies, default=self.config.extra_latency_ms / 1000.0)
        return max(1, math.ceil(latency * self.rate - 1e-9))

    def _execution_horizon(self, horizon: int, d: int) -> int:
        s = self.config.execution_horizon or horizon // 2
        return max(1, min(max(s, d), horizon - d))

    def _request(self, ep: _Episode, tick: int, obs: dict[str, np.ndarray]) -> InferenceRequest | None:
        """The inference to start at `tick`, if the strategy wants one now."""
        plan, cfg = ep.plan, self.config
        has_action = plan.action_at(tick) is not None
        request = InferenceRequest(dict(obs), tick, self._episode_id)
        if cfg.strategy == "sync":
            return None if has_action else request
        if cfg.strategy == "ensemble" or not has_action:
            return request
        d = self.delay_ticks()
        current = plan.current
        assert current is not None
        if self.guided:
            horizon = len(current.actions)
            s = self._execution_horizon(horizon, d)
            if tick - current.start < s and plan.remaining(tick) > d:
                return None
            prev = rtc.reindex(current.actions, current.start, tick, horizon)  # [H, A]
            request.guided = GuidedRequest(prev, min(d, horizon - 1), s, cfg.rtc_beta)
            return request
        threshold = cfg.async_threshold or d + 2
        return request if plan.remaining(tick) <= threshold else None

    def _accept(self, ep: _Episode, result: InferenceResult | None, tick: int) -> None:
        if result is None or result.request.episode != self._episode_id:
            return
        self.recorder.latency_s.append(result.latency_s)
        self._latencies.append(result.latency_s)
        self.recorder.last_delay_ticks = self.delay_ticks()
        if result.error is not None or result.chunk is None:
            self.recorder.policy_errors += 1
            return
        chunk = np.asarray(result.chunk, dtype=np.float64)
        if chunk.shape[1] != self.action_dim:
            raise ValueError(
                f"policy returned {chunk.shape[1]}-D actions; the robot takes {self.action_dim}-D"
            )
        ep.superseded = ep.plan.action_at(tick)
        ep.plan.add(chunk, result.request.obs_tick, tick)
        ep.switched = True

    # ------------------------------------------------------------------ one tick

    def _act(self, ep: _Episode, tick: int, now: float) -> np.ndarray | None:
        """Choose, filter and send this tick's action (or hold); returns what was sent."""
        planned = ep.plan.action_at(tick)
        if planned is not None and ep.switched:
            reference = ep.last_planned if ep.last_planned is not None else ep.last_sent
            if reference is not None:
                self.recorder.boundary_jumps.append(float(np.abs(planned - reference).max()))
                # The jump less the motion the old plan itself made here: against the old plan's action
                # for this very tick (or, when the old plan had run out, the jump itself).
                before = ep.superseded if ep.superseded is not None else reference
                self.recorder.discontinuities.append(float(np.abs(planned - before).max()))
        ep.switched = False
        ep.last_planned = planned
        safe = None if planned is None else self.filter.filter(planned, ep.last_sent)
        if safe is None:  # the watchdog: hold the last commanded position
            self.recorder.held_ticks += 1
            self.recorder.interventions[HOLD] += 1
            ep.starved_since = now if ep.starved_since is None else ep.starved_since
            if not ep.stopped and now - ep.starved_since >= self.config.safe_stop_timeout_s:
                ep.stopped = True
                self.recorder.interventions[SAFE_STOP] += 1
                if self.safe_stopper is not None:
                    self.safe_stopper.safe_stop()
            if ep.last_sent is None or (ep.stopped and self.safe_stopper is not None):
                return None  # torque is off (or nothing to hold): command nothing
            safe = ep.last_sent
        else:
            ep.starved_since = None
            if ep.stopped:
                ep.stopped = False
                if self.safe_stopper is not None:
                    self.safe_stopper.resume()
        sent = self.robot.send_action(np.asarray(safe, dtype=np.float32))
        ep.last_sent = np.asarray(sent if sent is not None else safe, dtype=np.float64)
        return ep.last_sent

    # ------------------------------------------------------------------ the episode

    def _warmup(self, obs: dict[str, np.ndarray], task: str) -> None:
        """One untimed call before the first tick: compilation, allocation, a first latency estimate."""
        try:
            start = self.clock.now()
            chunk = call_policy(self.policy, InferenceRequest(dict(obs), 0, -1))
            if self.guided:  # the guided call is the one that will run (and it is the slower)
                d = self.delay_ticks()
                s = self._execution_horizon(len(chunk), d)
                guided = GuidedRequest(
                    np.asarray(chunk, np.float64), min(d, len(chunk) - 1), s, self.config.rtc_beta
                )
                start = self.clock.now()
                call_policy(self.policy, InferenceRequest(dict(obs), 0, -1, guided))
            compute = self.clock.now() - start
        except PolicyUnavailable:
            return
        finally:
            self.policy.reset(task)
        if not (self.config.realtime or self.config.measure_compute):
            compute = 0.0
        self._latencies.append(compute + self.config.extra_latency_ms / 1000.0)
        self._warm = True

    def _first_chunk(self, ep: _Episode, obs: dict[str, np.ndarray]) -> None:
        """The episode's first chunk, before the first tick (the robot is at rest; nothing is missed)."""
        request = InferenceRequest(dict(obs), 0, self._episode_id)
        start = self.clock.now()
        try:
            chunk, error = call_policy(self.policy, request), None
        except PolicyUnavailable as e:
            chunk, error = None, e
        compute = self.clock.now() - start if self.config.realtime or self.config.measure_compute else 0.0
        self._accept(
            ep, InferenceResult(request, chunk, error, compute + self.config.extra_latency_ms / 1e3), 0
        )
        ep.switched = False

    def run_episode(
        self,
        seed: int | None = None,
        max_steps: int | None = None,
        on_step: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> EpisodeResult:
        """Reset to `seed` (robots that can), then tick until the episode ends, `max_steps` ticks, or
        `should_stop()`. Success is LeRobot's rule: `is_success` at any step. `steps` counts ticks
        executed (holds included; deadlines skipped after an overrun are not)."""
        robot, cfg, sim = self.robot, self.config, self.episodic
        obs = sim.reset(seed=seed) if sim is not None else robot.get_observation()
        task = str(sim.task) if sim is not None else ""
        self.filter = SafetyFilter(joint_limits(robot), cfg.max_delta_per_tick)
        self.filter.counts = self.recorder.interventions
        self.policy.reset(task)
        if not self._warm:
            self._warmup(obs, task)
        self._episode_id += 1
        self.recorder.episodes += 1
        plan = ActionPlan(
            "sync" if cfg.strategy == "sync" else cfg.merge if not self.guided else "replace",
            cfg.ensemble_decay if cfg.strategy == "ensemble" else None,
        )
        state = np.asarray(obs.get(STATE, []), dtype=np.float64)
        ep = _Episode(plan, state.copy() if state.shape == (self.action_dim,) else None)
        self._first_chunk(ep, obs)
        backend = self._backend_for_run()
        previous_switch = sys.getswitchinterval()
        if cfg.realtime:
            sys.setswitchinterval(0.0005)  # the control thread gets the GIL back within 0.5 ms
        try:
            return self._loop(ep, backend, obs, seed, task, max_steps, on_step, should_stop)
        finally:
            sys.setswitchinterval(previous_switch)
            backend.drain()

    def _loop(
        self,
        ep: _Episode,
        backend: InlineInference | ThreadedInference,
        obs: dict[str, np.ndarray],
        seed: int | None,
        task: str,
        max_steps: int | None,
        on_step: StepCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> EpisodeResult:
        robot, sim, cfg, m = self.robot, self.episodic, self.config, self.recorder
        success, steps, tick = False, 0, 0
        t0 = self.clock.now()
        previous_start: float | None = None
        while not (sim is not None and sim.episode_done) and (max_steps is None or steps < max_steps):
            if should_stop is not None and should_stop():
                return EpisodeResult(seed, task, success, steps, interrupted=True)
            if cfg.realtime:
                deadline = t0 + tick * self.period
                self.clock.sleep_until(deadline)
                now = self.clock.now()
                if now - deadline >= self.period:  # overran: skip the deadlines that passed
                    skipped = int((now - deadline) // self.period)
                    m.late_ticks += skipped
                    tick += skipped
                    deadline = t0 + tick * self.period
                m.lateness_s.append(now - deadline)
                if previous_start is not None:
                    m.jitter_s.append(abs(now - previous_start - self.period))
                previous_start = now
                obs = robot.get_observation()
            else:
                deadline = now = tick * self.period
            self._accept(ep, backend.poll(tick), tick)
            if not backend.busy:
                request = self._request(ep, tick, obs)
                if request is not None:
                    backend.submit(request)
                    if cfg.strategy == "sync":  # wait, but only within this tick
                        self._accept(ep, backend.wait(tick, deadline + 0.75 * self.period), tick)
            elif cfg.strategy == "sync" and ep.plan.action_at(tick) is None:
                self._accept(ep, backend.wait(tick, deadline + 0.75 * self.period), tick)
            sent = self._act(ep, tick, now)
            m.ticks += 1
            steps += 1
            m.queue_depth.append(ep.plan.remaining(tick))
            if sent is not None and on_step is not None:
                on_step(obs, sent.astype(np.float32))
            if sim is not None:
                success = success or bool(sim.info.get(IS_SUCCESS, False))
                obs = sim.get_observation()
            tick += 1
            self._status(ep.plan.remaining(tick - 1))
        return EpisodeResult(seed, task, success, steps)

    def _status(self, queue: int) -> None:
        if self.on_status is None:
            return
        wall = time.perf_counter()  # display throttle only, never control timing
        if wall - self._last_status >= self.config.status_every_s:
            self._last_status = wall
            self.on_status(self.recorder.status(queue))
