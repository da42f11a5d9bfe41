"""The VLA policy: a saved checkpoint driving the simulated SO-101 through the Policy protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policies.vla import VLAPolicy
from tests.model.helpers import small_config, toy_stats
from vla.errors import VLAError
from vla.model.vla import VLAModel


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = small_config("cameras=[front,wrist]", "image_size=[64,64]")
    model = VLAModel(cfg, stats=toy_stats(6, 6), tasks=["touch the red cube"])
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "model")


def test_policy_runs_an_episode_on_the_sim(checkpoint: Path) -> None:
    from envs.sim_robot import SimRobot
    from tests.fakes import run_episode

    robot = SimRobot(task="touch", image_size=64)
    robot.connect()
    try:
        policy = VLAPolicy(robot, checkpoint=str(checkpoint), device="cpu", n_action_steps=4)
        obs = robot.reset(seed=0)
        policy.reset(robot.task)
        chunk = policy.select_chunk(obs)
        assert chunk.shape == (4, 6) and np.isfinite(chunk).all()
        again = VLAPolicy(robot, checkpoint=str(checkpoint), device="cpu", n_action_steps=4)
        again.reset(robot.task)
        np.testing.assert_array_equal(again.select_chunk(obs), chunk)  # seeded noise: reproducible
        result = run_episode(robot, policy, seed=1, max_steps=12)
        assert result.steps == 12 and result.task.startswith("touch the")
    finally:
        robot.disconnect()


def test_policy_refuses_a_robot_it_was_not_trained_for(checkpoint: Path) -> None:
    from envs.sim_robot import SimRobot

    with pytest.raises(VLAError, match="trained on 64x64"):
        VLAPolicy(SimRobot(task="touch", image_size=96), checkpoint=str(checkpoint), device="cpu")
    with pytest.raises(VLAError, match=r"needs camera observation\.images\.wrist"):
        VLAPolicy(
            SimRobot(task="touch", image_size=64, cameras=["front"]), checkpoint=str(checkpoint), device="cpu"
        )
    with pytest.raises(VLAError, match="not a checkpoint directory"):
        VLAPolicy(None, checkpoint=str(checkpoint.parent / "nothing"), device="cpu")
    with pytest.raises(VLAError, match="n_action_steps"):
        VLAPolicy(None, checkpoint=str(checkpoint), device="cpu", n_action_steps=99)


def test_gpu_path_options_on_the_cpu(checkpoint: Path) -> None:
    """The graphed sampler falls back to the eager path off a GPU, so graphed=true gives the same chunk;
    bf16 weights run and stay close; a bad dtype is a one-line error."""
    from tests.fakes import FakeTabletop

    robot = FakeTabletop(image_size=64, cameras=["front", "wrist"])
    obs = robot.reset(seed=0)
    chunks = {}
    for name, kwargs in {
        "eager": {},
        "graphed": {"graphed": True},
        "bf16": {"dtype": "bfloat16"},
    }.items():
        policy = VLAPolicy(robot, checkpoint=str(checkpoint), device="cpu", **kwargs)  # type: ignore[arg-type]
        policy.reset(robot.task)
        chunks[name] = policy.select_chunk(obs)
        if name == "graphed":
            assert policy._sampler is not None and policy._sampler.graph is None  # captured only on CUDA
        if name == "bf16":
            assert next(policy.model.parameters()).dtype.is_floating_point and policy.dtype.itemsize == 2
    np.testing.assert_array_equal(chunks["graphed"], chunks["eager"])
    spread = float(np.abs(chunks["eager"]).max())
    assert np.isfinite(chunks["bf16"]).all()
    assert float(np.abs(chunks["bf16"] - chunks["eager"]).max()) <= 0.1 * spread + 1e-3
    with pytest.raises(VLAError, match=r"policy\.dtype='int8'"):
        VLAPolicy(robot, checkpoint=str(checkpoint), device="cpu", dtype="int8")
