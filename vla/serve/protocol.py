"""The policy-server protocol: one msgpack message per binary websocket frame (see `vla.serve.wire`).

Every connection starts with `hello`; with a token configured on the server it must carry it, and a
wrong or missing token gets an error reply and the connection is closed. Requests and replies:

    {"type": "hello", "protocol": 1, "token": str?}
        → {"type": "hello", "protocol": 1, "server": "vla-serve", "spec": {
              "observation": {key: {"dtype": str, "shape": [int | None, ...]}} | None,
              "action_dim": int?, "chunk_size": int?, "fps": float?, "model": str, "guided": bool}}
    {"type": "reset", "task": str}
        → {"type": "reset"}
    {"type": "infer", "observation": {key: ndarray}, "task": str?,
     "guided": {"prev_chunk": ndarray [H, A], "inference_delay": int, "execution_horizon": int,
                "beta": float?}?}
        → {"type": "chunk", "actions": ndarray [H, A] float32, "server_ms": float}

Anything wrong — not msgpack, a bad array, an unknown type, a missing or mistyped field, an observation
whose keys, dtypes or shapes differ from the spec — gets `{"type": "error", "message": str}` naming the
field, and the connection stays open. A frame over the size limit closes the connection with code 1009.
Observations must match `spec.observation` exactly: the client sends only the keys the policy uses, with
the dtype and shape the spec gives. Nothing in a message is ever executed or unpickled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_TASK_CHARS = 1000
MAX_STEPS = 100_000  # bound on guided step counts


class ProtocolError(ValueError):
    """A well-formed message that is not a valid request or reply."""


@dataclass(frozen=True)
class Hello:
    protocol: int
    token: str | None


@dataclass(frozen=True)
class Reset:
    task: str


@dataclass(frozen=True)
class Guided:
    prev_chunk: np.ndarray  # [H, A]
    inference_delay: int
    execution_horizon: int
    beta: float | None = None  # clip on the guidance scale (runner.rtc_beta); None: the policy's own


@dataclass(frozen=True)
class Infer:
    observation: dict[str, np.ndarray]
    task: str | None
    guided: Guided | None


Request = Hello | Reset | Infer


def _field(m: dict[str, Any], key: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    if key not in m or m[key] is None:
        if required:
            raise ProtocolError(f"{key!r} is required")
        return None
    value = m[key]
    # bool is an int in Python; a protocol int is never a bool.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProtocolError(f"{key!r} must be {names}, got {type(value).__name__}")
    return value


def _task(m: dict[str, Any], required: bool) -> str | None:
    task = _field(m, "task", str, required)
    if task is not None and len(task) > MAX_TASK_CHARS:
        raise ProtocolError(f"'task' is {len(task)} characters; at most {MAX_TASK_CHARS}")
    return task


def _guided(m: Any) -> Guided:
    if not isinstance(m, dict):
        raise ProtocolError("'guided' must be a map")
    prev = _field(m, "prev_chunk", np.ndarray)
    delay = _field(m, "inference_delay", int)
    horizon = _field(m, "execution_horizon", int)
    if prev.ndim != 2 or len(prev) == 0 or prev.dtype.kind != "f":
        raise ProtocolError(
            f"'guided.prev_chunk' must be a float [H, A] array, got {prev.dtype}{list(prev.shape)}"
        )
    if not np.isfinite(prev).all():
        raise ProtocolError("'guided.prev_chunk' holds non-finite values")
    # The policy clips both to its own horizon; here only nonsense is refused.
    for name, value in (("inference_delay", delay), ("execution_horizon", horizon)):
        if not 0 <= value <= MAX_STEPS:
            raise ProtocolError(f"'guided.{name}'={value} must be in 0..{MAX_STEPS}")
    beta = _field(m, "beta", (float, int), required=False)
    if beta is not None and (isinstance(beta, bool) or not (math.isfinite(beta) and beta > 0)):
        raise ProtocolError(f"'guided.beta'={beta} must be a positive finite number")
    return Guided(prev.astype(np.float32, copy=False), delay, horizon, None if beta is None else float(beta))


def parse_request(m: dict[str, Any]) -> Request:
    """A decoded message → a request; a bad one raises ProtocolError naming the field."""
    kind = _field(m, "type", str)
    if kind == "hello":
        protocol = _field(m, "protocol", int, required=False)
        return Hello(PROTOCOL_VERSION if protocol is None else protocol, _field(m, "token", str, False))
    if kind == "reset":
        return Reset(_task(m, required=False) or "")
    if kind == "infer":
        obs = _field(m, "observation", dict)
        guided = _guided(m["guided"]) if m.get("guided") is not None else None
        return Infer(obs, _task(m, required=False), guided)
    raise ProtocolError(f"unknown message type {kind[:40]!r}; expected hello, reset or infer")


def error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}
