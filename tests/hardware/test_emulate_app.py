"""vla-emulate as a user runs it: the port line, a bus talking to it over the pty, signals, and one-line
errors (run as `python -m vla.apps.emulate`, this checkout's code; the console scripts point there)."""

from __future__ import annotations

import signal
import subprocess
import time
import tomllib
from importlib import import_module
from pathlib import Path

import pytest

from hardware.bus import ServoBus
from hardware.errors import Disconnected
from hardware.specs import ARMS
from hardware.tables import MODELS
from tests.hardware.helpers import EMULATE, app_env

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return app_env(HF_HUB_OFFLINE="1")


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*EMULATE, *args], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until the app prints it (or exits)
    assert first.startswith("port: "), (first, proc.stderr.read() if proc.poll() is not None else "")
    return proc, first.removeprefix("port: ").strip()


@pytest.mark.parametrize("robot", ["so101", "koch"])
def test_serves_a_bus_and_stops_on_sigterm(tmp_path: Path, robot: str) -> None:
    proc, port = _start(tmp_path, f"robot={robot}", "faults.corrupt=0.05", "seed=3")
    try:
        assert port.startswith("/dev/")
        arm = ARMS[robot]
        bus = ServoBus(port, arm.protocol, arm.motors)
        bus.connect()  # pings ids 1-6 and checks their model numbers
        expected = [MODELS[m.model].model_number for m in arm.motors.values()]
        assert [bus.ping(i) for i in range(1, 7)] == expected
        assert bus.sync_read("Present_Position") == dict.fromkeys(arm.motors, 2048)
        bus.disconnect()
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        took = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 2.0, took
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith(f"vla-emulate: {robot} on {port}:") and "corrupt=0.05" in lines[0]
    assert "SIGTERM: stopping" in err
    assert "served" in lines[-1] and "corrupted" in lines[-1]
    assert not (tmp_path / "outputs").exists()  # the emulator writes nothing


def test_sigusr1_unplugs(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, "robot=so101")
    try:
        bus = ServoBus(port, "feetech", ARMS["so101"].motors)
        bus.connect()
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=10)
        with pytest.raises(Disconnected):
            bus.sync_read("Present_Position")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "unplugged" in err


@pytest.mark.parametrize(
    "args, pattern",
    [
        (
            ["robot=nope"],
            "robot='nope' is not an emulated arm; choose one of koch, koch_leader, so100, so100_leader, so101, so101_leader",
        ),
        (["faults.corrupt=2"], "faults.corrupt=2.0: must be a probability in [0, 1]"),
        (["time_constant_s=0"], "time_constant_s=0.0: must be in (0, 10] seconds"),
    ],
)
def test_bad_overrides_print_one_line_and_exit_2(tmp_path: Path, args: list[str], pattern: str) -> None:
    proc = subprocess.run(
        [*EMULATE, *args], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"vla-emulate: error: {pattern}"]


def test_console_scripts_are_the_apps() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name, module in [("vla-emulate", "vla.apps.emulate"), ("vla-calibrate", "vla.apps.calibrate")]:
        assert scripts[name] == f"{module}:main"
        assert callable(import_module(module).main)
