"""A policy computed in a child process, so the control loop's process never shares its GIL with inference.

With inference in a thread of the control process, the model's Python code holds the interpreter lock
for up to a switch interval at a time and the tick waits for it (p99 tick jitter of 2–4 ms on two
cores); in a child process the control loop keeps its interpreter to itself (bench/README.md). The
child builds the policy from its config and serves it with `vla.serve.PolicyServer` on a loopback port
with a one-off token; this process talks to it as `policy=remote` does (msgpack + numpy, never pickle).

    policy = ProcessPolicy({"_target_": "policies.vla.VLAPolicy", "checkpoint": ckpt}, robot)
    ...                       # select_chunk / select_chunk_guided / reset, as the policy itself
    policy.close()            # stops the child

`vla-rollout` uses it with `runner.inference=process` (and by default for checkpoints under real time).
If the child dies, calls raise `PolicyUnavailable` and the runner holds, then safe-stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import select
import subprocess
import sys
import threading
from typing import Any

from policies.remote import RemotePolicy
from vla.errors import VLAError
from vla.robot import Robot

START_TIMEOUT_S = 300.0  # importing torch and loading a large checkpoint can take minutes


def _child() -> None:
    """The child (`python -m policies.process`): one JSON line on stdin ({node, token, torch_threads}),
    then `ready <url>` or `error <message>` as one line on stdout; serves until stdin reaches EOF (the
    parent closed it, exited or died)."""
    request = json.loads(sys.stdin.readline())
    reply = sys.stdout
    try:
        if request.get("torch_threads"):
            import torch

            torch.set_num_threads(int(request["torch_threads"]))
        from vla.instantiate import instantiate
        from vla.serve.server import PolicyServer

        policy = instantiate(request["node"], "policy", robot=None)
        server = PolicyServer(policy, host="127.0.0.1", port=0, token=request["token"], max_clients=1)
    except Exception as e:  # a VLAError's message is already one line for the user
        message = str(e) if isinstance(e, VLAError) else f"{type(e).__name__}: {e}"
        print("error " + " ".join(message.split()), file=reply, flush=True)
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def watch_parent() -> None:
            sys.stdin.read()  # returns at EOF
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_parent, daemon=True).start()
        await server.run(stop, on_ready=lambda url: print(f"ready {url}", file=reply, flush=True))

    asyncio.run(main())


def _drain(stream: Any) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            sys.stderr.write(line)


class ProcessPolicy(RemotePolicy):
    """`node`: the policy's config (a dict with `_target_`, as under `policy:`), built in the child."""

    def __init__(
        self,
        node: dict[str, Any],
        robot: Robot | None = None,
        timeout_s: float = 10.0,
        start_timeout_s: float = START_TIMEOUT_S,
        torch_threads: int | None = None,
    ) -> None:
        token = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-m", "policies.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdin is not None
        request = {"node": node, "token": token, "torch_threads": torch_threads}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        url = self._wait_ready(start_timeout_s, str(node.get("_target_", "?")))
        super().__init__(robot, url=url, token=token, timeout_s=timeout_s)

    def _wait_ready(self, timeout_s: float, target: str) -> str:
        process = self._process
        assert process is not None and process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        line = process.stdout.readline().strip() if ready else ""
        if line.startswith("ready "):
            # Whatever the child prints later must not fill the pipe and block it: read it away.
            threading.Thread(
                target=_drain, args=(process.stdout,), name="vla-policy-stdout", daemon=True
            ).start()
            return line.removeprefix("ready ")
        self.close()
        if line.startswith("error "):
            raise VLAError(line.removeprefix("error "))
        if not ready:
            raise VLAError(f"the policy process ({target}) was not ready within {timeout_s:.0f} s")
        raise VLAError(
            f"the policy process ({target}) exited with status {process.returncode} before serving"
        )

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def close(self) -> None:
        if "client" in self.__dict__:
            super().close()
        process, self._process = self.__dict__.get("_process"), None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]  # the child sees EOF and stops serving
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


if __name__ == "__main__":
    _child()
