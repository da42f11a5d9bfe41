"""The virtual SO-101: driver -> Feetech packets on a pty -> emulated servos -> MuJoCo, end to end."""

from __future__ import annotations

import numpy as np
import pytest

from envs.sim_robot import SimRobot
from hardware.virtual import VirtualSO101
from policies.scripted import ScriptedExpert
from tests.fakes import run_episode


@pytest.mark.parametrize("faults", [None, {"corrupt": 0.05, "garbage": 0.02, "seed": 1}])
def test_scripted_expert_succeeds_through_the_serial_path(faults: dict | None) -> None:
    sim = SimRobot(task="touch", image_size=32)
    sim.connect()
    robot = VirtualSO101(task="touch", image_size=32, faults=faults)
    robot.connect()
    try:
        obs, direct = robot.reset(seed=3), sim.reset(seed=3)
        # the same pose, read back through the bus (one encoder step is 0.088 degrees)
        np.testing.assert_allclose(obs["observation.state"], direct["observation.state"], atol=0.1)
        assert obs["observation.images.front"].shape == (32, 32, 3)
        np.testing.assert_array_equal(obs["observation.images.wrist"], direct["observation.images.wrist"])
        via_bus = run_episode(robot, ScriptedExpert(robot), seed=3)
        plain = run_episode(sim, ScriptedExpert(sim), seed=3)
        assert via_bus.success and plain.success
        assert abs(via_bus.steps - plain.steps) <= 5  # quantised to encoder steps, nearly the same path
        assert robot.arm is not None
        stats = robot.arm.bus.stats
        assert stats.failures == 0
        if faults:  # damaged replies were seen and retried, and the episode did not notice
            assert stats.checksum_errors > 0 and stats.retries > 0
    finally:
        robot.disconnect()
        sim.disconnect()
    assert not robot.is_connected
