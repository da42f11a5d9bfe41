"""vla-serve from the command line: the first line, start-up errors, the token, SIGTERM, a killed server."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from policies.remote import RemotePolicy
from tests.serve.conftest import TOKEN
from tests.serve.fakes import observation
from tests.serve.serve_process import ServeProcess, run_serve, serve_env
from vla.serve.errors import PolicyUnavailable, ServerError


def _one_error_line(proc: object, pattern: str) -> None:
    import re

    assert proc.returncode == 2, proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in proc.stderr  # type: ignore[attr-defined]
    lines = proc.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("vla-serve: error: "), lines
    assert re.search(pattern, lines[0]), lines[0]
    assert proc.stdout == ""  # type: ignore[attr-defined]


def test_serves_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, "port=0")
    try:
        remote = RemotePolicy(url=server.url)
        assert remote.select_chunk(observation(2.0)).shape == (4, 6)
        remote.close()
        server.proc.send_signal(signal.SIGTERM)
        _, err = server.proc.communicate(timeout=30)
        assert server.proc.returncode == 0, err
        assert "vla-serve: SIGTERM: stopping" in err and "Traceback" not in err
        assert "connected" in err and "disconnected" in err  # one log line per client event
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["host=0.0.0.0"], r"host=0\.0\.0\.0 is not a loopback address.*token"),
        (["host=0.0.0.0", "token=short"], r"token is 5 characters; use at least 16"),
        (["port=70000"], r"port=70000: must be in 0\.\.65535"),
        (["max_message_mb=0"], r"max_message_mb=0.0: must be in"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path, args: list[str], pattern: str) -> None:
    _one_error_line(run_serve(tmp_path, *args), pattern)


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_error_line(run_serve(tmp_path, f"port={port}"), rf"cannot listen on 127\.0\.0\.1:{port}")


def test_token_from_the_environment(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, "port=0", env=serve_env(VLA_SERVE_TOKEN=TOKEN))
    try:
        with pytest.raises(ServerError, match="missing or wrong token"):
            RemotePolicy(url=server.url).select_chunk(observation())
        remote = RemotePolicy(url=server.url, token=TOKEN)
        assert remote.select_chunk(observation()).shape == (4, 6)
        remote.close()
    finally:
        server.stop()
    assert not list(tmp_path.rglob(".hydra")), "the resolved config (with the token) must not be written"


def test_killed_server_raises_unavailable_then_resumes_on_restart(tmp_path: Path) -> None:
    timeout_s = 2.0
    server = ServeProcess(tmp_path, "port=0", "+policy.delay_s=0.3")
    remote = RemotePolicy(url=server.url, timeout_s=timeout_s, retry_interval_s=0.1)
    try:
        remote.reset("offset")
        np.testing.assert_array_equal(remote.select_chunk(observation(1.0))[:, 0], 101.0 + np.arange(4))

        # Killed mid-request: the call in flight fails well within the timeout.
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                remote.select_chunk(observation(1.0))
                outcome.append(None)
            except BaseException as e:
                outcome.append(e)

        caller = threading.Thread(target=call)
        started = time.monotonic()
        caller.start()
        time.sleep(0.1)  # inside the server's 0.3 s inference
        server.proc.send_signal(signal.SIGKILL)
        caller.join(timeout_s + 5)
        assert isinstance(outcome[0], PolicyUnavailable), outcome
        assert time.monotonic() - started < timeout_s + 0.5
        server.stop()

        # While it is gone, every call fails fast.
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(PolicyUnavailable):
                remote.select_chunk(observation(1.0))
            assert time.monotonic() - started < timeout_s
            time.sleep(0.1)

        # Back on the same port: the client reconnects, says hello, replays the task.
        server = ServeProcess(tmp_path, f"port={server.port}", "+policy.delay_s=0.0")
        deadline = time.monotonic() + 10
        while True:
            try:
                chunk = remote.select_chunk(observation(2.0))
                break
            except PolicyUnavailable:
                assert time.monotonic() < deadline, "did not resume"
                time.sleep(0.1)
        np.testing.assert_array_equal(chunk[:, 0], 102.0 + np.arange(4))  # "offset" was replayed
    finally:
        remote.close()
        server.stop()
