"""Real-time chunking with the real (small) VLA: guidance weights and the frozen prefix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.model.helpers import small_config, toy_stats
from vla.runner.rtc import guidance_weights, reindex


def test_guidance_weights_freeze_decay_then_free() -> None:
    w = guidance_weights(horizon=12, inference_delay=3, execution_horizon=4)
    assert w.shape == (12,)
    np.testing.assert_array_equal(w[:3], 1.0)  # frozen: executed while the chunk is computed
    np.testing.assert_array_equal(w[8:], 0.0)  # rows >= H - s: past the previous chunk's end
    decay = w[3:8]
    assert (decay > 0).all() and (decay < 1).all() and (np.diff(decay) < 0).all()
    c = (8 - 3) / (8 - 3 + 1)  # the paper's c_i at i = d
    assert decay[0] == pytest.approx(c * (np.exp(c) - 1) / (np.e - 1))
    np.testing.assert_array_equal(guidance_weights(5, 0, 5), 0.0)
    np.testing.assert_array_equal(reindex(np.arange(4.0)[:, None], 2, 4, 4)[:, 0], [2, 3, 3, 3])


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from policies.vla import VLAPolicy
    from vla.model.vla import VLAModel

    torch.manual_seed(0)
    model = VLAModel(
        small_config("cameras=[front,wrist]"), stats=toy_stats(6, 6), tasks=["touch the red cube"]
    )
    path: Path = model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "model")
    policy = VLAPolicy(None, checkpoint=str(path), device="cpu", seed=0)
    policy.reset("touch the red cube")
    return policy


def test_frozen_rows_follow_the_previous_chunk(policy) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    stats = toy_stats(6, 6)
    obs = {
        "observation.state": (stats["observation.state"]["mean"] + rng.normal(size=6)).astype(np.float32),
        "observation.images.front": rng.integers(0, 255, (48, 48, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 255, (48, 48, 3), dtype=np.uint8),
    }
    old = policy.select_chunk(obs)  # [8, 6]
    d, s = 3, 3
    prev = reindex(old, plan_start=0, tick=s, horizon=8)  # row 0: the action at the new observation's tick
    new = policy.select_chunk_guided(obs, prev, d, s)
    free = policy.select_chunk(obs)
    assert new.shape == (8, 6)
    std = stats["action"]["std"]
    guided_err = (np.abs(new[:d] - prev[:d]) / std).max()
    free_err = (np.abs(free[:d] - prev[:d]) / std).max()
    assert guided_err < 0.2 and guided_err < free_err / 5, (guided_err, free_err)
    # rows with weight 0 are not pulled: they differ from the previous chunk as an unguided sample does
    assert (np.abs(new[-2:] - prev[-2:]) / std).max() > 0.2
    # beta (runner.rtc_beta) clips the guidance scale: with the same noise, another beta, another chunk
    state = policy.generator.get_state()
    chunks = {}
    for beta in (0.5, 5.0, 0.5):
        policy.generator.set_state(state)
        chunks.setdefault(beta, []).append(policy.select_chunk_guided(obs, prev, d, s, beta=beta))
    np.testing.assert_array_equal(*chunks[0.5])  # the same noise and beta: the same chunk
    assert (np.abs(chunks[0.5][0] - chunks[5.0][0]) / std).max() > 1e-3
