"""The policy server: one Policy, many websocket clients, one inference at a time.

The event loop only decodes, checks and replies; inference runs in a worker thread under a lock, so a
client sending garbage gets its error reply even while another client's chunk is being computed. The
protocol is documented in `vla.serve.protocol`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from vla.errors import VLAError
from vla.policy import GuidedPolicy, Policy
from vla.serve.protocol import PROTOCOL_VERSION, Hello, Infer, ProtocolError, Reset, error, parse_request
from vla.serve.spec import describe_policy
from vla.serve.wire import DEFAULT_MAX_MESSAGE_BYTES, WireError, pack, unpack

log = logging.getLogger("vla.serve")

MIN_TOKEN_CHARS = 16
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen off loopback without a token, and refuse weak tokens anywhere."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise VLAError(
            f"token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            '(python -c "import secrets; print(secrets.token_urlsafe(24))")'
        )
    if not token and not is_loopback(host):
        raise VLAError(
            f"host={host} is not a loopback address: clients there must authenticate; set token=... "
            f"(or VLA_SERVE_TOKEN) to a secret of at least {MIN_TOKEN_CHARS} characters, or bind host=127.0.0.1"
        )


@dataclass
class _Session:
    """One connection's state: whether it said hello, and its episode and task."""

    id: int
    peer: str
    greeted: bool = False
    episode: int = 0
    task: str = ""


