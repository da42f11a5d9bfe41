"""The policy server: the protocol, schema checks, error replies that keep the connection, the token."""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from tests.serve.conftest import MAX_BYTES, TOKEN, start
from tests.serve.fakes import CrashingPolicy, EchoPolicy, PlainPolicy, observation
from vla.errors import VLAError
from vla.serve.server import PolicyServer, ServerThread, check_bind
from vla.serve.wire import pack

INFER = {"type": "infer", "observation": observation(2.0)}


def test_hello_reset_infer(server: ServerThread, policy: EchoPolicy, raw_client: Any) -> None:
    c = raw_client(server.server.url)
    hello = c.hello()
    assert hello["type"] == "hello" and hello["protocol"] == 1
    spec = hello["spec"]
    assert spec["observation"] == {
        "observation.state": {"dtype": "float32", "shape": [6]},
        "observation.images.front": {"dtype": "uint8", "shape": [8, 8, 3]},
    }
    assert (spec["action_dim"], spec["chunk_size"], spec["model"], spec["guided"]) == (
        6,
        4,
        "EchoPolicy",
        True,
    )
    assert c.ask({"type": "reset", "task": "offset"}) == {"type": "reset"}
    reply = c.ask(INFER)
    assert reply["type"] == "chunk" and reply["server_ms"] >= 0
    expected = 2.0 + np.arange(4, dtype=np.float32)[:, None] + 100.0 + np.zeros((4, 6), np.float32)
    np.testing.assert_array_equal(reply["actions"], expected)
    assert reply["actions"].dtype == np.float32
    assert policy.resets == ["offset"]
    guided = {"prev_chunk": np.zeros((4, 6), np.float32), "inference_delay": 2, "execution_horizon": 3}
    reply = c.ask({**INFER, "guided": guided})
    np.testing.assert_array_equal(reply["actions"], expected + 2000.0)


