"""A live policy server on 127.0.0.1 (ephemeral port) in a thread, and a raw websocket client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.serve.fakes import EchoPolicy
from vla.serve.server import PolicyServer, ServerThread
from vla.serve.wire import pack, unpack

TOKEN = "correct-horse-battery-staple"
MAX_BYTES = 256 * 1024


def start(policy: Any, **kwargs: Any) -> ServerThread:
    thread = ServerThread(
        PolicyServer(policy, host="127.0.0.1", port=0, max_message_bytes=MAX_BYTES, **kwargs)
    )
    thread.start()
    return thread


@pytest.fixture
def policy() -> EchoPolicy:
    return EchoPolicy()


@pytest.fixture
def server(policy: EchoPolicy) -> Iterator[ServerThread]:
    thread = start(policy)
    yield thread
    thread.stop()


@pytest.fixture
def token_server(policy: EchoPolicy) -> Iterator[ServerThread]:
    thread = start(policy, token=TOKEN)
    yield thread
    thread.stop()


class Raw:
    """A websocket client that sends whatever it is given: the fuzzer's and the tests' hands."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, compression=None, max_size=4 * MAX_BYTES, proxy=None)

    def send(self, data: bytes | str) -> None:
        self.ws.send(data)

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        assert isinstance(raw, bytes)
        return unpack(raw, 4 * MAX_BYTES)

    def ask(self, message: dict[str, Any] | bytes | str, timeout: float = 5.0) -> dict[str, Any]:
        self.send(pack(message, 4 * MAX_BYTES) if isinstance(message, dict) else message)
        return self.recv(timeout)

    def hello(self, token: str | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "hello", "protocol": 1}
        if token is not None:
            msg["token"] = token
        return self.ask(msg)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def raw_client() -> Iterator[Any]:
    opened: list[Raw] = []

    def make(url: str) -> Raw:
        opened.append(Raw(url))
        return opened[-1]

    yield make
    for r in opened:
        r.ws.close_socket()


def free_port() -> int:
    """A port nothing listens on (bound once by the kernel's choice, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLA_SERVE_TOKEN", raising=False)
