"""Where chunks are computed: a worker thread (real time: the control loop never waits on it) or inline
(simulated time: the call blocks, and its latency decides the tick at which the chunk becomes usable).

Both measure latency on the runner's clock and add the injected `extra_latency_ms`. A
`PolicyUnavailable` from the policy comes back as a result with `error` set; any other exception is a
bug and is raised again in the control loop.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from vla.policy import GuidedPolicy, Policy
from vla.runner.clock import Clock
from vla.runner.errors import PolicyUnavailable


@dataclass(frozen=True)
class GuidedRequest:
    """Real-time chunking's side of a request: the previous chunk re-indexed to the observation's tick
    (rows [0, inference_delay) frozen, the last `execution_horizon` rows free) and `beta`, the clip on
    the guidance scale (`runner.rtc_beta`). It travels as it is to a local policy, a child process or a
    `vla-serve` server."""

    prev_chunk: np.ndarray  # [H, A]
    inference_delay: int
    execution_horizon: int
    beta: float


@dataclass
class InferenceRequest:
    observation: dict[str, np.ndarray]
    obs_tick: int  # row 0 of the answer is the action for this tick
    episode: int
    guided: GuidedRequest | None = None


@dataclass
class InferenceResult:
    request: InferenceRequest
    chunk: np.ndarray | None  # [H, A]; None with `error`
    error: PolicyUnavailable | None
    latency_s: float
    ready_tick: int | None = None  # inline: the tick it becomes usable


def call_policy(policy: Policy, request: InferenceRequest) -> np.ndarray:
    """One chunk [H, A] from the policy (guided when the request carries the RTC prefix; the runner
    makes guided requests only of a `GuidedPolicy`)."""
    g = request.guided
    if g is not None:
        if not isinstance(policy, GuidedPolicy):
            raise TypeError(f"a guided request for {type(policy).__name__}, which is not a GuidedPolicy")
        chunk = policy.select_chunk_guided(
            request.observation, g.prev_chunk, g.inference_delay, g.execution_horizon, beta=g.beta
        )
    else:
        chunk = policy.select_chunk(request.observation)
    chunk = np.asarray(chunk)
    if chunk.ndim != 2 or len(chunk) == 0:
        raise ValueError(f"policy returned a chunk of shape {chunk.shape}; expected (horizon, action_dim)")
    return chunk


class InlineInference:
    """Simulated time: compute now; usable `ceil(latency / period)` ticks later (at least 1), or under
    `sync` after `floor(latency / period)` ticks (0: the same tick, as a plain synchronous loop)."""

    def __init__(
        self, policy: Policy, clock: Clock, period: float, extra_s: float, measure_compute: bool, sync: bool
    ) -> None:
        self.policy, self.clock, self.period = policy, clock, period
        self.extra_s, self.measure_compute, self.sync = extra_s, measure_compute, sync
        self._pending: InferenceResult | None = None

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def delay_ticks(self, latency_s: float) -> int:
        ticks = latency_s / self.period
        if self.sync:
            return math.floor(ticks + 1e-9)
        return max(1, math.ceil(ticks - 1e-9))

    def submit(self, request: InferenceRequest) -> None:
        assert self._pending is None, "one inference at a time"
        start = self.clock.now()
        chunk, error = None, None
        try:
            chunk = call_policy(self.policy, request)
        except PolicyUnavailable as e:
            error = e
        compute = self.clock.now() - start if self.measure_compute else 0.0
        latency = compute + self.extra_s
        ready = request.obs_tick + self.delay_ticks(latency)
        self._pending = InferenceResult(request, chunk, error, latency, ready)

    def poll(self, tick: int) -> InferenceResult | None:
        pending = self._pending
        if pending is None or pending.ready_tick is None or pending.ready_tick > tick:
            return None
        self._pending = None
        return pending

    def wait(self, tick: int, until: float) -> InferenceResult | None:
        return self.poll(tick)

    def drain(self) -> None:
        self._pending = None

    def close(self) -> None:
        self._pending = None


class ThreadedInference:
    """Real time: one worker thread computes while the control loop keeps ticking."""

    def __init__(self, policy: Policy, clock: Clock, extra_s: float) -> None:
        self.policy, self.clock, self.extra_s = policy, clock, extra_s
        self._cv = threading.Condition()
        self._request: InferenceRequest | None = None
        self._result: InferenceResult | None = None
        self._failure: BaseException | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="vla-inference", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._busy

    def submit(self, request: InferenceRequest) -> None:
        with self._cv:
            assert not self._busy, "one inference at a time"
            self._request, self._busy = request, True
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._request is not None or self._closed)
                if self._closed:
                    return
                request, self._request = self._request, None
            assert request is not None
            start = self.clock.now()
            chunk, error, failure = None, None, None
            try:
                chunk = call_policy(self.policy, request)
            except PolicyUnavailable as e:
                error = e
            except BaseException as e:  # a bug: handed to the control loop
                failure = e
            if self.extra_s > 0:
                self.clock.sleep_until(self.clock.now() + self.extra_s)
            result = InferenceResult(request, chunk, error, self.clock.now() - start)
            with self._cv:
                self._result, self._failure = result, failure
                self._cv.notify_all()

    def _take(self) -> InferenceResult | None:
        if self._failure is not None:
            failure, self._failure, self._busy, self._result = self._failure, None, False, None
            raise failure
        result, self._result = self._result, None
        if result is not None:
            self._busy = False
        return result

    def poll(self, tick: int) -> InferenceResult | None:
        with self._cv:
            return self._take()

    def wait(self, tick: int, until: float) -> InferenceResult | None:
        """Block until a result or until clock time `until` (real seconds on a RealClock)."""
        timeout = max(0.0, until - self.clock.now())
        with self._cv:
            self._cv.wait_for(lambda: self._result is not None or self._failure is not None, timeout)
            return self._take()

    def drain(self) -> None:
        """Wait for the inference in flight (the policy is about to be reset) and drop its result."""
        with self._cv:
            self._cv.wait_for(lambda: not self._busy or self._result is not None or self._failure is not None)
            self._result, self._failure, self._busy = None, None, False

    def close(self) -> None:
        self.drain()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=5)
