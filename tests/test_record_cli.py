"""vla-record as a user runs it: the console script, its exit codes, stderr, and Ctrl-C."""

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

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("vla-record"))
FAKE = [
    "robot._target_=tests.fakes.FakeTabletop",
    "robot.image_size=64",
    "policy._target_=tests.fakes.GoalPolicy",
    "progress=true",
]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MUJOCO_GL="egl")
    return env


def _run(tmp_path: Path, *args: str, root: Path | None = None) -> subprocess.CompletedProcess:
    root = root or tmp_path / "ds"
    return subprocess.run(
        [EXE, *FAKE, f"dataset.root={root}", f"hydra.run.dir={tmp_path / 'run'}", *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vla-record: error:")]
    assert len(errors) == 1, proc.stderr
    assert re.search(pattern, errors[0]), errors[0]


def test_cli_records_and_reports(tmp_path: Path) -> None:
    proc = _run(tmp_path, "episodes=2")
    assert proc.returncode == 0, proc.stderr
    assert "policy success: 2/2 = 100.0%" in proc.stdout
    assert (tmp_path / "run" / "record_report.json").is_file()
    metrics = json.loads((tmp_path / "run" / "runner_metrics.json").read_text())  # the runner drove it
    assert metrics["episodes"] == 2 and metrics["safety_interventions"] == 0 and "interventions" in metrics
    assert re.search(r"^runner: \d+ ticks, 0 missed, .* safety interventions 0$", proc.stdout, re.M)


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["robot.task=fly"], r"robot\.task='fly' is not a task"),
        (["episodes=0"], r"episodes=0: must be at least 1"),
        (["dataset.resume=true"], r"dataset\.resume=True: the key is `resume` now; pass resume=True"),
    ],
)
def test_cli_bad_input(tmp_path: Path, args: list[str], pattern: str) -> None:
    _one_line_error(_run(tmp_path, *args), pattern)


def test_cli_old_env_group_names_robot(tmp_path: Path) -> None:
    proc = _run(tmp_path, "env.task=pick", "+env.fail_seeds=[1]")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "vla-record: error: env= is now robot= (configs/robot/): env.task=pick → robot.task=pick, "
        "+env.fail_seeds=[1] → +robot.fail_seeds=[1]"
    ]
    assert not (tmp_path / "ds").exists()


def test_cli_other_schema_without_resume(tmp_path: Path) -> None:
    assert _run(tmp_path, "episodes=1").returncode == 0
    _one_line_error(_run(tmp_path, "episodes=1", "robot.cameras=[front]"), r"another schema")


def test_cli_unwritable_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _one_line_error(_run(tmp_path, "episodes=1", root=tmp_path / "file" / "ds"), r"cannot write there")


def test_cli_unknown_key_is_rejected(tmp_path: Path) -> None:
    proc = _run(tmp_path, "episodez=3")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "episodez" in proc.stderr


def test_sigint_keeps_finished_episodes(tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / "ds"
    proc = subprocess.Popen(
        [
            EXE,
            *FAKE,
            "episodes=500",
            "+robot.step_delay_s=0.01",
            "+robot.fail_seeds=[]",
            "robot.max_episode_steps=15",
            f"dataset.root={root}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for the progress bar to show 2 finished episodes
        seen += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        done = [int(n) for n in re.findall(r"\b(\d+)/500\b", seen)]  # tqdm skips counts when busy
        if done and max(done) >= 2:
            break
    else:
        proc.kill()
        pytest.fail(f"no progress seen: {seen[-500:]}")
    time.sleep(0.05)  # land mid-episode
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    kept = int(re.search(r"kept (\d+) episodes", out).group(1))  # type: ignore[union-attr]
    assert kept >= 2 and "(interrupted)" in out
    ds = LeRobotDataset("local/so101_pick", root=root)
    assert ds.meta.total_episodes == kept
    assert len(ds) == int(sum(ds.meta.episodes["length"]))
    ds[len(ds) - 1]  # the last frame decodes: parquet and video are complete


def test_cli_missing_root(tmp_path: Path) -> None:
    proc = subprocess.run(
        [EXE, *FAKE, "episodes=1", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(proc, r"dataset\.root is required")
