"""Inference scheduling in simulated time: sync stalls, async and rtc keep up; merges and ensembling."""

from __future__ import annotations

import numpy as np
import pytest

from tests.runner.fakes import GuidedRampPolicy, RampPolicy, TickRobot
from vla.runner import FakeClock, Runner, RunnerConfig
from vla.runner.plan import ActionPlan, ensemble_weights


def _run(strategy: str, policy: RampPolicy, ticks: int = 200, **cfg: object) -> tuple[TickRobot, dict]:
    robot = TickRobot(fps=50, limit=ticks)
    config = RunnerConfig(strategy=strategy, realtime=False, measure_compute=False, **cfg)  # type: ignore[arg-type]
    with Runner(robot, policy, config, FakeClock()) as runner:
        runner.run_episode(seed=0)
        return robot, runner.metrics()


@pytest.mark.parametrize("strategy", ["async", "rtc", "ensemble"])
def test_100ms_inference_stalls_sync_but_not_the_others(strategy: str) -> None:
    _, sync = _run("sync", RampPolicy(horizon=20), extra_latency_ms=100)
    robot, other = _run(strategy, GuidedRampPolicy(horizon=20), extra_latency_ms=100)
    # sync: every chunk after the first is waited for, 5 ticks of 20 ms each
    assert sync["held_ticks"] == sync["missed_ticks"] and sync["held_ticks"] >= 5 * (200 // 25 - 1)
    assert other["missed_ticks"] == 0 and other["inference_delay_ticks"] == 5
    # every tick ran the action planned for it: the ramp, without a stall
    np.testing.assert_allclose([a[0] for a in robot.sent], np.arange(200))
    assert other["max_boundary_jump"] == pytest.approx(1.0)  # the ramp's own step
    assert other["max_boundary_discontinuity"] == pytest.approx(0.0)  # the new chunk continues the old


def test_sync_runs_the_whole_chunk_after_waiting() -> None:
    robot, m = _run("sync", RampPolicy(horizon=10), ticks=30, extra_latency_ms=100)
    sent = [a[0] for a in robot.sent]
    # chunk 1 (from tick 0): ticks 0-9; then 5 holds at 9; chunk 2 (from tick 10's obs) starts at tick 15
    assert sent[:10] == list(range(10)) and sent[10:15] == [9.0] * 5 and sent[15:25] == list(range(10, 20))
    assert m["held_ticks"] == 10 and m["interventions"]["watchdog_hold"] == 10


def test_async_threshold_and_replace() -> None:
    offset = lambda call: 0.0 if call % 2 else 10.0  # noqa: E731 - every other chunk is 10 off
    robot, m = _run(
        "async",
        RampPolicy(horizon=20, offset=offset),
        ticks=60,
        extra_latency_ms=60,
        async_threshold=6,
        warmup=False,
    )
    sent = np.array([a[0] for a in robot.sent])
    # launch at tick 13 (6 left after it), ready 3 ticks later at 16: rows from 16 on are the new chunk
    assert list(sent[:16]) == list(range(16)) and sent[16] == 26.0
    assert m["missed_ticks"] == 0 and m["max_boundary_jump"] == pytest.approx(11.0)
    # the old chunk had 16 for tick 16; the new one sends 26: 10 of the 11 is the switch
    assert m["max_boundary_discontinuity"] == pytest.approx(10.0)


def test_average_merge_cross_fades_the_overlap() -> None:
    plan = ActionPlan("average")
    plan.add(np.zeros((10, 1)), obs_tick=0, arrive_tick=0)
    plan.add(np.full((10, 1), 4.0), obs_tick=5, arrive_tick=7)  # overlap: ticks 7, 8, 9
    got = [plan.action_at(t)[0] for t in range(7, 15)]  # type: ignore[index]
    assert got == pytest.approx([1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0])  # 1/4, 2/4, 3/4 of the way
    replace = ActionPlan("replace")
    replace.add(np.zeros((10, 1)), 0, 0)
    replace.add(np.full((10, 1), 4.0), 5, 7)
    assert [replace.action_at(t)[0] for t in (6, 7, 14)] == [4.0, 4.0, 4.0]  # type: ignore[index]
    assert replace.action_at(15) is None and replace.remaining(7) == 7


def test_act_temporal_ensembling_weights_the_oldest_most() -> None:
    m = 0.5
    plan = ActionPlan(ensemble_decay=m)
    for k, value in enumerate((0.0, 10.0, 20.0)):
        plan.add(np.full((6, 2), value), obs_tick=k, arrive_tick=k)
    w = np.exp(-m * np.arange(3))
    expected = (w * [0.0, 10.0, 20.0]).sum() / w.sum()
    np.testing.assert_allclose(plan.action_at(3), [expected, expected])  # type: ignore[arg-type]
    np.testing.assert_allclose(ensemble_weights(3, m), w / w.sum())
    np.testing.assert_allclose(plan.action_at(7), [20.0, 20.0])  # type: ignore[arg-type]  # only the newest covers tick 7
    plan.add(np.full((6, 2), 30.0), obs_tick=7, arrive_tick=7)
    assert len(plan.chunks) == 2  # chunks that ended are dropped


def test_rtc_asks_for_the_frozen_prefix_and_falls_back_without_the_method() -> None:
    policy = GuidedRampPolicy(horizon=20)
    _, m = _run("rtc", policy, ticks=80, extra_latency_ms=100, execution_horizon=8, warmup=False)
    assert m["guided"] and m["missed_ticks"] == 0
    prev, d, s = policy.guided_calls[0]
    assert (d, s) == (5, 8) and prev.shape == (20, 2)
    assert set(policy.betas) == {RunnerConfig().rtc_beta}  # runner.rtc_beta travels with every request
    beta_policy = GuidedRampPolicy(horizon=20)
    _run("rtc", beta_policy, ticks=80, extra_latency_ms=100, execution_horizon=8, rtc_beta=0.5)
    assert beta_policy.betas and set(beta_policy.betas) == {0.5}
    # row 0 is the action executed at the new observation's tick (8); past the old chunk: its last row
    np.testing.assert_allclose(prev[:, 0], [*range(8, 20), *[19] * 8])
    assert policy.obs_ticks[1] == 8  # inference started s = 8 ticks into the chunk
    plain = RampPolicy(horizon=20)
    _, fallback = _run("rtc", plain, ticks=80, extra_latency_ms=100)
    assert not fallback["guided"] and fallback["missed_ticks"] == 0
