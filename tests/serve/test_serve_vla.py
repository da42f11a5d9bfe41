"""A real (tiny) VLA checkpoint served remotely gives the same chunk as the same policy run locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from vla.runner import Runner, RunnerConfig
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


class RecordGuided:
    """A GuidedPolicy wrapper that keeps what every guided call got and returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[dict[str, np.ndarray], np.ndarray, float | None, np.ndarray]] = []

    def reset(self, task: str | None = None) -> None:
        self.inner.reset(task)

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.inner.select_chunk(observation)

    def select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
        beta: float | None = None,
    ) -> np.ndarray:
        chunk = self.inner.select_chunk_guided(
            observation, prev_chunk, inference_delay, execution_horizon, beta=beta
        )
        self.calls.append(({k: v.copy() for k, v in observation.items()}, prev_chunk.copy(), beta, chunk))
        return chunk


@pytest.mark.parametrize("where", ["local", "served"])
def test_runner_rtc_beta_changes_the_guided_chunk(checkpoint: Path, where: str) -> None:
    """`runner.rtc_beta` is read: the runner's first guided chunk, for the same observation, previous
    chunk and noise (a fresh policy with the same seed each run), differs between 0.5 and 5 — with the
    policy in this process and behind vla-serve."""
    torch.set_num_threads(1)  # a tiny model: two threads only contend with each other on a busy machine
    model = VLAPolicy(None, checkpoint=str(checkpoint), device="cpu").model
    first: dict[float, list[tuple[dict[str, np.ndarray], np.ndarray, float | None, np.ndarray]]] = {}
    for beta in (0.5, 5.0, 0.5):
        served = VLAPolicy.from_model(model, n_action_steps=4, seed=0)
        thread = start(served) if where == "served" else None
        robot = FakeTabletop(image_size=16, cameras=["front", "wrist"])
        try:
            inner = served if thread is None else RemotePolicy(robot, url=thread.server.url, timeout_s=30.0)
            policy = RecordGuided(inner)
            cfg = RunnerConfig(
                strategy="rtc", realtime=False, warmup=False, extra_latency_ms=100, rtc_beta=beta
            )
            with Runner(robot, policy, cfg) as runner:
                assert runner.guided
                runner.run_episode(seed=0, max_steps=8)
            if thread is not None:
                inner.close()
        finally:
            if thread is not None:
                thread.stop()
        assert policy.calls and {b for _, _, b, _ in policy.calls} == {beta}
        first.setdefault(beta, []).append(policy.calls[0])
    (obs, prev, _, chunk), (obs_again, prev_again, _, chunk_again) = first[0.5]
    obs5, prev5, _, chunk5 = first[5.0][0]
    for key in obs:  # the same request in every run...
        np.testing.assert_array_equal(obs[key], obs5[key])
        np.testing.assert_array_equal(obs[key], obs_again[key])
    np.testing.assert_array_equal(prev, prev5)
    np.testing.assert_array_equal(prev, prev_again)
    np.testing.assert_array_equal(chunk, chunk_again)  # ...the same beta: the same chunk
    assert np.abs(chunk - chunk5).max() > 1e-3  # another runner.rtc_beta: another chunk
