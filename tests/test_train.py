"""vla-train on real LeRobot datasets: ours from vla-record, and one made with LeRobot's own API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

import vla.apps.train  # noqa: F401  (registers the train config schema)
from vla.errors import VLAError
from vla.train import state
from vla.train.common import lr_factor
from vla.train.trainer import train

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAST = ["trainer=debug", "model.chunk_size=10", "trainer.progress=false"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MUJOCO_GL="egl")


def _cli(cwd: Path, *argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run one of our commands (from the venv's bin) as a user would, capturing its output."""
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three scripted 'pick' episodes at 64 px, recorded by vla-record's own code."""
    from vla.apps.record import record

    root = tmp_path_factory.mktemp("data") / "pick"
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "record",
            overrides=[
                "robot.task=pick",
                "robot.image_size=64",
                "episodes=3",
                "progress=false",
                f"dataset.root={root}",
            ],
        )
    assert record(cfg).episodes_kept == 3
    return root


@pytest.fixture(scope="module")
def foreign_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made with LeRobot's API directly: another camera name, 8-D state, 7-D action, 10 fps."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("data") / "foreign"
    features = {
        "observation.state": {"dtype": "float32", "shape": (8,), "names": [f"s{i}" for i in range(8)]},
        "action": {"dtype": "float32", "shape": (7,), "names": [f"a{i}" for i in range(7)]},
        "observation.images.cam_high": {
            "dtype": "video",
            "shape": (64, 80, 3),
            "names": ["height", "width", "channels"],
        },
    }
    ds = LeRobotDataset.create("someone/aloha_like", 10, features, root=root, robot_type="aloha")
    rng = np.random.default_rng(0)
    for _ in range(2):
        for t in range(24):
            ds.add_frame(
                {
                    "observation.state": rng.normal(size=8).astype(np.float32),
                    "action": np.full(7, t / 24, np.float32),
                    "observation.images.cam_high": rng.integers(0, 255, (64, 80, 3), dtype=np.uint8),
                    "task": "fold the towel",
                }
            )
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="module")
def two_size_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made with LeRobot's API: two cameras of different sizes (64x80 video, 48x48 images), 12-frame
    episodes."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("data") / "two_sizes"
    image = {"names": ["height", "width", "channels"]}
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"s{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"a{i}" for i in range(6)]},
        "observation.images.top": {"dtype": "video", "shape": (64, 80, 3), **image},
        "observation.images.wrist": {"dtype": "image", "shape": (48, 48, 3), **image},
    }
    ds = LeRobotDataset.create("someone/two_sizes", 10, features, root=root, robot_type="so101")
    rng = np.random.default_rng(1)
    for _ in range(2):
        for t in range(12):
            ds.add_frame(
                {
                    "observation.state": rng.normal(size=6).astype(np.float32),
                    "action": np.full(6, t / 12, np.float32),
                    "observation.images.top": rng.integers(0, 255, (64, 80, 3), dtype=np.uint8),
                    "observation.images.wrist": rng.integers(0, 255, (48, 48, 3), dtype=np.uint8),
                    "task": "stack the cups",
                }
            )
        ds.save_episode()
    ds.finalize()
    return root


