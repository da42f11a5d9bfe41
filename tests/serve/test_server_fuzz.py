"""Fuzzing a live server from several clients: every message gets an error reply or a clean close, the
server keeps serving, and nothing from a message is ever unpickled or executed."""

from __future__ import annotations

import contextlib
import pickle
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.serve.conftest import MAX_BYTES, Raw
from tests.serve.fakes import EchoPolicy, observation
from tests.serve.test_wire import PWNED, Evil
from vla.serve.server import ServerThread
from vla.serve.wire import pack

VALID = pack({"type": "infer", "observation": observation(3.0), "task": "pick"})


def _nd(dtype: str, shape: list[int], data: bytes) -> dict[str, Any]:
    return {"__nd__": True, "dtype": dtype, "shape": shape, "data": data}


def _wrong_schema(rng: random.Random) -> bytes:
    obs = observation(1.0)
    choices: list[dict[str, Any]] = [
        {"type": "infer", "observation": {**obs, "observation.state": np.zeros(7, np.float32)}},
        {"type": "infer", "observation": {"observation.state": np.zeros(6, np.float32)}},
        {
            "type": "infer",
            "observation": {**obs, "observation.images.front": np.zeros((8, 8, 3), np.float32)},
        },
        {"type": "infer", "observation": obs, "guided": {"prev_chunk": np.zeros(3, np.float32)}},
        {"type": "reset", "task": ["not", "a", "string"]},
        {"type": rng.choice(["eval", "exec", "__import__", "", "INFER"])},
        {"type": "infer", "observation": {"x": {"__reduce__": ["os.system", ["touch /tmp/pwned"]]}}},
    ]
    raw: list[bytes] = [
        msgpack.packb(
            {"type": "infer", "observation": {"observation.state": _nd("object", [1], pickle.dumps(Evil()))}}
        ),
        msgpack.packb({"type": "infer", "observation": {"observation.state": msgpack.ExtType(42, b"code")}}),
        msgpack.packb(
            {"type": "infer", "observation": {"observation.state": _nd("float32", [6], b"\x00" * 5)}}
        ),
    ]
    return rng.choice([pack(rng.choice(choices)), rng.choice(raw)])


def _fuzz_message(rng: random.Random) -> bytes | str:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 512))
    if kind == 1:
        return VALID[: rng.randrange(len(VALID))]
    if kind == 2:
        data = bytearray(VALID)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 3:
        return pickle.dumps(Evil())
    if kind == 4:
        return "text " * rng.randrange(1, 50)
    if kind == 5:
        return b"\x81\xa4type" + rng.randbytes(MAX_BYTES)  # oversized
    return _wrong_schema(rng)


@pytest.fixture
def pickle_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append("loads"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append("load"))
    monkeypatch.setattr(pickle, "Unpickler", lambda *a, **k: calls.append("Unpickler"))
    return calls


def _client(url: str, seed: int, n: int, outcomes: list[str], errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    c = Raw(url)
    try:
        c.hello()
        for _ in range(n):
            message = _fuzz_message(rng)
            try:
                c.send(message)
                reply = c.recv(timeout=10)
                if reply.get("type") == "chunk":  # a mutation may leave a valid request: a right answer
                    outcomes.append("chunk")
                else:
                    assert reply["type"] == "error" and isinstance(reply["message"], str), reply
                    outcomes.append("error")
            except ConnectionClosed as e:
                assert e.rcvd is not None and e.rcvd.code == 1009, e  # only an oversized frame closes
                outcomes.append("closed")
                c = Raw(url)
                c.hello()
    except BaseException as e:
        errors.append(e)
    finally:
        c.ws.close_socket()


def test_live_fuzz_from_several_clients(
    server: ServerThread, policy: EchoPolicy, pickle_calls: list[str]
) -> None:
    url = server.server.url
    outcomes: list[str] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_client, args=(url, seed, 60, outcomes, errors)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    assert len(outcomes) == 240
    assert {"error", "closed"} <= set(outcomes)
    assert not pickle_calls and not PWNED
    # The server is alive and answers a valid request correctly.
    c = Raw(url)
    c.hello()
    reply = c.ask({"type": "infer", "observation": observation(5.0)})
    np.testing.assert_array_equal(reply["actions"][:, 0], 5.0 + np.arange(4, dtype=np.float32))
    c.close()


def test_live_fuzz_arbitrary_frames_on_one_connection(server: ServerThread, pickle_calls: list[str]) -> None:
    c = Raw(server.server.url)
    c.hello()
    send: Callable[[bytes], dict[str, Any]] = c.ask

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=1024) | st.binary(max_size=64).map(lambda b: VALID[: len(VALID) // 2] + b))
    def one_frame(frame: bytes) -> None:
        reply = send(frame)
        assert reply["type"] in ("error", "chunk")

    one_frame()
    assert c.ask({"type": "infer", "observation": observation(1.0)})["type"] == "chunk"
    assert not pickle_calls and not PWNED
    c.close()


@pytest.mark.parametrize(
    "junk",
    [b"\x00\xff" * 100, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 500, b""],
)
def test_broken_handshakes_do_not_hurt_the_server(server: ServerThread, junk: bytes) -> None:
    host, port = "127.0.0.1", server.server.port
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            s.recv(4096)
    c = Raw(server.server.url)
    c.hello()
    assert c.ask({"type": "infer", "observation": observation(1.0)})["type"] == "chunk"
    c.close()
