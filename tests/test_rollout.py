"""vla-rollout in process: the real simulation with the scripted expert, and a fake checkpointed policy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import av
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from tests.fakes import FakeTabletop
from vla.apps.common import GracefulStop
from vla.apps.rollout import checkpoint_step, rollout
from vla.errors import VLAError
from vla.metrics import wilson_interval

FAKE = ["robot._target_=tests.fakes.FakeTabletop", "robot.max_episode_steps=10", "robot.image_size=16"]
CKPT_POLICY = ["policy._target_=tests.test_rollout.CheckpointPolicy", "+policy.checkpoint=null"]


class CheckpointPolicy:
    """A fake trained policy: its checkpoint dir's `quality.json` says on how many of every 4 seeds it
    succeeds (seed % 4 < wins_per_4); otherwise it holds still and times out."""

    def __init__(self, robot: FakeTabletop, checkpoint: str | None = None) -> None:
        if checkpoint is None:
            raise VLAError("policy.checkpoint is required")
        self.robot = robot
        self.wins_per_4 = json.loads((Path(checkpoint) / "quality.json").read_text())["wins_per_4"]

    def reset(self, task: str | None = None) -> None:
        pass

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        assert self.robot._seed is not None
        good = self.robot._seed % 4 < self.wins_per_4
        target = self.robot.goal() if good else observation["observation.state"]
        return target[None]  # [1, 6]


def _cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(
            "rollout",
            overrides=[
                f"output_dir={tmp_path / 'out'}",
                "policy=scripted",
                "progress=false",
                "videos=0",
                *overrides,
            ],
        )


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_defaults_hold_out_seeds_and_film_a_few() -> None:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("rollout")
    assert cfg.episodes == 50 and cfg.seed == 100_000 and cfg.videos == 4 and cfg.tasks is None
    assert cfg.robot.task == "pick" and cfg.policy._target_ == "policies.vla.VLAPolicy"


def test_scripted_touch_report_and_videos(tmp_path: Path) -> None:
    report = rollout(_cfg(tmp_path, "robot.task=touch", "episodes=3", "videos=2", "robot.image_size=96"))
    out = tmp_path / "out"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["per_episode"] == report["per_episode"] and not on_disk["interrupted"]
    eps = on_disk["per_episode"]
    assert [e["seed"] for e in eps] == [100_000, 100_001, 100_002]
    assert all(e["task"] == "touch" and e["instruction"].startswith("touch the ") for e in eps)
    wins = sum(e["success"] for e in eps)
    assert wins == 3  # the expert does not miss touch on these seeds (bench: 500/500 on held-out seeds)
    assert on_disk["episodes"] == 3 and on_disk["success_rate"] == wins / 3
    assert on_disk["success_ci95"] == pytest.approx(list(wilson_interval(wins, 3)))
    touch = on_disk["per_task"]["touch"]
    assert touch["lengths"] == [e["steps"] for e in eps]
    assert touch["mean_length"] == pytest.approx(np.mean(touch["lengths"]))
    assert on_disk["policy"]["_target_"] == "policies.scripted.scripted_policy"
    assert on_disk["robot"]["image_size"] == 96 and on_disk["seconds"] > 0
    # Grounding: the expert goes to the named cube, so it is the first one touched in every episode.
    assert all(e["first_touched"] == e["target"] and e["named_first"] for e in eps)
    assert all(e["instruction"] == f"touch the {e['target']} cube" for e in eps)
    assert on_disk["named_first_share"] == touch["named_first_share"] == 1.0 and touch["touched_share"] == 1.0
    # Videos of the first two episodes only, named by outcome, front | wrist at 96 px, one frame per step.
    assert [e["video"] for e in eps] == ["videos/touch_ep0_success.mp4", "videos/touch_ep1_success.mp4", None]
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "touch_ep0_success.mp4",
        "touch_ep1_success.mp4",
    ]
    for e in eps[:2]:
        frames = _frames(out / e["video"])
        assert len(frames) == e["steps"] and frames[0].shape == (96, 192, 3)
        assert frames[0].std() > 5  # a rendered scene, not a blank frame
    with av.open(str(out / eps[0]["video"])) as container:
        assert container.streams.video[0].average_rate == 30


def test_named_first_share_counts_the_first_cube_touched(tmp_path: Path) -> None:
    """A policy that always goes for the red cube: named-first on the episodes that name red, not on the
    others, and the share is over all episodes."""
    from vla.apps.rollout import summarize

    eps = [
        {"success": t == "red", "steps": 5, "target": t, "first_touched": "red", "named_first": t == "red"}
        for t in ("red", "green", "blue", "red")
    ]
    eps.append({"success": False, "steps": 5, "target": "blue", "first_touched": None, "named_first": False})
    s = summarize(eps)
    assert s["named_first_share"] == pytest.approx(2 / 5) and s["touched_share"] == pytest.approx(4 / 5)
    assert s["named_first_ci95"] == pytest.approx(list(wilson_interval(2, 5)))
    assert "named_first_share" not in summarize([{"success": True, "steps": 3}])  # Meta-World, arms


def test_several_tasks_are_reported_apart(tmp_path: Path) -> None:
    report = rollout(_cfg(tmp_path, "tasks=[touch,pick]", "episodes=2", "robot.image_size=32"))
    assert report["tasks"] == ["touch", "pick"] and report["episodes"] == 4
    assert [e["task"] for e in report["per_episode"]] == ["touch", "touch", "pick", "pick"]
    # Same held-out seeds for every task, so tasks are compared on the same draws.
    assert [e["seed"] for e in report["per_episode"]] == [100_000, 100_001] * 2
    for task in ("touch", "pick"):
        mine = [e for e in report["per_episode"] if e["task"] == task]
        stats = report["per_task"][task]
        assert stats["episodes"] == 2 and stats["successes"] == sum(e["success"] for e in mine)
        assert all(e["instruction"].startswith({"touch": "touch", "pick": "pick up"}[task]) for e in mine)
    # pick takes longer than touch (lift after the grasp)
    assert report["per_task"]["pick"]["mean_length"] > report["per_task"]["touch"]["mean_length"]
    assert report["successes"] == sum(s["successes"] for s in report["per_task"].values())
    assert "per_checkpoint" not in report and report["videos"] == []


def _checkpoint(root: Path, name: str, wins_per_4: int, state_step: int | None = None) -> str:
    path = root / name
    path.mkdir(parents=True)
    (path / "quality.json").write_text(json.dumps({"wins_per_4": wins_per_4}))
    if state_step is not None:
        (path / "train_state.json").write_text(json.dumps({"step": state_step}))
    return str(path)


def test_checkpoints_are_ranked_by_step_and_plotted(tmp_path: Path) -> None:
    ckpts = [
        _checkpoint(tmp_path, "step_300", 3),
        _checkpoint(tmp_path, "unnamed", 0),
        _checkpoint(tmp_path, "step_100", 1),
        _checkpoint(tmp_path, "latest", 2, state_step=200),  # the step from train_state.json
    ]
    cfg = _cfg(tmp_path, *FAKE, *CKPT_POLICY, "episodes=4", "videos=1", f"checkpoints=[{','.join(ckpts)}]")
    report = rollout(cfg)
    rows = report["per_checkpoint"]
    assert [r["step"] for r in rows] == [100, 200, 300, None]
    assert [Path(r["checkpoint"]).name for r in rows] == ["step_100", "latest", "step_300", "unnamed"]
    assert [r["successes"] for r in rows] == [1, 2, 3, 0]
    assert [r["success_rate"] for r in rows] == [0.25, 0.5, 0.75, 0.0]
    assert rows[0]["success_ci95"] == pytest.approx(list(wilson_interval(1, 4)))
    assert rows[2]["per_task"]["pick"]["successes"] == 3
    assert report["episodes"] == 16 and report["successes"] == 6  # pooled over checkpoints
    assert {e["checkpoint"] for e in report["per_episode"]} == set(ckpts)
    # One film per checkpoint, kept apart; the fake's failures run to the step limit.
    assert len(report["videos"]) == 4 and len(set(report["videos"])) == 4
    svg = (tmp_path / "out" / report["plot"]).read_text()
    assert ElementTree.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"  # well-formed XML
    assert svg.count("<circle") == 4 and "checkpoint (step unknown)" in svg  # one step is unknown: by rank
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()  # type: ignore[union-attr]
    ys = [float(p.split(",")[1]) for p in points]
    assert len(ys) == 4 and ys[0] > ys[1] > ys[2] and ys[3] == max(ys)  # SVG y grows downwards
    assert json.loads((tmp_path / "out/report.json").read_text())["per_checkpoint"] == rows


def test_checkpoint_step_sources(tmp_path: Path) -> None:
    lerobot = tmp_path / "checkpoints" / "005000" / "pretrained_model"
    lerobot.mkdir(parents=True)
    assert checkpoint_step(lerobot) == 5000
    (lerobot / "config.json").write_text(json.dumps({"step": 4999, "type": "vla"}))
    assert checkpoint_step(lerobot) == 4999  # a recorded step wins over the name
    for name, step in [("ckpt-200", 200), ("step1000", 1000), ("run2", None), ("final", None)]:
        assert checkpoint_step(tmp_path / name) == step


def test_checkpoints_need_a_checkpoint_key(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, "step_1", 1)
    with pytest.raises(VLAError, match="`checkpoint` key"):
        rollout(_cfg(tmp_path, "robot.task=touch", f"checkpoints=[{ckpt}]"))
    with pytest.raises(VLAError, match=r"checkpoints\[1\]=.*missing: no such directory"):
        rollout(_cfg(tmp_path, *FAKE, *CKPT_POLICY, f"checkpoints=[{ckpt},{tmp_path / 'missing'}]"))


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("episodes=0", "episodes=0: must be at least 1"),
        ("videos=-1", "videos=-1: must be ≥ 0"),
        ("tasks=[touch,fly]", r"tasks=\[touch,fly\]: robot.task='fly' is not a task"),
        ("tasks=[touch,touch]", "give each task id once"),
        ("max_steps=0", "max_steps=0"),
    ],
)
def test_bad_input_is_a_user_error(tmp_path: Path, override: str, pattern: str) -> None:
    with pytest.raises(VLAError, match=pattern):
        rollout(_cfg(tmp_path, *FAKE, override))
    assert not (tmp_path / "out" / "report.json").exists()


def test_unwritable_output_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(VLAError, match="cannot write there"):
        rollout(_cfg(tmp_path, *FAKE, f"output_dir={tmp_path / 'file' / 'out'}"))


def test_stop_request_writes_a_partial_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C (what GracefulStop records) while episode 2 runs lets it finish; then the report is written."""
    calls: dict[str, Any] = {"n": 0}

    def requested(self: GracefulStop) -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # checked once per task group and once before each episode

    monkeypatch.setattr(GracefulStop, "requested", property(requested))
    report = rollout(
        _cfg(tmp_path, *FAKE, "policy._target_=tests.fakes.GoalPolicy", "episodes=10", "videos=1")
    )
    on_disk = json.loads((tmp_path / "out/report.json").read_text())
    assert on_disk["interrupted"] is True and on_disk["episodes"] == 2 == len(on_disk["per_episode"])
    assert on_disk["per_task"]["pick"]["episodes"] == 2 and report["success_rate"] == 1.0
    assert not list((tmp_path / "out" / "videos").glob(".*"))  # no partial video left behind


def test_video_writer_pads_odd_sizes_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from vla.video import VideoWriter, pick_codec

    assert pick_codec() in ("libx264", "h264", "libopenh264", "mpeg4")
    with VideoWriter(tmp_path / "odd.mp4", fps=15) as video:
        for i in range(5):
            video.add(np.full((9, 13, 3), 40 * i, np.uint8))
    frames = _frames(tmp_path / "odd.mp4")
    assert len(frames) == 5 and frames[0].shape == (10, 14, 3)  # yuv420p needs even sizes
    assert abs(float(frames[4][:9, :13].mean()) - 160) < 8  # the content survives encoding
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "broken.mp4", fps=15) as video:
        video.add(np.zeros((8, 8, 3), np.uint8))
        raise RuntimeError("episode failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]  # no partial file, no final file
