"""Killing vla-serve mid-episode: the runner holds, safe-stops within its timeout, resumes when it is back."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from policies.remote import RemotePolicy
from tests.fakes import FakeTabletop
from tests.serve.serve_process import ServeProcess
from vla.runner import Runner, RunnerConfig
from vla.runner.safety import SAFE_STOP

SERVE_ARGS = ("+policy.image_size=16", "+policy.cameras=[front,wrist]", "+policy.delay_s=0.01")


class StoppableTabletop(FakeTabletop):
    """A fake arm that records when the runner turns its torque off and back on."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.stops: list[float] = []
        self.resumes: list[float] = []

    def safe_stop(self) -> None:
        self.stops.append(time.monotonic())

    def resume(self) -> None:
        self.resumes.append(time.monotonic())


def test_server_killed_mid_episode_then_restarted(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, "port=0", *SERVE_ARGS)
    robot = StoppableTabletop(image_size=16, max_episode_steps=10_000, fail_seeds=[0])
    robot.connect()
    policy = RemotePolicy(robot, url=server.url, timeout_s=0.5, retry_interval_s=0.1)
    timeout_s = 0.5
    runner = Runner(robot, policy, RunnerConfig(strategy="async", rate_hz=30, safe_stop_timeout_s=timeout_s))
    events: dict[str, float] = {}

    def unplug_and_replug() -> None:
        nonlocal server
        time.sleep(1.0)
        server.proc.send_signal(signal.SIGKILL)
        server.stop()
        events["killed"] = time.monotonic()
        time.sleep(2.0)
        server = ServeProcess(tmp_path, f"port={server.port}", *SERVE_ARGS)
        events["restarted"] = time.monotonic()

    chaos = threading.Thread(target=unplug_and_replug)
    chaos.start()
    try:
        result = runner.run_episode(seed=0, max_steps=200)  # 6.7 s at 30 Hz
    finally:
        chaos.join()
        server.stop()
    metrics = runner.recorder
    assert result.steps == 200 and not result.interrupted  # control went on to the end: it resumed
    assert metrics.held_ticks > 0 and metrics.interventions[SAFE_STOP] == 1
    assert len(robot.stops) == 1 and len(robot.resumes) == 1
    # Safe stop: the client notices within its request timeout, the watchdog stops after its own timeout.
    assert robot.stops[0] - events["killed"] <= 0.5 + timeout_s + 0.3, robot.stops[0] - events["killed"]
    assert robot.resumes[0] >= events["restarted"]  # torque back on only once the server answers again
    print(
        f"safe stop {robot.stops[0] - events['killed']:.2f} s after the kill, held {metrics.held_ticks} ticks"
    )
