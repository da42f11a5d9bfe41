"""Recording through LeRobot's own API, with fakes at the robot level (no MuJoCo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from vla.apps.record import record
from vla.dataset import DatasetWriterError
from vla.errors import VLAError

FAKE = [
    "robot._target_=tests.fakes.FakeTabletop",
    "robot.image_size=64",
    "policy._target_=tests.fakes.GoalPolicy",
]


def _cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(
            "record", overrides=[*FAKE, f"dataset.root={tmp_path / 'ds'}", "progress=false", *overrides]
        )


def _load(root: Path, repo_id: str = "local/so101_pick"):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root)


def test_records_a_loadable_v3_dataset(tmp_path: Path) -> None:
    report = record(_cfg(tmp_path, "episodes=3"))
    assert report.episodes_run == 3 and report.successes == 3 and report.episodes_kept == 3
    ds = _load(tmp_path / "ds")
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["robot_type"] == "so_follower" and info["fps"] == 30
    assert ds.meta.total_episodes == 3 and len(ds) == report.frames_kept
    assert sorted(ds.meta.video_keys) == ["observation.images.front", "observation.images.wrist"]
    item = ds[0]
    assert item["task"] == "pick the red cube"
    assert tuple(item["observation.images.front"].shape) == (3, 64, 64)
    assert item["action"].shape == (6,) and item["observation.state"].shape == (6,)


def test_keep_success_drops_failed_episodes(tmp_path: Path) -> None:
    # seed 1 never succeeds; episodes use seeds 0, 1, 2
    report = record(_cfg(tmp_path, "episodes=3", "keep=success", "+robot.fail_seeds=[1]"))
    assert report.successes == 2 and report.episodes_kept == 2
    assert [e["kept"] for e in report.per_episode] == [True, False, True]
    assert _load(tmp_path / "ds").meta.total_episodes == 2


def test_resume_appends_with_fresh_seeds(tmp_path: Path) -> None:
    record(_cfg(tmp_path, "episodes=2"))
    report = record(_cfg(tmp_path, "episodes=2", "resume=true"))
    assert [e["seed"] for e in report.per_episode] == [2, 3]
    ds = _load(tmp_path / "ds")
    assert ds.meta.total_episodes == 4 and report.episodes_in_dataset == 4
    assert len(ds) == int(np.sum(ds.meta.episodes["length"]))


def test_existing_dataset_needs_resume(tmp_path: Path) -> None:
    record(_cfg(tmp_path, "episodes=1"))
    with pytest.raises(DatasetWriterError, match="resume=true"):
        record(_cfg(tmp_path, "episodes=1"))


def test_other_schema_is_refused_even_with_resume(tmp_path: Path) -> None:
    record(_cfg(tmp_path, "episodes=1"))
    for extra in ([], ["resume=true"]):
        with pytest.raises(DatasetWriterError, match="another schema"):
            record(_cfg(tmp_path, "episodes=1", "robot.image_size=72", *extra))
    assert _load(tmp_path / "ds").meta.total_episodes == 1  # untouched


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("episodes=0", "episodes=0"),
        ("episodes=-3", "episodes=-3"),
        ("robot.task=fly", "robot.task='fly'"),
    ],
)
def test_bad_input_is_a_user_error(tmp_path: Path, override: str, pattern: str) -> None:
    with pytest.raises(VLAError, match=pattern):
        record(_cfg(tmp_path, override))
    assert not (tmp_path / "ds").exists()


def test_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("record", overrides=[*FAKE, f"dataset.root={blocker / 'ds'}", "progress=false"])
    with pytest.raises(DatasetWriterError, match="cannot write there"):
        record(cfg)


def test_stop_mid_episode_keeps_finished_episodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop request (what SIGINT sets) during episode 3 keeps episodes 1-2 and finalises."""
    import vla.apps.record as rec
    from vla.apps.common import GracefulStop

    calls = {"n": 0}

    def stop_during_third_episode(self: GracefulStop) -> bool:
        calls["n"] += 1
        return calls["n"] > 2 * 20 + 3  # two full episodes of at most 20 steps, then a few steps

    monkeypatch.setattr(GracefulStop, "__call__", stop_during_third_episode)
    report = rec.record(_cfg(tmp_path, "episodes=5", "+robot.fail_seeds=[0,1,2,3,4]", "max_steps=20"))
    assert report.interrupted and report.episodes_kept == 2
    assert _load(tmp_path / "ds").meta.total_episodes == 2


