"""An arm in another process, the emulator in a third, as on a real machine: SIGTERM and an exception in
the control loop both leave the servos with torque off; vla-calibrate writes a LeRobot-format file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hardware.bus import ServoBus
from hardware.specs import ARMS
from tests.hardware.helpers import CALIBRATE, app_env, start_emulator, torque_of, write_calibration

ARM_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from hardware.arms import ServoArm
    arm = ServoArm("so101", sys.argv[1], calibration=sys.argv[2], command_timeout_ms=None)
    arm.connect()
    print("ready", flush=True)
    if sys.argv[3] == "raise":
        try:
            raise RuntimeError("a bug in the control loop")
        finally:
            arm.disconnect()
    time.sleep(60)
    """
)


@pytest.mark.parametrize("how", ["sigterm", "raise"])
def test_torque_is_off_after_sigterm_or_an_exception(tmp_path: Path, how: str) -> None:
    emulator, port = start_emulator(tmp_path)
    try:
        cal = write_calibration(tmp_path / "cal.json", "so101")
        arm = subprocess.Popen(
            [sys.executable, "-c", ARM_SCRIPT, port, str(cal), how],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert arm.stdout is not None
        assert arm.stdout.readline().strip() == "ready", arm.stderr.read() if arm.stderr else ""
        if how == "sigterm":
            arm.send_signal(signal.SIGTERM)
        code = arm.wait(timeout=10)
        assert code != 0  # killed by the signal (as SystemExit) or failed with the bug
        assert torque_of(port) == [0] * 6
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def test_vla_calibrate_writes_a_file_to_the_servos(tmp_path: Path) -> None:
    emulator, port = start_emulator(tmp_path)
    try:
        theirs = write_calibration(tmp_path / "lerobot.json", "so101")
        out = tmp_path / "ours.json"
        done = subprocess.run(
            [*CALIBRATE, f"port={port}", f"from_file={theirs}", f"calibration={out}"],
            env=app_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "calibration written to the servos" in done.stdout
        assert json.loads(out.read_text()) == json.loads(theirs.read_text())
        bus = ServoBus(port, "feetech", ARMS["so101"].motors)
        bus.connect()
        try:
            assert set(bus.sync_read("Min_Position_Limit").values()) == {2047 - 800, 2000}
        finally:
            bus.disconnect()
        bad = subprocess.run(
            [*CALIBRATE, "port=/dev/nonexistent-tty"],
            env=app_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
        assert "cannot open /dev/nonexistent-tty" in bad.stderr
        missing = subprocess.run(CALIBRATE, env=app_env(), capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2 and "port is required" in missing.stderr
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
