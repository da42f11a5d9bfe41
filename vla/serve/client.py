"""A synchronous client of the policy server (see `vla.serve.protocol`).

Every transport failure — refused, closed, timed out, an unreadable reply — drops the connection and
raises `PolicyUnavailable`; the next call reconnects (at most once per `retry_interval_s`), says hello
again and replays the last `reset`, so inference resumes by itself when the server is back. An error
reply from a live server is a `ServerError`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import numpy as np
from websockets.exceptions import InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from vla.errors import VLAError
from vla.serve.errors import PolicyUnavailable, ServerError
from vla.serve.protocol import PROTOCOL_VERSION
from vla.serve.spec import PolicySpec
from vla.serve.wire import DEFAULT_MAX_MESSAGE_BYTES, WireError, pack, unpack


class PolicyClient:
    def __init__(
        self,
        url: str = "ws://127.0.0.1:8765",
        token: str | None = None,
        timeout_s: float = 1.0,
        connect_timeout_s: float = 1.0,
        retry_interval_s: float = 0.25,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI:
            raise VLAError(f"url={url!r} is not a websocket URL; use ws://HOST:PORT") from None
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise VLAError(f"timeout_s={timeout_s}, connect_timeout_s={connect_timeout_s}: must be > 0")
        self.url = url
        self.token = token or None
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.retry_interval_s = float(retry_interval_s)
        self.max_message_bytes = int(max_message_bytes)
        self.spec: PolicySpec | None = None
        self._ws: ClientConnection | None = None
        self._task: str | None = None
        self._failed_at = -float("inf")
        self._lock = threading.Lock()  # one request in flight per connection

    # ------------------------------------------------------------------------------------------ public

    def connect(self) -> PolicySpec:
        """Connect (if not already) and return the served policy's spec."""
        with self._lock:
            self._ensure_connected()
            assert self.spec is not None
            return self.spec

    def reset(self, task: str | None) -> None:
        """Start an episode. Remembered and replayed on reconnect, so a server that is down now only
        fails the next `infer`."""
        with self._lock:
            self._task = task or ""
            if self._ws is not None:
                with contextlib.suppress(PolicyUnavailable):
                    self._exchange({"type": "reset", "task": self._task}, "reset")

    def infer(
        self,
        observation: dict[str, np.ndarray],
        task: str | None = None,
        guided: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """One chunk of actions, [H, A] float32."""
        with self._lock:
            self._ensure_connected()
            message: dict[str, Any] = {"type": "infer", "observation": self._prepare(observation)}
            if task is not None:
                message["task"] = task
            if guided is not None:
                message["guided"] = guided
            reply = self._exchange(message, "chunk")
            actions = reply.get("actions")
            if not isinstance(actions, np.ndarray) or actions.ndim != 2:
                self._drop()
                raise PolicyUnavailable(f"{self.url}: the server's chunk is not an [H, A] array")
            return actions.astype(np.float32, copy=False)

    def close(self) -> None:
        with self._lock:
            self._drop(failed=False)

    # ----------------------------------------------------------------------------------------- private

    def _prepare(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Only the features the policy takes, in its dtypes (the server checks them strictly)."""
        assert self.spec is not None
        if self.spec.observation is None:
            return {k: np.asarray(v) for k, v in observation.items()}
        out = {}
        for key, feat in self.spec.observation.items():
            if key not in observation:
                raise VLAError(f"the observation has no {key}, which the served policy needs")
            out[key] = np.ascontiguousarray(observation[key], dtype=feat.dtype)
        return out

    def _ensure_connected(self) -> None:
        if self._ws is not None:
            return
        wait = self._failed_at + self.retry_interval_s - time.monotonic()
        if wait > 0:
            raise PolicyUnavailable(f"{self.url}: unavailable; next try in {wait:.2f} s")
        try:
            self._ws = connect(
                self.url,
                open_timeout=self.connect_timeout_s,
                close_timeout=min(0.5, self.timeout_s),
                max_size=self.max_message_bytes,
                compression=None,
                proxy=None,
            )
        except (OSError, TimeoutError, WebSocketException) as e:
            self._failed_at = time.monotonic()
            raise PolicyUnavailable(f"{self.url}: cannot connect: {e or type(e).__name__}") from e
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION}
        if self.token is not None:
            hello["token"] = self.token
        spec = PolicySpec.from_wire(self._exchange(hello, "hello").get("spec"))
        if self.spec is not None and spec != self.spec:
            self._drop()
            raise VLAError(f"{self.url} now serves another policy ({spec.model}); restart the client")
        self.spec = spec
        if self._task is not None:
            self._exchange({"type": "reset", "task": self._task}, "reset")

    def _exchange(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        assert self._ws is not None
        data = pack(message, self.max_message_bytes)
        try:
            self._ws.send(data)
            raw = self._ws.recv(timeout=self.timeout_s)
            reply = unpack(raw if isinstance(raw, bytes) else b"", self.max_message_bytes)
        except (OSError, TimeoutError, WebSocketException, WireError) as e:
            self._drop()
            what = "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            raise PolicyUnavailable(f"{self.url}: {message['type']} failed: {what}") from e
        kind = reply.get("type")
        if kind == "error":
            if expect == "hello":  # refused at the door (token, protocol): this connection is over
                self._drop()
            raise ServerError(f"{self.url}: {str(reply.get('message'))[:500]}")
        if kind != expect:
            self._drop()
            raise PolicyUnavailable(f"{self.url}: expected a {expect} reply, got {str(kind)[:40]!r}")
        return reply

    def _drop(self, failed: bool = True) -> None:
        """Forget the connection; a late reply must never be taken for the next request's."""
        ws, self._ws = self._ws, None
        if ws is not None:
            if failed:
                self._failed_at = time.monotonic()
            ws.close_socket()
