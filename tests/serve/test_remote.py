"""RemotePolicy against a server in a thread: the Policy protocol, robot checks, timeouts, tokens."""

from __future__ import annotations

import time

import numpy as np
import pytest

from policies.remote import RemotePolicy
from tests.fakes import FakeTabletop
from tests.serve.conftest import TOKEN, start
from tests.serve.fakes import EchoPolicy, PlainPolicy, observation
from vla.errors import VLAError
from vla.policy import GuidedPolicy, Policy
from vla.serve.errors import PolicyUnavailable, ServerError
from vla.serve.server import ServerThread


def test_remote_policy_is_a_policy(server: ServerThread, policy: EchoPolicy) -> None:
    remote = RemotePolicy(url=server.server.url)
    assert isinstance(remote, Policy)
    assert remote.chunk_size == 4
    remote.reset("offset")
    obs = {**observation(1.0), "observation.images.wrist": np.zeros((8, 8, 3), np.uint8)}  # not sent
    obs["observation.state"] = obs["observation.state"].astype(np.float64)  # cast to the spec's float32
    chunk = remote.select_chunk(obs)
    assert chunk.shape == (4, 6) and chunk.dtype == np.float32
    np.testing.assert_array_equal(chunk[:, 0], 101.0 + np.arange(4))
    assert hasattr(remote, "select_chunk_guided")
    assert isinstance(remote, GuidedPolicy) and remote.guided  # the runner's rtc strategy will guide it
    guided = remote.select_chunk_guided(obs, np.zeros((4, 6), np.float32), 1, 2)
    np.testing.assert_array_equal(guided, chunk + 1000.0)
    assert policy.resets == ["offset"]
    remote.close()


def test_no_guided_method_when_the_server_has_none() -> None:
    thread = start(PlainPolicy())
    try:
        remote = RemotePolicy(url=thread.server.url)
        assert not hasattr(remote, "select_chunk_guided")
        assert isinstance(remote, Policy) and not isinstance(remote, GuidedPolicy) and not remote.guided
        assert remote.select_chunk({"anything": np.zeros(2)}).shape == (2, 3)
        remote.close()
    finally:
        thread.stop()


def test_robot_features_are_checked_at_construction(server: ServerThread) -> None:
    RemotePolicy(FakeTabletop(image_size=8, cameras=["front", "wrist"]), url=server.server.url).close()
    with pytest.raises(VLAError, match=r"observation.images.front is uint8\[16x16x3\] on the robot.*8x8x3"):
        RemotePolicy(FakeTabletop(image_size=16, cameras=["front"]), url=server.server.url)
    with pytest.raises(VLAError, match=r"needs observation\.images\.front"):
        RemotePolicy(FakeTabletop(image_size=8, cameras=["wrist"]), url=server.server.url)


def test_no_server_at_start_with_a_robot_is_a_setup_error(unused_port: int) -> None:
    with pytest.raises(VLAError, match=f"policy.url=ws://127.0.0.1:{unused_port}: no policy server answers"):
        RemotePolicy(FakeTabletop(), url=f"ws://127.0.0.1:{unused_port}")


def test_no_server_without_robot_raises_unavailable_per_call(unused_port: int) -> None:
    remote = RemotePolicy(url=f"ws://127.0.0.1:{unused_port}", retry_interval_s=0.0)
    remote.reset("pick")  # remembered; nothing to send it to
    started = time.monotonic()
    with pytest.raises(PolicyUnavailable, match="cannot connect"):
        remote.select_chunk(observation())
    assert time.monotonic() - started < 2.0  # refused at once, not after a timeout


def test_slow_server_times_out_then_recovers() -> None:
    policy = EchoPolicy(delay_s=0.6)
    thread = start(policy)
    try:
        remote = RemotePolicy(url=thread.server.url, timeout_s=0.2, retry_interval_s=0.0)
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable, match="timed out"):
            remote.select_chunk(observation())
        assert time.monotonic() - started < 1.5  # 0.2 s, with room for a loaded machine
        policy.delay_s = 0.0
        remote.client.timeout_s = 10.0
        time.sleep(0.6)  # the abandoned inference finishes; its late reply went to a closed connection
        np.testing.assert_array_equal(remote.select_chunk(observation(7.0))[:, 0], 7.0 + np.arange(4))
        remote.close()
    finally:
        thread.stop()


def test_token_is_sent_and_a_wrong_one_is_a_server_error(token_server: ServerThread) -> None:
    remote = RemotePolicy(url=token_server.server.url, token=TOKEN)
    assert remote.select_chunk(observation()).shape == (4, 6)
    remote.close()
    with pytest.raises(ServerError, match="missing or wrong token"):
        RemotePolicy(url=token_server.server.url, token="x" * 16).select_chunk(observation())


def test_schema_error_is_a_server_error_not_unavailable(server: ServerThread) -> None:
    remote = RemotePolicy(url=server.server.url)
    bad = {**observation(), "observation.state": np.zeros(3, np.float32)}
    with pytest.raises(ServerError, match=r"observation\['observation.state'\] is float32\[3\]"):
        remote.select_chunk(bad)
    assert remote.select_chunk(observation()).shape == (4, 6)  # the connection stayed usable
    with pytest.raises(VLAError, match=r"has no observation\.images\.front"):
        remote.select_chunk({"observation.state": np.zeros(6, np.float32)})
    remote.close()


def test_bad_url_is_a_setup_error() -> None:
    with pytest.raises(VLAError, match="not a websocket URL"):
        RemotePolicy(url="http://127.0.0.1:1")


def test_token_defaults_to_the_environment(
    token_server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLA_SERVE_TOKEN", TOKEN)
    remote = RemotePolicy(url=token_server.server.url)
    assert remote.select_chunk(observation()).shape == (4, 6)
    remote.close()