@pytest.mark.parametrize(
    "message, match",
    [
        ({"type": "infer"}, "'observation' is required"),
        ({"type": "infer", "observation": {}}, "missing 'observation.state'"),
        ({"type": "infer", "observation": {**observation(), "observation.state": np.zeros(6)}}, "float64"),
        (
            {"type": "infer", "observation": {**observation(), "observation.state": np.zeros(5, np.float32)}},
            r"\[5\]",
        ),
        (
            {
                "type": "infer",
                "observation": {**observation(), "observation.images.top": np.zeros(3, np.uint8)},
            },
            "top",
        ),
        (
            {"type": "infer", "observation": {**observation(), "observation.state": [1.0] * 6}},
            "must be an array",
        ),
        ({"type": "infer", "observation": [1, 2]}, "'observation' must be dict"),
        ({"type": "infer", "observation": observation(), "task": 3}, "'task' must be str"),
        ({"type": "infer", "observation": observation(), "task": "x" * 1001}, "at most 1000"),
        ({"type": "infer", "observation": observation(), "guided": {"prev_chunk": 1}}, "prev_chunk"),
        (
            {
                "type": "infer",
                "observation": observation(),
                "guided": {
                    "prev_chunk": np.zeros((4, 6), np.float32),
                    "inference_delay": -1,
                    "execution_horizon": 1,
                },
            },
            r"inference_delay'=-1 must be in 0\.\.100000",
        ),
        (
            {
                "type": "infer",
                "observation": observation(),
                "guided": {
                    "prev_chunk": np.full((4, 6), np.nan, np.float32),
                    "inference_delay": 0,
                    "execution_horizon": 1,
                },
            },
            "non-finite",
        ),
        (
            {
                "type": "infer",
                "observation": observation(),
                "guided": {
                    "prev_chunk": np.zeros((4, 5), np.float32),
                    "inference_delay": 0,
                    "execution_horizon": 1,
                },
            },
            r"prev_chunk is \[4, 5\]; the policy's actions are 6-D",
        ),
        (
            {
                "type": "infer",
                "observation": observation(),
                "guided": {
                    "prev_chunk": np.zeros((4, 6), np.float32),
                    "inference_delay": 0,
                    "execution_horizon": 1,
                    "beta": -1.0,
                },
            },
            r"'guided.beta'=-1.0 must be a positive finite number",
        ),
        ({"type": "execute", "code": "import os"}, "unknown message type 'execute'"),
        ({"kind": "infer"}, "'type' is required"),
        ({"type": "hello", "protocol": 99}, "protocol 99"),
        ({"type": "hello", "protocol": True}, "'protocol' must be int"),
        (b"\x93\x01\x02\x03", "malformed message: a message is a msgpack map"),
        (b"\xff\xfe garbage", "malformed"),
        ("a text frame", "text frames"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays(
    server: ServerThread, policy: EchoPolicy, raw_client: Any, message: Any, match: str
) -> None:
    c = raw_client(server.server.url)
    c.hello()
    reply = c.ask(message)
    assert reply["type"] == "error", reply
    assert re.search(match, reply["message"]), reply["message"]
    assert policy.calls == 0
    assert c.ask(INFER)["type"] == "chunk"  # same connection, still served


def test_infer_before_hello_is_refused(server: ServerThread, policy: EchoPolicy, raw_client: Any) -> None:
    c = raw_client(server.server.url)
    assert c.ask(INFER) == {"type": "error", "message": "send hello first"}
    assert policy.calls == 0
    c.hello()
    assert c.ask(INFER)["type"] == "chunk"


def test_oversized_frame_closes_only_that_connection(server: ServerThread, raw_client: Any) -> None:
    big, other = raw_client(server.server.url), raw_client(server.server.url)
    big.hello()
    other.hello()
    big.send(b"\x00" * (MAX_BYTES + 1))
    with pytest.raises(ConnectionClosed) as closed:
        big.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    assert other.ask(INFER)["type"] == "chunk"


def test_policy_crash_is_an_error_reply(raw_client: Any) -> None:
    thread = start(CrashingPolicy())
    try:
        c = raw_client(thread.server.url)
        c.hello()
        reply = c.ask(INFER)
        assert reply == {"type": "error", "message": "inference failed: RuntimeError: boom"}
        assert c.ask({"type": "reset", "task": "again"}) == {"type": "reset"}
    finally:
        thread.stop()


def test_policy_without_declared_features_or_guidance(raw_client: Any) -> None:
    thread = start(PlainPolicy())
    try:
        c = raw_client(thread.server.url)
        assert c.hello()["spec"]["observation"] is None
        assert c.ask({"type": "infer", "observation": {"anything": np.zeros(3)}})["actions"].shape == (2, 3)
        guided = {"prev_chunk": np.zeros((2, 3), np.float32), "inference_delay": 0, "execution_horizon": 1}
        reply = c.ask({"type": "infer", "observation": {}, "guided": guided})
        assert reply == {"type": "error", "message": "the served policy does not support guided inference"}
    finally:
        thread.stop()


def test_clients_get_their_own_chunks_and_tasks(
    server: ServerThread, policy: EchoPolicy, raw_client: Any
) -> None:
    """Inference is serialised; each client's reset is applied before its own inference."""
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            c = raw_client(server.server.url)
            c.hello()
            c.ask({"type": "reset", "task": "offset" if i % 2 else f"task {i}"})
            for _ in range(10):
                actions = c.ask({"type": "infer", "observation": observation(float(i))})["actions"]
                assert actions[0, 0] == float(i) + (100.0 if i % 2 else 0.0)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert policy.calls == 40


def test_too_many_clients_are_refused(raw_client: Any) -> None:
    thread = start(EchoPolicy(), max_clients=1)
    try:
        first = raw_client(thread.server.url)
        first.hello()
        second = raw_client(thread.server.url)
        with pytest.raises(ConnectionClosed) as closed:
            second.hello()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert first.ask(INFER)["type"] == "chunk"
    finally:
        thread.stop()


# ------------------------------------------------------------------------------------------------ token


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org", ""])
def test_off_loopback_without_token_is_refused(host: str) -> None:
    with pytest.raises(VLAError, match=f"host={host} is not a loopback address.*token"):
        PolicyServer(EchoPolicy(), host=host)


def test_loopback_needs_no_token_and_weak_tokens_are_refused() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)
    with pytest.raises(VLAError, match="at least 16"):
        check_bind("0.0.0.0", "short")
    check_bind("0.0.0.0", TOKEN)


@pytest.mark.parametrize("token", [None, "", "wrong-token-of-enough-length", TOKEN[:-1]])
def test_wrong_or_missing_token_gets_an_error_and_no_inference(
    token_server: ServerThread, policy: EchoPolicy, raw_client: Any, token: str | None
) -> None:
    c = raw_client(token_server.server.url)
    assert c.hello(token) == {"type": "error", "message": "missing or wrong token"}
    with pytest.raises(ConnectionClosed):
        c.ask(INFER)
    assert policy.calls == 0


def test_anything_before_hello_closes_a_token_connection(
    token_server: ServerThread, policy: EchoPolicy, raw_client: Any
) -> None:
    c = raw_client(token_server.server.url)
    assert c.ask(INFER) == {"type": "error", "message": "send hello first"}
    with pytest.raises(ConnectionClosed):
        c.hello(TOKEN)
    assert policy.calls == 0


@pytest.mark.parametrize("junk", [b"\xc1", "text", pack({"type": "reset", "task": 1})])
def test_junk_before_hello_closes_a_token_connection(
    token_server: ServerThread, raw_client: Any, junk: bytes | str
) -> None:
    c = raw_client(token_server.server.url)
    assert c.ask(junk)["type"] == "error"
    with pytest.raises(ConnectionClosed):
        c.hello(TOKEN)


def test_right_token_is_served(token_server: ServerThread, raw_client: Any) -> None:
    c = raw_client(token_server.server.url)
    assert c.hello(TOKEN)["type"] == "hello"
    assert c.ask(INFER)["type"] == "chunk"
