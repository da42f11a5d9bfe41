"""vla-rollout through the runner, end to end on the real simulation with the scripted expert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from vla.apps.rollout import rollout


def _rollout(tmp_path: Path, *overrides: str) -> dict:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "rollout",
            overrides=[
                f"output_dir={tmp_path}",
                "policy=scripted",
                "progress=false",
                "videos=0",
                "robot.task=touch",
                "robot.image_size=32",
                *overrides,
            ],
        )
    return rollout(cfg)


def test_sync_scripted_is_the_plain_loop(tmp_path: Path) -> None:
    from envs.sim_robot import SimRobot
    from policies.scripted import ScriptedExpert
    from tests.fakes import run_episode

    # measure_compute=false: a loaded machine's slow call must not cost the sync loop a tick here
    report = _rollout(tmp_path, "episodes=2", "runner.measure_compute=false")
    robot = SimRobot(task="touch", image_size=32)
    robot.connect()
    try:
        plain = [run_episode(robot, ScriptedExpert(robot), 100_000 + i) for i in range(2)]
    finally:
        robot.disconnect()
    assert [(e["success"], e["steps"]) for e in report["per_episode"]] == [
        (r.success, r.steps) for r in plain
    ]
    metrics = json.loads((tmp_path / "runner_metrics.json").read_text())
    assert metrics["strategy"] == "sync" and metrics["missed_ticks"] == 0 and metrics["episodes"] == 2
    assert report["runner"]["ticks"] == metrics["ticks"] == sum(e["steps"] for e in report["per_episode"])
    assert report["runner"]["config"]["realtime"] is False


@pytest.mark.parametrize("strategy", ["async", "rtc", "ensemble"])
def test_other_strategies_run_with_injected_latency(tmp_path: Path, strategy: str) -> None:
    report = _rollout(
        tmp_path,
        "episodes=1",
        "max_steps=20",
        f"runner.strategy={strategy}",
        "runner.extra_latency_ms=100",
        "runner.rate_hz=30",
        "runner.max_delta_per_tick=5",
    )
    m = json.loads((tmp_path / "runner_metrics.json").read_text())
    assert m["strategy"] == strategy and m["ticks"] == 20 and m["inference_delay_ticks"] == 4
    # a chunk of one action cannot cover a 100 ms inference: the watchdog holds in between
    assert m["held_ticks"] > 0 and np.isfinite(m["max_boundary_jump"])
    assert report["per_episode"][0]["steps"] == 20


def test_bad_runner_override_is_a_one_line_error(tmp_path: Path) -> None:
    from vla.errors import VLAError

    with pytest.raises(VLAError, match=r"runner\.strategy='fast'"):
        _rollout(tmp_path, "runner.strategy=fast")


def test_realtime_checkpoint_policy_runs_in_a_child_process(tmp_path: Path) -> None:
    from tests.model.helpers import small_config, toy_stats
    from vla.model.vla import VLAModel

    cfg = small_config("cameras=[front,wrist]", "image_size=[32,32]")
    ckpt = VLAModel(cfg, stats=toy_stats(6, 6), tasks=["touch the red cube"]).save_pretrained(tmp_path / "m")
    report = _rollout(
        tmp_path / "out",
        "policy=vla",
        f"policy.checkpoint={ckpt}",
        "policy.device=cpu",
        "episodes=1",
        "max_steps=30",
        "runner.realtime=true",
        "runner.strategy=async",
    )
    m = json.loads((tmp_path / "out" / "runner_metrics.json").read_text())
    assert m["inference"] == "process" and report["runner"]["inference"] == "process"  # auto: realtime
    assert m["ticks"] == 30 and m["infer_count"] >= 1 and m["policy_errors"] == 0
