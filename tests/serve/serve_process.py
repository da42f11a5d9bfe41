"""`vla-serve` as a user runs it: the console script in a subprocess, with a fake policy from tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("vla-serve"))
FAKE_POLICY = ["policy=scripted", "policy._target_=tests.serve.fakes.SlowPolicy"]


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VLA_SERVE_TOKEN"}
    return {**env, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **extra}


def run_serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run to completion (for start-up errors)."""
    return subprocess.run(
        [EXE, *FAKE_POLICY, f"hydra.run.dir={tmp_path / 'serve'}", *args],
        env=env or serve_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


class ServeProcess:
    """A running vla-serve; `url` comes from its first stdout line."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [EXE, *FAKE_POLICY, f"hydra.run.dir={tmp_path / 'serve'}", *args],
            env=env or serve_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.first_line = self._first_line(timeout_s=60)
        match = re.fullmatch(r"serving on (ws://127\.0\.0\.1:(\d+))", self.first_line)
        if match is None:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"unexpected first line {self.first_line!r}; stderr:\n{err}")
        self.url, self.port = match.group(1), int(match.group(2))

    def _first_line(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout_s)
        return lines[0].rstrip("\n") if lines else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