class PolicyServer:
    def __init__(
        self,
        policy: Policy,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_clients: int = 8,
    ) -> None:
        token = token or None
        check_bind(host, token)
        self.policy = policy
        self.guided_policy: GuidedPolicy | None = policy if isinstance(policy, GuidedPolicy) else None
        self.spec = describe_policy(policy)
        self.host, self.port = host, port
        self.token = token
        self.max_message_bytes = int(max_message_bytes)
        self.max_clients = int(max_clients)
        self._ids = itertools.count(1)
        self._sessions: set[int] = set()
        self._active: tuple[int, int, str] | None = None  # (session, episode, task) the policy was reset for
        self._lock: asyncio.Lock | None = None
        if self.spec.observation is None:
            log.warning(
                "%s declares no observation features: observations are not schema-checked", self.spec.model
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until `stop` is set; `on_ready(url)` is called once listening (with the real port)."""
        self._lock = asyncio.Lock()
        async with serve(
            self._handle,
            self.host,
            self.port,
            max_size=self.max_message_bytes,
            max_queue=2,  # frames buffered per connection: bounds memory at a few max_size
            compression=None,  # arrays barely compress, and no decompression bombs
            logger=logging.getLogger("vla.serve.websockets"),
        ) as server:
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            log.info("serving %s on %s", self.spec.model, self.url)
            if on_ready is not None:
                on_ready(self.url)
            await stop.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        addr = ws.remote_address
        session = _Session(next(self._ids), f"{addr[0]}:{addr[1]}" if addr else "?")
        if len(self._sessions) >= self.max_clients:
            log.warning("client %s refused: %d clients already", session.peer, len(self._sessions))
            await ws.close(CLOSE_TRY_AGAIN_LATER, "too many clients")
            return
        self._sessions.add(session.id)
        log.info("client #%d %s connected", session.id, session.peer)
        try:
            async for frame in ws:
                reply, close = await self._reply(session, frame)
                try:
                    data = pack(reply, self.max_message_bytes)
                except WireError as e:  # e.g. a chunk over the limit
                    data = pack(self._fail(session, f"the reply cannot be sent: {e}"))
                await ws.send(data)
                if close:
                    await ws.close(CLOSE_POLICY_VIOLATION, "unauthorized")
                    break
        except ConnectionClosed as e:
            if e.sent is not None and e.sent.code not in (1000, 1001):  # e.g. 1009: a frame over the limit
                log.warning("client #%d %s: connection closed: %s", session.id, session.peer, e.sent)
        finally:
            self._sessions.discard(session.id)
            log.info("client #%d %s disconnected", session.id, session.peer)

    def _fail(self, session: _Session, message: str) -> dict[str, Any]:
        log.warning("client #%d %s: %s", session.id, session.peer, message)
        return error(message)

    async def _reply(self, session: _Session, frame: str | bytes) -> tuple[dict[str, Any], bool]:
        """The reply to one frame, and whether to close the connection after sending it."""
        # With a token, an unauthenticated connection gets one error reply, then it is closed.
        locked_out = self.token is not None and not session.greeted
        if isinstance(frame, str):
            return self._fail(session, "text frames are not accepted; send binary msgpack"), locked_out
        try:
            request = parse_request(unpack(frame, self.max_message_bytes))
        except WireError as e:
            return self._fail(session, f"malformed message: {e}"), locked_out
        except ProtocolError as e:
            return self._fail(session, f"bad request: {e}"), locked_out
        if isinstance(request, Hello):
            return self._hello(session, request)
        if not session.greeted:
            return self._fail(session, "send hello first"), locked_out
        if isinstance(request, Reset):
            session.episode += 1
            session.task = request.task
            return {"type": "reset"}, False
        return await self._infer(session, request), False

    def _hello(self, session: _Session, request: Hello) -> tuple[dict[str, Any], bool]:
        if self.token is not None:
            given = (request.token or "").encode()
            if not hmac.compare_digest(given, self.token.encode()):
                return self._fail(session, "missing or wrong token"), True
        if request.protocol != PROTOCOL_VERSION:
            message = f"protocol {request.protocol} is not supported; this server speaks {PROTOCOL_VERSION}"
            return self._fail(session, message), False
        session.greeted = True
        reply = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "server": "vla-serve",
            "spec": self.spec.to_wire(),
        }
        return reply, False

    async def _infer(self, session: _Session, request: Infer) -> dict[str, Any]:
        problem = self.spec.check_observation(request.observation)
        if problem is not None:
            return self._fail(session, problem)
        if request.guided is not None:
            problem = self._check_guided(request.guided.prev_chunk)
            if problem is not None:
                return self._fail(session, problem)
        if request.task is not None and request.task != session.task:
            session.task = request.task
        assert self._lock is not None
        async with self._lock:
            started = time.perf_counter()
            try:
                actions = await asyncio.to_thread(self._infer_locked, session, request)
            except Exception as e:  # the policy's bug: logged with its traceback, the server goes on
                log.exception("client #%d %s: inference failed", session.id, session.peer)
                return error(f"inference failed: {type(e).__name__}: {e}")
            server_ms = 1000.0 * (time.perf_counter() - started)
        problem = self._check_actions(actions)
        if problem is not None:
            return self._fail(session, problem)
        return {"type": "chunk", "actions": actions, "server_ms": server_ms}

    def _infer_locked(self, session: _Session, request: Infer) -> np.ndarray:
        """Runs in the worker thread with the lock held: reset when the caller changed, then infer."""
        key = (session.id, session.episode, session.task)
        if self._active != key:
            self.policy.reset(session.task)
            self._active = key
        if request.guided is not None:
            g = request.guided
            assert self.guided_policy is not None  # _check_guided refused the request otherwise
            out = self.guided_policy.select_chunk_guided(
                request.observation, g.prev_chunk, g.inference_delay, g.execution_horizon, beta=g.beta
            )
        else:
            out = self.policy.select_chunk(request.observation)
        return np.asarray(out, dtype=np.float32)

    def _check_guided(self, prev_chunk: np.ndarray) -> str | None:
        if not self.spec.guided:
            return "the served policy does not support guided inference"
        if self.spec.action_dim is not None and prev_chunk.shape[1] != self.spec.action_dim:
            return f"guided.prev_chunk is {list(prev_chunk.shape)}; the policy's actions are {self.spec.action_dim}-D"
        return None

    def _check_actions(self, actions: np.ndarray) -> str | None:
        if actions.ndim != 2:
            return (
                f"the policy returned actions of shape {list(actions.shape)}; expected [horizon, action_dim]"
            )
        if self.spec.action_dim is not None and actions.shape[1] != self.spec.action_dim:
            return f"the policy returned {actions.shape[1]}-D actions; its spec says {self.spec.action_dim}-D"
        if not np.isfinite(actions).all():
            return "the policy returned non-finite actions"
        return None


class ServerThread:
    """A PolicyServer on its own event loop in a daemon thread (tests, notebooks)."""

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="vla-serve", daemon=True)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self.server.run(self._stop, lambda url: self._ready.set()))
        except BaseException as e:
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    def start(self, timeout_s: float = 10.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the policy server did not start")
        if self._error is not None:
            raise self._error
        return self.server.url

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10.0)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
