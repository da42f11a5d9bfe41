"""Ticking on absolute deadlines: no drift, overruns skip deadlines, the real clock hits its marks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.runner.fakes import RampPolicy, TickRobot
from vla.runner import FakeClock, RealClock, Runner, RunnerConfig


def test_ticks_on_absolute_deadlines_without_drift() -> None:
    clock = FakeClock(start=100.0)
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.0, 0.019, size=500)  # each step takes 0-19 ms of a 20 ms period
    robot = TickRobot(fps=50, limit=500, clock=clock, step_s=lambda i: durations[i])
    with Runner(
        robot, RampPolicy(horizon=1000), RunnerConfig(strategy="sync", warmup=False), clock
    ) as runner:
        runner.run_episode(seed=0)
        m = runner.metrics()
    start = robot.sent_at[0]
    # Every tick starts exactly on its deadline: t0 + k * period, however long the steps before took.
    np.testing.assert_allclose(np.array(robot.sent_at) - start, np.arange(500) * 0.02, atol=1e-9)
    assert m["ticks"] == 500 and m["missed_ticks"] == 0 and m["jitter_max_ms"] == pytest.approx(0, abs=1e-6)


def test_an_overrun_skips_the_deadlines_it_missed_and_returns_to_the_grid() -> None:
    clock = FakeClock()
    robot = TickRobot(fps=50, limit=20, clock=clock, step_s=lambda i: 0.045 if i == 5 else 0.001)
    with Runner(
        robot, RampPolicy(horizon=1000), RunnerConfig(strategy="sync", warmup=False), clock
    ) as runner:
        runner.run_episode(seed=0)
        m = runner.metrics()
    rel = np.array(robot.sent_at) - robot.sent_at[0]
    # Step 5 ran 0.100-0.145 s: tick 6 (0.12) was missed; tick 7 (0.14) runs late, at 0.145.
    assert rel[6] == pytest.approx(0.145)
    np.testing.assert_allclose(rel[7:], np.arange(8, 21) * 0.02)  # back on the grid
    assert m["late_ticks"] == 1 and m["missed_ticks"] == 1 and m["held_ticks"] == 0
    # The action for the skipped tick is dropped, not replayed late: actions stay aligned with time.
    assert robot.sent[6][0] == 7.0 and m["lateness_max_ms"] == pytest.approx(5.0)


def test_real_clock_async_keeps_up_while_sync_stalls() -> None:
    """Short real-time run (0.8 s each): a 50 ms policy at 50 Hz with 8-action chunks."""
    results = {}
    for strategy in ("sync", "async"):
        robot = TickRobot(fps=50, limit=40)
        policy = RampPolicy(horizon=8, latency_s=0.05)
        with Runner(robot, policy, RunnerConfig(strategy=strategy), RealClock()) as runner:
            runner.run_episode(seed=0)
            results[strategy] = runner.metrics()
    assert results["async"]["held_ticks"] == 0  # inference never left the robot without an action
    assert results["sync"]["held_ticks"] >= 4 * 2  # each chunk after the first waits ~2-3 ticks
    assert results["async"]["infer_p50_ms"] >= 50


def test_fake_clock_only_moves_when_told() -> None:
    clock = FakeClock(1.0)
    clock.sleep_until(0.5)
    assert clock.now() == 1.0
    clock.sleep_until(2.0)
    clock.advance(0.25)
    assert clock.now() == 2.25
    real = RealClock()
    t = real.now() + 0.01
    real.sleep_until(t)
    assert 0 <= real.now() - t < 0.05  # never early; late only by what the scheduler adds (loaded CI: ~10 ms)