def test_frames_stored_as_images_without_video(tmp_path: Path) -> None:
    """dataset.video=false: PNG frames inside the parquet files (small images, no video codec)."""
    report = record(_cfg(tmp_path, "episodes=2", "dataset.video=false"))
    ds = _load(tmp_path / "ds")
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["dtype"] == "image"
    assert ds.meta.video_keys == [] and len(ds) == report.frames_kept
    assert not (tmp_path / "ds/videos").exists()
    # the fake's frames are one colour that encodes the step: (7 * step) % 255, lossless through PNG
    for i in (0, 3):
        frame = ds[i]["observation.images.front"]
        assert tuple(frame.shape) == (3, 64, 64)
        assert torch.allclose(frame, torch.full_like(frame, 7 * i / 255.0))


def test_runner_metrics_with_safety_counts_are_written(tmp_path: Path) -> None:
    """Recording runs through the runner: its safety filter acts (a rate clamp here) and vla-record writes
    runner_metrics.json with the counts next to record_report.json."""
    cfg = _cfg(tmp_path, "episodes=2", "runner.max_delta_per_tick=2")
    report = record(cfg)
    report.write(tmp_path, cfg)
    m = json.loads((tmp_path / "runner_metrics.json").read_text())
    assert m["episodes"] == 2 and m["ticks"] == report.frames_kept and m["strategy"] == "sync"
    assert (
        m["interventions"]["rate_clamped"] > 0
        and m["safety_interventions"] >= m["interventions"]["rate_clamped"]
    )
    on_disk = json.loads((tmp_path / "record_report.json").read_text())
    assert on_disk["runner"]["safety_interventions"] == m["safety_interventions"]
    assert on_disk["config"]["runner"]["max_delta_per_tick"] == 2
    # without the clamp the same seeds record other actions: the filter is in the recording path
    free = record(_cfg(tmp_path / "free", "episodes=2"))
    assert free.runner["safety_interventions"] == 0 and free.frames_kept < report.frames_kept


def test_scripted_and_vla_policies_record_runner_metrics(tmp_path: Path) -> None:
    """policy=scripted on the simulation and policy=vla from a checkpoint both record through the runner."""
    from tests.model.helpers import small_config, toy_stats
    from vla.model.vla import VLAModel

    base = [
        "robot.task=touch",
        "robot.image_size=32",
        "dataset.video=false",
        "episodes=1",
        "progress=false",
        "max_steps=12",
    ]
    with initialize_config_module(config_module="configs", version_base="1.3"):
        scripted = compose("record", overrides=[*base, "policy=scripted", f"dataset.root={tmp_path / 'a'}"])
    model_cfg = small_config("cameras=[front,wrist]", "image_size=[32,32]")
    ckpt = VLAModel(model_cfg, stats=toy_stats(6, 6), tasks=["touch the red cube"]).save_pretrained(
        tmp_path / "m"
    )
    with initialize_config_module(config_module="configs", version_base="1.3"):
        vla = compose(
            "record",
            overrides=[*base, "policy=vla", f"policy.checkpoint={ckpt}", "policy.device=cpu",
                       f"dataset.root={tmp_path / 'b'}"],
        )  # fmt: skip
    for name, cfg, root in (("scripted", scripted, "a"), ("vla", vla, "b")):
        report = record(cfg)
        (tmp_path / name).mkdir()
        report.write(tmp_path / name, cfg)
        m = json.loads((tmp_path / name / "runner_metrics.json").read_text())
        assert m["ticks"] == report.frames_kept == 12 and m["infer_count"] >= 1, name
        assert "safety_interventions" in m and set(m["interventions"]) >= {"limit_clamped", "watchdog_hold"}
        assert m["inference"] == "thread"  # realtime=false: no child process
        assert _load(tmp_path / root, "local/so101_touch").meta.total_episodes == 1


def test_dataset_resume_names_the_one_resume_key(tmp_path: Path) -> None:
    with pytest.raises(VLAError, match=r"dataset\.resume=True: the key is `resume` now; pass resume=True"):
        record(_cfg(tmp_path, "dataset.resume=true"))
    assert not (tmp_path / "ds").exists()
