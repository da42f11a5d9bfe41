"""A real (tiny) VLA checkpoint served remotely gives the same chunk as the same policy run locally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from policies.remote import RemotePolicy
from policies.vla import VLAPolicy
from tests.fakes import FakeTabletop
from tests.model.helpers import small_config, toy_stats
from tests.serve.conftest import start
from vla.errors import VLAError
from vla.model.vla import VLAModel
from vla.serve.spec import describe_policy

NOISE_STATE = torch.Generator().manual_seed(123).get_state()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = small_config("cameras=[front,wrist]", "image_size=[16,16]")
    model = VLAModel(cfg, stats=toy_stats(6, 6), tasks=["pick the red cube"])
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "model")


def test_remote_chunk_equals_local_chunk(checkpoint: Path) -> None:
    served = VLAPolicy(None, checkpoint=str(checkpoint), device="cpu", n_action_steps=4)
    spec = describe_policy(served)
    assert spec.observation is not None
    assert spec.observation["observation.images.front"].shape == (16, 16, 3)
    assert (spec.action_dim, spec.chunk_size, spec.guided) == (6, 4, True)
    robot = FakeTabletop(image_size=16, cameras=["front", "wrist"])
    obs = robot.reset(seed=0)
    thread = start(served)
    try:
        remote = RemotePolicy(robot, url=thread.server.url, timeout_s=30.0)
        remote.reset(robot.task)
        got = remote.select_chunk(obs)
        prev = np.linspace(-1, 1, 4 * 6, dtype=np.float32).reshape(4, 6)
        got_guided = remote.select_chunk_guided(obs, prev, 2, 1)  # [H, A]
        got_betas = []
        for beta in (0.5, 5.0):  # the same noise for both: only runner.rtc_beta differs
            served.generator.set_state(NOISE_STATE)
            got_betas.append(remote.select_chunk_guided(obs, prev, 2, 1, beta=beta))
        remote.close()
        with pytest.raises(VLAError, match="16x16x3"):
            RemotePolicy(FakeTabletop(image_size=32, cameras=["front", "wrist"]), url=thread.server.url)
    finally:
        thread.stop()
    local = VLAPolicy(robot, checkpoint=str(checkpoint), device="cpu", n_action_steps=4)
    local.reset(robot.task)
    np.testing.assert_array_equal(got, local.select_chunk(obs))  # same seed, same noise, same chunk
    np.testing.assert_array_equal(got_guided, local.select_chunk_guided(obs, prev, 2, 1))
    # runner.rtc_beta (the clip on the guidance scale) reaches the served policy and changes its chunk
    for beta, got_beta in zip((0.5, 5.0), got_betas, strict=True):
        local.generator.set_state(NOISE_STATE)
        np.testing.assert_array_equal(got_beta, local.select_chunk_guided(obs, prev, 2, 1, beta=beta))
    assert np.abs(got_betas[0] - got_betas[1]).max() > 1e-3