def test_cameras_of_different_sizes_and_a_chunk_longer_than_every_episode_train(
    two_size_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As LeRobot trains on them: each camera resized with padding to the backbone's input, and a chunk
    longer than every episode (12 frames) padded and masked, with a warning."""
    from vla.model.vla import VLAModel

    with caplog.at_level("WARNING", logger="vla.train.data"):
        result = train(
            _cfg(
                f"dataset.root={two_size_dataset}",
                "dataset.repo_id=someone/two_sizes",
                "model.chunk_size=16",
                f"output_dir={tmp_path / 'run'}",
                "trainer.steps=3",
                "trainer.save_every=3",
            )
        )
    assert result.steps == 3 and np.isfinite(result.final_loss)
    assert "longer than every episode" in caplog.text and "masked out of the loss" in caplog.text
    model = VLAModel.from_pretrained(result.last_checkpoint)
    assert model.config.cameras == ["top", "wrist"] and model.config.image_size is None
    assert model.config.chunk_size == 16


def _cfg(*overrides: str):
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose("train", overrides=[*FAST, *overrides])


def test_train_writes_checkpoints_metrics_and_loss_falls(sim_dataset: Path, tmp_path: Path) -> None:
    from vla.model.vla import VLAModel

    out = tmp_path / "run"
    result = train(
        _cfg(
            f"dataset.root={sim_dataset}",
            f"output_dir={out}",
            "trainer.steps=30",
            "trainer.save_every=15",
            "trainer.log_every=1",
            "optim.warmup_steps=5",
            "optim.lr=1e-3",
        )
    )
    assert result.steps == 30 and np.isfinite(result.final_loss)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["000015", "000030", "last"]
    assert state.find_last(out / "checkpoints") == out / "checkpoints" / "000030"
    records = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 31))
    assert all({"loss", "lr", "samples_per_s"} <= set(r) for r in records)
    first, last = np.mean([r["loss"] for r in records[:5]]), np.mean([r["loss"] for r in records[-5:]])
    assert last < first, (first, last)  # seeded, so deterministic on a given machine
    model = VLAModel.from_pretrained(out / "checkpoints" / "last")
    assert model.config.cameras == ["front", "wrist"] and model.config.image_size == [64, 64]


def test_foreign_lerobot_dataset_trains_without_code_changes(foreign_dataset: Path, tmp_path: Path) -> None:
    from vla.model.vla import VLAModel

    result = train(
        _cfg(
            f"dataset.root={foreign_dataset}",
            "dataset.repo_id=someone/aloha_like",
            f"output_dir={tmp_path / 'run'}",
            "trainer.steps=4",
            "trainer.save_every=4",
        )
    )
    model = VLAModel.from_pretrained(result.last_checkpoint)
    cfg = model.config
    assert (cfg.cameras, cfg.image_size, cfg.resolved_state_dim, cfg.resolved_action_dim) == (
        ["cam_high"],
        [64, 80],
        8,
        7,
    )


def test_bad_datasets_are_user_errors(sim_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(VLAError, match="no LeRobot dataset there"):
        train(_cfg(f"dataset.root={tmp_path / 'missing'}", f"output_dir={tmp_path / 'a'}"))
    no_action = tmp_path / "no_action"
    import shutil

    shutil.copytree(sim_dataset, no_action)
    info = json.loads((no_action / "meta/info.json").read_text())
    del info["features"]["action"]
    (no_action / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(VLAError, match="no 'action' feature"):
        train(_cfg(f"dataset.root={no_action}", f"output_dir={tmp_path / 'c'}"))


def test_resume_refuses_another_model_config(sim_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(f"dataset.root={sim_dataset}", f"output_dir={out}", "trainer.steps=2", "trainer.save_every=2"))
    with pytest.raises(VLAError, match="already holds checkpoints"):
        train(_cfg(f"dataset.root={sim_dataset}", f"output_dir={out}", "trainer.steps=4"))
    with pytest.raises(VLAError, match=r"another model config \(model.backbone.hidden_size"):
        train(
            _cfg(
                f"dataset.root={sim_dataset}",
                f"output_dir={out}",
                "trainer.steps=4",
                "resume=true",
                "model.backbone.hidden_size=64",
            )
        )


def test_sigkill_then_resume_continues_the_schedule(sim_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        str(BIN / "vla-train"),
        *FAST,
        f"dataset.root={sim_dataset}",
        f"output_dir={out}",
        "trainer.steps=40",
        "trainer.save_every=4",
        "trainer.log_every=1",
        "optim.warmup_steps=10",
    ]
    proc = subprocess.Popen(
        [*args, "trainer.steps=100000"],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not state.is_complete(out / "checkpoints" / "000008"):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    last = state.find_last(out / "checkpoints")
    assert last is not None and int(last.name) >= 8
    # A half-written checkpoint (as a crash leaves) is never taken as the last one.
    (out / "checkpoints" / "999999").mkdir()
    (out / "checkpoints" / "999999" / "config.json").write_text("{}")
    (out / "checkpoints" / ".tmp-001000-1").mkdir()
    assert state.find_last(out / "checkpoints") == last
    resumed_from = int(last.name)
    done = _cli(tmp_path, "vla-train", *args[1:], "resume=true", f"trainer.steps={resumed_from + 3}")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    after = [r for r in records if r["step"] > resumed_from]
    assert [r["step"] for r in after][-3:] == [resumed_from + 1, resumed_from + 2, resumed_from + 3]
    # The schedule continues: lr at step s is the uninterrupted schedule's (for the first run's horizon the
    # cosine differs, so compare the warm-up phase, which both runs share, and the resumed run's own).
    for r in after[-3:]:
        expect = 3e-4 * lr_factor(r["step"], 10, resumed_from + 3, 0.1)
        assert r["lr"] == pytest.approx(expect, rel=1e-6)
    assert not (out / "checkpoints" / ".tmp-001000-1").exists()  # cleaned on resume
    # Resuming a finished run trains nothing and says so (no "loss nan, 0.0 samples/s").
    again = _cli(tmp_path, "vla-train", *args[1:], "resume=true", f"trainer.steps={resumed_from + 3}")
    assert again.returncode == 0, again.stderr
    assert f"already finished: step {resumed_from + 3}" in again.stdout and "nan" not in again.stdout


def test_cli_bad_input_one_line(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return _cli(tmp_path, "vla-train", *FAST, f"output_dir={tmp_path / 'o'}", *args, timeout=120)

    proc = run(f"dataset.root={tmp_path / 'nothing'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("vla-train: error: dataset.root=")
    proc = run("model=nope")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "model/nope" in proc.stderr


def test_ddp_two_processes_keep_ranks_identical(sim_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = _cli(
        tmp_path,
        "torchrun",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vla.apps.train",
        *FAST,
        f"dataset.root={sim_dataset}",
        f"output_dir={out}",
        "trainer.steps=3",
        "trainer.save_every=3",
        "trainer.rank_checksums=true",
        "trainer.batch_size=2",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sums = [json.loads((out / f"rank{r}_checksum.json").read_text()) for r in (0, 1)]
    assert sums[0]["step"] == sums[1]["step"] == 3
    assert sums[0]["checksum"] == sums[1]["checksum"]
    assert state.find_last(out / "checkpoints") == out / "checkpoints" / "000003"


def test_slurm_launcher_config_composes() -> None:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("train", overrides=["launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node == 8


def test_train_then_rollout_cli(sim_dataset: Path, tmp_path: Path) -> None:
    """The acceptance path: vla-train writes a checkpoint, vla-rollout policy.checkpoint=<it> evaluates it."""
    out = tmp_path / "run"
    result = train(
        _cfg(f"dataset.root={sim_dataset}", f"output_dir={out}", "trainer.steps=2", "trainer.save_every=2")
    )
    proc = _cli(
        tmp_path,
        "vla-rollout",
        f"policy.checkpoint={result.last_checkpoint}",
        "episodes=2",
        "robot.image_size=64",
        "robot.max_episode_steps=20",
        "videos=1",
        f"output_dir={tmp_path / 'eval'}",
        "policy.n_action_steps=10",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["episodes"] == 2 and 0.0 <= report["success_rate"] <= 1.0
    assert len(report["per_episode"]) == 2 and all(
        e["steps"] == 20 for e in report["per_episode"] if not e["success"]
    )
    assert len(list((tmp_path / "eval" / "videos").glob("*.mp4"))) == 1


def test_a_field_added_since_a_run_started_does_not_block_its_resume() -> None:
    """Resuming compares configs; a key the saved run lacks counts as the schema's default there."""
    from vla.train.common import config_differences

    defaults = {"lr": 1.0, "backbone": {"width": 8, "new_option": False}}
    saved = {"lr": 1.0, "backbone": {"width": 16}}  # written before `new_option` existed
    assert (
        config_differences({"lr": 1.0, "backbone": {"width": 16, "new_option": False}}, saved, defaults) == []
    )
    assert config_differences(
        {"lr": 1.0, "backbone": {"width": 16, "new_option": True}}, saved, defaults
    ) == [("backbone.new_option", False, True)]
    assert config_differences({"lr": 2.0, "backbone": {"width": 16}}, saved, defaults) == [("lr", 1.0, 2.0)]
