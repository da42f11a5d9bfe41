"""A policy in a child process (`runner.inference=process`): same chunks as in-process, clean errors,
and a child that dies turns into PolicyUnavailable (the runner holds) rather than a hang."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from policies.process import ProcessPolicy
from policies.vla import VLAPolicy
from tests.fakes import FakeTabletop
from tests.model.helpers import small_config, toy_stats
from vla.errors import VLAError
from vla.model.vla import VLAModel
from vla.serve.errors import PolicyUnavailable


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = small_config("cameras=[front,wrist]", "image_size=[16,16]")
    model = VLAModel(cfg, stats=toy_stats(6, 6), tasks=["pick the red cube"])
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "model")


def _node(checkpoint: Path) -> dict:
    return {"_target_": "policies.vla.VLAPolicy", "checkpoint": str(checkpoint), "device": "cpu"}


def test_child_process_chunks_equal_local_ones_and_close_stops_it(checkpoint: Path) -> None:
    robot = FakeTabletop(image_size=16, cameras=["front", "wrist"])
    obs = robot.reset(seed=0)
    policy = ProcessPolicy(_node(checkpoint), robot, torch_threads=1)
    pid = policy.pid
    assert pid is not None and pid != os.getpid()
    try:
        policy.reset(robot.task)
        got = policy.select_chunk(obs)
        prev = np.linspace(-1, 1, 4 * 6, dtype=np.float32).reshape(4, 6)
        got_guided = policy.select_chunk_guided(obs, prev, 2, 1)
    finally:
        policy.close()
    with pytest.raises(ProcessLookupError):  # gone, and reaped
        os.kill(pid, 0)
    local = VLAPolicy(robot, checkpoint=str(checkpoint), device="cpu")
    local.reset(robot.task)
    np.testing.assert_array_equal(got, local.select_chunk(obs))
    np.testing.assert_array_equal(got_guided, local.select_chunk_guided(obs, prev, 2, 1))


def test_a_child_that_dies_is_unavailable_not_a_hang(checkpoint: Path) -> None:
    robot = FakeTabletop(image_size=16, cameras=["front", "wrist"])
    obs = robot.reset(seed=0)
    policy = ProcessPolicy(_node(checkpoint), robot, timeout_s=2.0, torch_threads=1)
    try:
        policy.reset(robot.task)
        assert policy.select_chunk(obs).shape[1] == 6
        assert policy.pid is not None
        os.kill(policy.pid, signal.SIGKILL)
        with pytest.raises(PolicyUnavailable):
            policy.select_chunk(obs)
    finally:
        policy.close()


def test_a_bad_policy_config_is_the_childs_one_line_error(tmp_path: Path) -> None:
    node = {"_target_": "policies.vla.VLAPolicy", "checkpoint": str(tmp_path / "nope"), "device": "cpu"}
    with pytest.raises(VLAError, match=r"policy\.checkpoint=.*not a checkpoint directory"):
        ProcessPolicy(node, None)
