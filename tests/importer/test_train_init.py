"""`vla-train init=<imported SmolVLA> dataset.root=<a vla-record dataset>` fine-tunes: the run starts from
the imported weights (fresh optimiser), takes the dataset's cameras, dims and stats, and can resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

import vla.apps.train  # noqa: F401  (registers the train config schema)
from vla.importer import import_policy
from vla.model.vla import VLAModel
from vla.train import state
from vla.train.trainer import train


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scripted 'pick' episodes at 64 px, recorded by vla-record's own code."""
    from vla.apps.record import record

    root = tmp_path_factory.mktemp("data") / "pick"
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "record",
            overrides=[
                "robot.task=pick",
                "robot.image_size=64",
                "episodes=2",
                "progress=false",
                f"dataset.root={root}",
            ],
        )
    assert record(cfg).episodes_kept == 2
    return root


def _train(*overrides: str) -> Any:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("train", overrides=["trainer=debug", "trainer.progress=false", *overrides])
    return train(cfg)


def test_train_init_fine_tunes_an_imported_smolvla(
    smolvla_source: tuple[Path, Any], recorded: Path, tmp_path: Path
) -> None:
    imported = tmp_path / "imported"
    import_policy(smolvla_source[0], imported)
    start = VLAModel.from_pretrained(imported)
    out = tmp_path / "run"
    args = [f"init={imported}", f"dataset.root={recorded}", f"output_dir={out}", "trainer.save_every=2"]
    result = _train(*args, "trainer.steps=2", "optim.lr=1e-3", "optim.warmup_steps=0")
    assert result.steps == 2 and np.isfinite(result.final_loss)
    tuned = VLAModel.from_pretrained(out / "checkpoints" / "last")
    c = tuned.config
    assert (
        c.cameras == ["front", "wrist"] and c.image_size == [64, 64] and (c.state_dim, c.action_dim) == (6, 6)
    )
    assert (c.chunk_size, c.prompt_format, c.expert.self_attn_every) == (6, "task_newline", 2)  # the import's
    assert tuned.stats is not None and tuned.stats["action"]["mean"].shape == (6,)  # the dataset's stats
    before, after = start.state_dict(), tuned.state_dict()
    frozen = "backbone.layers.0.self_attn.q_proj.weight"  # train_expert_only: the VLM stays as imported
    assert torch.equal(before[frozen], after[frozen])
    trained = "flow.expert.layers.1.self_attn.k_proj.weight"  # a cross-attention layer's projection
    assert not torch.equal(before[trained], after[trained])
    resumed = _train(*args, "trainer.steps=4", "resume=true")  # resume keeps its meaning
    assert resumed.steps == 4 and state.find_last(out / "checkpoints") == out / "checkpoints" / "000004"
    # vla-rollout runs the fine-tuned import through the runner with real-time chunking
    from vla.apps.rollout import rollout

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(
            "rollout",
            overrides=[
                "policy=vla",
                f"policy.checkpoint={out / 'checkpoints' / 'last'}",
                "robot.task=pick",
                "robot.image_size=64",
                "robot.max_episode_steps=12",
                "episodes=1",
                "videos=0",
                "progress=false",
                "runner.strategy=rtc",
                f"output_dir={tmp_path / 'rollout'}",
            ],
        )
    report = rollout(cfg)
    assert report["episodes"] == 1
    metrics = json.loads((tmp_path / "rollout" / "runner_metrics.json").read_text())
    assert metrics["strategy"] == "rtc" and metrics["guided"]


def test_an_imported_checkpoint_drives_the_sim_with_a_camera_missing(
    smolvla_source: tuple[Path, Any], recorded: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What `vla-rollout policy.checkpoint=<dir>` loads: the fine-tuned import on a robot without its
    wrist camera (masked out with a warning, as LeRobot feeds a missing camera)."""
    from envs.sim_robot import SimRobot
    from policies.vla import VLAPolicy

    imported = tmp_path / "imported"
    import_policy(smolvla_source[0], imported)
    out = tmp_path / "run"
    _train(f"init={imported}", f"dataset.root={recorded}", f"output_dir={out}", "trainer.steps=1")
    robot = SimRobot(task="pick", image_size=64, cameras=["front"])
    robot.connect()
    try:
        with caplog.at_level("WARNING"):
            policy = VLAPolicy(robot, checkpoint=str(out / "checkpoints" / "last"), device="cpu")
            obs = robot.reset(seed=0)
            policy.reset(robot.task)
            chunk = policy.select_chunk(obs)
        assert chunk.shape == (6, 6) and np.isfinite(chunk).all()
        assert any("wrist" in r.getMessage() and "masked out" in r.getMessage() for r in caplog.records)
    finally:
        robot.disconnect()


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_train_init_fine_tunes_an_imported_pi0_family(
    family: str, request: pytest.FixtureRequest, recorded: Path, tmp_path: Path
) -> None:
    """π0's expert-stream state token and π0.5's discrete state and quantile stats train from the dataset,
    starting from the imported weights; a checkpoint of the run loads and samples."""
    source, _ = request.getfixturevalue(f"{family}_source")
    imported = tmp_path / "imported"
    import_policy(source, imported)
    start = VLAModel.from_pretrained(imported)
    out = tmp_path / "run"
    args = [f"init={imported}", f"dataset.root={recorded}", f"output_dir={out}"]
    result = _train(*args, "trainer.steps=2", "optim.lr=1e-3", "optim.warmup_steps=0")
    assert result.steps == 2 and np.isfinite(result.final_loss)
    tuned = VLAModel.from_pretrained(out / "checkpoints" / "last")
    c = tuned.config
    assert c.cameras == ["front", "wrist"] and (c.state_dim, c.action_dim) == (6, 6)
    assert (c.state_token, c.state_mode, c.keep_fp32) == (
        ("expert", "continuous", True) if family == "pi0" else ("prefix", "discrete", True)
    )
    name = "flow.expert.action_in.weight"
    assert not torch.equal(start.state_dict()[name], tuned.state_dict()[name])
