"""Safety filter, watchdog (hold, safe stop, resume) and the metrics file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.runner.fakes import RampPolicy, TickRobot
from vla.runner import FakeClock, Runner, RunnerConfig, SafetyFilter
from vla.runner.safety import joint_limits

KEYS = ["ticks", "missed_ticks", "jitter_p50_ms", "jitter_p99_ms", "jitter_max_ms", "infer_p50_ms"]
KEYS += ["infer_p99_ms", "max_boundary_jump", "safety_interventions"]


def test_filter_rejects_nan_and_clamps_to_limits_and_rate() -> None:
    f = SafetyFilter((np.array([-10.0, 0.0]), np.array([10.0, 100.0])), max_delta=2.0)
    assert f.filter(np.array([np.nan, 1.0]), None) is None
    assert f.filter(np.array([1.0, np.inf]), None) is None
    np.testing.assert_allclose(f.filter(np.array([50.0, 50.0]), None), [10.0, 50.0])  # type: ignore[arg-type]
    np.testing.assert_allclose(f.filter(np.array([5.0, 60.0]), np.array([0.0, 59.0])), [2.0, 60.0])  # type: ignore[arg-type]
    np.testing.assert_allclose(f.filter(np.array([1.0, 1.0]), np.array([0.0, 0.5])), [1.0, 1.0])  # type: ignore[arg-type]
    assert dict(f.counts) == {
        "nan_rejected": 2,
        "limit_clamped": 1,
        "rate_clamped": 1,
        "watchdog_hold": 0,
        "safe_stop": 0,
    }
    assert f.total == 4


def test_joint_limits_come_from_the_robot() -> None:
    robot = TickRobot(joint_limits={"a.pos": (-1.0, 1.0)})
    lo, hi = joint_limits(robot)  # type: ignore[misc]
    np.testing.assert_allclose(lo, [-1.0, -np.inf]) and np.testing.assert_allclose(hi, [1.0, np.inf])
    assert joint_limits(TickRobot()) is None


def test_runner_clamps_what_the_policy_asks() -> None:
    robot = TickRobot(limit=30, joint_limits={"a.pos": (0.0, 12.0), "b.pos": (0.0, 100.0)})
    cfg = RunnerConfig(strategy="sync", realtime=False, max_delta_per_tick=0.5)
    with Runner(robot, RampPolicy(horizon=30, offset=lambda c: 3.0), cfg, FakeClock()) as runner:
        runner.run_episode(seed=0)
        m = runner.metrics()
    a = np.array([s[0] for s in robot.sent])
    assert a.max() <= 12.0 and np.abs(np.diff(a)).max() <= 0.5 + 1e-9
    assert a[0] == 0.5  # from the start state 0, at most 0.5 per tick
    assert m["interventions"]["rate_clamped"] > 0 and m["safety_interventions"] > 0


def test_watchdog_holds_then_stops_safely_then_resumes() -> None:
    """Calls 3..40 fail (a server down): hold, safe stop after 0.2 s = 10 ticks, resume when it is back."""
    robot = TickRobot(fps=50, limit=120, with_safe_stop=True)
    policy = RampPolicy(horizon=10, down=lambda call: 3 <= call <= 40)
    cfg = RunnerConfig(strategy="async", realtime=False, measure_compute=False, safe_stop_timeout_s=0.2)
    with Runner(robot, policy, cfg, FakeClock()) as runner:
        result = runner.run_episode(seed=0)
        m = runner.metrics()
    assert [e[0] for e in robot.events] == ["safe_stop", "resume"]
    stop_at, resume_at = robot.events[0][1], robot.events[1][1]
    assert m["policy_errors"] == 38 and m["interventions"]["safe_stop"] == 1
    # While stopped (torque off) nothing is sent; before the stop the last position is held.
    held = [s[0] for s in robot.sent[:stop_at]]
    assert held[-1] == held[-5] and m["held_ticks"] > 10
    assert robot.sent[resume_at][0] > held[-1]  # moving again after the resume
    assert result.steps == m["ticks"]


def test_metrics_are_consistent_and_written(tmp_path: Path) -> None:
    robot = TickRobot(limit=50)
    cfg = RunnerConfig(strategy="async", realtime=False, measure_compute=False, extra_latency_ms=40)
    with Runner(robot, RampPolicy(horizon=10), cfg, FakeClock()) as runner:
        runner.run_episode(seed=0)
        runner.run_episode(seed=1)
        path = runner.write_metrics(tmp_path / "runner_metrics.json")
    on_disk = json.loads(path.read_text())
    assert all(k in on_disk for k in KEYS)
    assert on_disk["ticks"] == 100 and on_disk["episodes"] == 2
    assert on_disk["missed_ticks"] == on_disk["late_ticks"] + on_disk["held_ticks"]
    assert on_disk["safety_interventions"] == sum(on_disk["interventions"].values())
    assert on_disk["infer_p50_ms"] == pytest.approx(40.0) and on_disk["inference_delay_ticks"] == 2
    assert on_disk["strategy"] == "async" and on_disk["rate_hz"] == 50.0


def test_bad_runner_config_names_the_field() -> None:
    from vla.runner import RunnerConfigError

    with pytest.raises(RunnerConfigError, match=r"runner\.strategy='fast'"):
        RunnerConfig(strategy="fast").validate()
    with pytest.raises(RunnerConfigError, match=r"runner\.rate_hz"):
        RunnerConfig.from_any({"rate_hz": -1})
    with pytest.raises(RunnerConfigError, match=r"runner\.bogus"):
        RunnerConfig.from_any({"bogus": 1})
