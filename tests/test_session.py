"""The session loop of vla-teleop / vla-deploy in-process on the simulation: episodes recorded through the
runner, the episode keys (n: keep and go on, x: record again, q: stop), and display without a screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from vla.apps.deploy import deploy
from vla.errors import VLAError
from vla.session import live


def _cfg(tmp_path: Path, *overrides: str):  # type: ignore[no-untyped-def]
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(
            "deploy",
            overrides=[
                "robot=sim",
                "robot.task=touch",
                "robot.image_size=64",
                "policy=scripted",
                "runner.realtime=false",
                "progress=false",
                f"output_dir={tmp_path / 'out'}",
                f"dataset.root={tmp_path / 'ds'}",
                "dataset.repo_id=local/session",
                *overrides,
            ],
        )


class ScriptedKeys:
    """Pressed keys, one batch per call after `wait` silent calls each."""

    def __init__(self, presses: list[str], wait: int = 10) -> None:
        self.presses, self.wait, self.calls = list(presses), wait, 0

    def __call__(self) -> list[str]:
        self.calls += 1
        if self.presses and self.calls % self.wait == 0:
            return [self.presses.pop(0)]
        return []

    def close(self) -> None:
        pass


def test_keys_rerecord_keep_and_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = ScriptedKeys(["x", "n", "q"])
    monkeypatch.setattr(live, "TerminalKeys", lambda: keys)
    result = deploy(_cfg(tmp_path, "episodes=5", "episode_time_s=3"))
    # x: episode 0 dropped and recorded again; n: episode 0 ended early and kept; q: episode 1 kept, stop
    assert [e["episode"] for e in result.episodes] == [0, 1]
    assert [e["steps"] for e in result.episodes] == [9, 9]  # the key is read before the 10th tick
    assert result.dataset is not None and result.dataset["episodes_saved"] == 2
    assert result.dataset["frames_saved"] == 18 and not result.interrupted
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    assert LeRobotDataset("local/session", root=tmp_path / "ds").meta.total_episodes == 2


def test_display_without_a_screen_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(VLAError, match="display=true needs a graphical display"):
        deploy(_cfg(tmp_path, "display=true"))
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())


class CountingSink:
    """Records what the driver tells a sink."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.steps = 0

    def begin(self, episode) -> None:  # type: ignore[no-untyped-def]
        self.events.append(f"begin {episode.index}")

    def step(self, observation, action) -> None:  # type: ignore[no-untyped-def]
        self.steps += 1

    def end(self, episode, result) -> dict:  # type: ignore[no-untyped-def]
        self.events.append(f"end {episode.index}")
        return {"counted": self.steps}

    def drop(self, episode) -> None:  # type: ignore[no-untyped-def]
        self.events.append(f"drop {episode.index}")

    def close(self) -> None:
        self.events.append("close")


def test_driver_drops_the_episode_under_way_on_a_second_ctrl_c() -> None:
    """A KeyboardInterrupt (the second Ctrl-C) mid-episode: finished episodes are reported, every sink drops
    the one under way and is closed, the robot is disconnected."""
    from tests.fakes import FakeTabletop, GoalPolicy
    from vla.runner import RunnerConfig
    from vla.session.driver import EpisodePlan, run_episodes
    from vla.stop import GracefulStop

    robot = FakeTabletop(fail_seeds=[2], max_episode_steps=10)
    policy = GoalPolicy(robot)

    class InterruptedSink(CountingSink):
        def step(self, observation, action) -> None:  # type: ignore[no-untyped-def]
            super().step(observation, action)
            if robot._seed == 2 and robot._steps == 5:  # halfway through the third episode
                raise KeyboardInterrupt

    sink = InterruptedSink()
    outcome = run_episodes(
        robot,
        policy,
        RunnerConfig(realtime=False, measure_compute=False),
        EpisodePlan(5, seed=0),
        [sink],
        stop=GracefulStop(),
    )
    assert outcome.interrupted and [e["seed"] for e in outcome.episodes] == [0, 1]
    assert all(e["success"] and e["counted"] > 0 for e in outcome.episodes)
    assert sink.events == ["begin 0", "end 0", "begin 1", "end 1", "begin 2", "drop 2", "close"]
    assert not robot.is_connected
