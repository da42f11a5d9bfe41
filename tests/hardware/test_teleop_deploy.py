"""vla-teleop and vla-deploy as a user runs them, on emulated buses (separate processes, real ptys): leader
to follower under faults, a replayed leader recording on the virtual SO-101, deploy, Ctrl-C, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hardware.helpers import start_emulator, torque_of, write_calibration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MUJOCO_GL="egl")


def _run(app: str, tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / app), f"output_dir={tmp_path / 'out'}", "progress=false", *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line_error(proc: subprocess.CompletedProcess, app: str, pattern: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"{app}: error:")]
    assert len(errors) == 1, proc.stderr
    assert re.search(pattern, errors[0]), errors[0]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def _injected(emulator: subprocess.Popen) -> int:
    """Stop the emulator; the corrupted replies it sent, from its closing line."""
    emulator.terminate()
    _, err = emulator.communicate(timeout=10)
    return int(re.search(r"faults injected: (\d+) corrupted", err).group(1))  # type: ignore[union-attr]


def test_leader_drives_follower_at_100hz_under_faults(tmp_path: Path) -> None:
    leader, lport = start_emulator(tmp_path, "so101_leader", "faults.corrupt=0.05", "seed=1")
    follower, fport = start_emulator(tmp_path, "so101", "faults.corrupt=0.05", "seed=2")
    try:
        lcal = write_calibration(tmp_path / "leader.json", "so101_leader")
        fcal = write_calibration(tmp_path / "follower.json", "so101")
        proc = _run(
            "vla-teleop",
            tmp_path,
            "teleop=so101_leader",
            f"teleop.leader.port={lport}",
            f"teleop.leader.calibration={lcal}",
            "robot=so101",
            f"robot.port={fport}",
            f"robot.calibration={fcal}",
            "runner.rate_hz=100",
            f"duration_s={os.environ.get('VLA_TELEOP_TEST_S', '4')}",
        )
        assert proc.returncode == 0, proc.stderr
        m = json.loads((tmp_path / "out" / "runner_metrics.json").read_text())
        # (an idle machine holds none: bench/README.md; this one shares its 2 cores with other tests)
        assert m["ticks"] >= 300 and m["held_ticks"] <= 0.02 * m["ticks"]
        assert m["inference"] == "inline" and m["strategy"] == "sync"  # the leader is read in the loop
        for side in ("robot", "teleop"):
            bus = m["bus"][side]
            assert bus["failures"] == 0 and bus["checksum_errors"] > 0 and bus["retries"] > 0
        # the leader's emulator served only the teleop's bus: every reply it damaged was caught
        assert _injected(leader) == m["bus"]["teleop"]["checksum_errors"]
        assert torque_of(fport) == [0] * 6  # the follower let go at the end
    finally:
        _stop(leader)
        _stop(follower)


@pytest.mark.slow
def test_replayed_leader_records_on_the_virtual_so101_and_trains(tmp_path: Path) -> None:
    """An emulated leader replays a recorded episode; the virtual SO-101 follows; the recording loads in
    LeRobotDataset and vla-train trains on it."""
    source = tmp_path / "source"
    rec = subprocess.run(
        [str(BIN / "vla-record"), "robot.task=touch", "robot.image_size=64", "policy=scripted", "episodes=1",
         f"dataset.root={source}", f"hydra.run.dir={tmp_path / 'rec'}", "progress=false"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    from envs.so101.env import ACTION_HIGH, ACTION_LOW
    from hardware.calibration import save
    from hardware.virtual import virtual_calibration

    cal = save(tmp_path / "leader.json", virtual_calibration(ACTION_LOW, ACTION_HIGH))
    leader, port = start_emulator(
        tmp_path, "so101_leader", f"replay.dataset={source}", f"replay.calibration={cal}"
    )
    try:
        proc = _run(
            "vla-teleop",
            tmp_path,
            "teleop=so101_leader",
            f"teleop.leader.port={port}",
            f"teleop.leader.calibration={cal}",
            "robot=virtual_so101",
            "robot.task=touch",
            "robot.image_size=64",
            "episodes=3",
            "episode_time_s=1.5",
            f"dataset.root={tmp_path / 'teleop'}",
        )
        assert proc.returncode == 0, proc.stderr
        assert "kept 3 episodes" in proc.stdout
    finally:
        _stop(leader)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/teleop", root=tmp_path / "teleop")
    assert ds.meta.total_episodes == 3 and ds.meta.robot_type == "so_follower"
    train = subprocess.run(
        [str(BIN / "vla-train"), f"dataset.root={tmp_path / 'teleop'}", f"output_dir={tmp_path / 'train'}",
         "trainer=debug", "trainer.steps=2", "model.backbone.image_size=64", "model.chunk_size=8"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    assert (tmp_path / "train" / "checkpoints" / "last" / "config.json").is_file()


def test_ctrl_c_while_recording_keeps_finished_episodes_and_turns_torque_off(tmp_path: Path) -> None:
    leader, lport = start_emulator(tmp_path, "so101_leader")
    follower, fport = start_emulator(tmp_path, "so101")
    try:
        lcal = write_calibration(tmp_path / "leader.json", "so101_leader")
        fcal = write_calibration(tmp_path / "follower.json", "so101")
        cams = "robot.cameras={front: {_target_: hardware.cameras.SyntheticCamera, width: 64, height: 64}}"
        proc = subprocess.Popen(
            [str(BIN / "vla-teleop"), f"output_dir={tmp_path / 'out'}", "progress=false",
             "teleop=so101_leader", f"teleop.leader.port={lport}", f"teleop.leader.calibration={lcal}",
             "robot=so101", f"robot.port={fport}", f"robot.calibration={fcal}", cams,
             "task=hold still", "episodes=50", "episode_time_s=0.5", f"dataset.root={tmp_path / 'ds'}"],
            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        meta = tmp_path / "ds" / "meta" / "episodes"
        deadline = time.monotonic() + 120
        while not list(meta.rglob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the first finished episode is saved
        time.sleep(0.7)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "interrupted" in out
        assert torque_of(fport) == [0] * 6
    finally:
        _stop(leader)
        _stop(follower)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    kept = int(re.search(r"kept (\d+) episodes", out).group(1))  # type: ignore[union-attr]
    ds = LeRobotDataset("local/teleop", root=tmp_path / "ds")
    assert kept >= 1 and ds.meta.total_episodes == kept and ds.num_frames == kept * 15
    assert ds[ds.num_frames - 1]["observation.images.front"].shape == (3, 64, 64)  # finalised, decodable


def test_bad_input_is_one_line_and_nothing_moves(tmp_path: Path) -> None:
    follower, fport = start_emulator(tmp_path, "so101")
    leader, lport = start_emulator(tmp_path, "so101_leader")
    try:
        fcal = write_calibration(tmp_path / "follower.json", "so101")
        lcal = write_calibration(tmp_path / "leader.json", "so101_leader")
        arm = ["robot=so101", f"robot.port={fport}"]
        lead = ["teleop=so101_leader", f"teleop.leader.port={lport}", f"teleop.leader.calibration={lcal}"]
        cases = [
            (["teleop=koch_leader", "teleop.leader.port=/dev/null", *arm], r"koch_leader .* cannot drive .* so101"),
            (["robot=so101", "robot.port=/dev/ttyNOPE", *lead], r"cannot open /dev/ttyNOPE"),
            ([*arm, f"robot.calibration={tmp_path / 'none.json'}", *lead], r"none\.json; run vla-calibrate first"),
            (
                [*arm, f"robot.calibration={fcal}", *lead,
                 "robot.cameras={front: {_target_: hardware.cameras.OpenCVCamera, index: /dev/video-nope}}"],
                r"camera /dev/video-nope: cannot open it",
            ),
            (["robot=so101", "robot.port=/dev/ttyNOPE", "teleop=keyboard"], r"teleop=keyboard drives a simulated"),
        ]  # fmt: skip
        for args, pattern in cases:
            _one_line_error(_run("vla-teleop", tmp_path, *args), "vla-teleop", pattern)
        _one_line_error(
            _run("vla-deploy", tmp_path, *arm, f"policy.checkpoint={tmp_path}"),
            "vla-deploy",
            r"policy\.checkpoint=.*not a checkpoint directory",
        )
        assert torque_of(fport) == [0] * 6  # nothing was turned on
    finally:
        _stop(follower)
        _stop(leader)
