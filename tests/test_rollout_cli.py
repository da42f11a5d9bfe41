"""vla-rollout as a user runs it: the console script, its table, exit codes, one-line errors, Ctrl-C."""

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
EXE = str(Path(sys.executable).with_name("vla-rollout"))


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MUJOCO_GL="egl")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, f"output_dir={tmp_path / 'out'}", "policy=scripted", *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_evaluates_and_prints_the_table(tmp_path: Path) -> None:
    proc = _run(tmp_path, "robot.task=touch", "episodes=2", "videos=1", "robot.image_size=48")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    assert report["episodes"] == 2 and not report["interrupted"]
    rate = 100 * report["success_rate"]
    named = 100 * report["named_first_share"]
    row = rf"^touch\s+2\s+{rate:.1f}%\s+[\d.]+-[\d.]+%\s+[\d.]+\s+{named:.1f}%$"  # success, CI, length, named first
    assert re.search(row, proc.stdout, re.M), proc.stdout
    assert re.search(rf"^all\s+2\s+{rate:.1f}%", proc.stdout, re.M)
    assert f"report: {out / 'report.json'}" in proc.stdout and f"videos: {out / 'videos'}" in proc.stdout
    assert (out / report["per_episode"][0]["video"]).is_file()
    assert (out / ".hydra" / "config.yaml").is_file()  # hydra's run dir follows output_dir
    assert "rollout: 100%" in proc.stderr  # the progress bar ran to the end


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["episodes=0"], r"episodes=0: must be at least 1"),
        (["tasks=[touch,fly]"], r"tasks=\[touch,fly\]: robot\.task='fly' is not a task"),
        (["videos=-2"], r"videos=-2: must be ≥ 0"),
        (["checkpoints=[.]"], r"checkpoints=\.\.\. needs a policy that loads checkpoints"),
        (["OUTPUT_UNDER_A_FILE"], r"output_dir=.*file/out: cannot write there"),
    ],
)
def test_cli_bad_input(tmp_path: Path, args: list[str], pattern: str) -> None:
    if args == ["OUTPUT_UNDER_A_FILE"]:
        (tmp_path / "file").write_text("x")
        args = [f"output_dir={tmp_path / 'file' / 'out'}"]
    proc = _run(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("vla-rollout: error: "), proc.stderr
    assert re.search(pattern, errors[0]), errors[0]
    assert not (tmp_path / "out" / "report.json").exists()


def test_cli_old_env_group_names_robot(tmp_path: Path) -> None:
    """`env=` became `robot=` (configs/robot/): the old keys are refused with one line naming the new ones."""
    proc = _run(tmp_path, "env=so101", "env.task=pick", "episodes=1")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "vla-rollout: error: env= is now robot= (configs/robot/): env=so101 → robot=sim, "
        "env.task=pick → robot.task=pick"
    ]
    assert not (tmp_path / "out").exists()


def test_renamed_group_error_covers_every_override_form() -> None:
    from vla.apps.common import renamed_group_error

    line = renamed_group_error(
        "rollout", ["env=virtual_so101", "+env.fail_seeds=[1]", "~env", "robot.task=pick"]
    )
    assert line == (
        "env= is now robot= (configs/robot/): env=virtual_so101 → robot=virtual_so101, "
        "+env.fail_seeds=[1] → +robot.fail_seeds=[1], ~env → ~robot"
    )
    assert renamed_group_error("record", ["env=metaworld"]) == (
        "env= is now robot= (configs/robot/): env=metaworld → robot=metaworld"
    )
    assert renamed_group_error("rollout", ["robot=sim", "robot.task=pick", "environment=1", "-m"]) is None
    assert renamed_group_error("train", ["env.task=pick"]) is None  # no robot group: hydra's own error


def test_sigint_finishes_the_episode_and_writes_a_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            EXE,
            f"output_dir={out}",
            "policy=scripted",
            "robot._target_=tests.fakes.FakeTabletop",
            "robot.image_size=16",
            "+robot.step_delay_s=0.01",
            "+robot.fail_seeds=[100002]",  # episode 2 runs to its step limit: a wide window to land in
            "robot.max_episode_steps=60",
            "policy._target_=tests.fakes.GoalPolicy",
            "episodes=200",
            "videos=200",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_two = out / "videos" / "pick_ep1_success.mp4"  # appears when episode 1 has finished
    deadline = time.monotonic() + 120
    while not first_two.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if not first_two.exists():
        proc.kill()
        pytest.fail(f"episode 1 never finished: {proc.communicate()[1][-500:]}")
    time.sleep(0.1)  # inside episode 2 (0.6 s long)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "(interrupted)" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    eps = report["per_episode"]
    assert len(eps) == 3  # the episode under way when Ctrl-C came was finished, none was started after
    assert eps[2]["steps"] == 60 and not eps[2]["success"]  # complete, not cut short
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "pick_ep0_success.mp4",
        "pick_ep1_success.mp4",
        "pick_ep2_fail.mp4",
    ]
