"""vla-teleop: a leader arm (or the keyboard) drives a follower (a serial arm, the virtual SO-101 or the
simulation) through the real-time runner, optionally recording a LeRobotDataset.

    vla-teleop teleop=so101_leader teleop.leader.port=/dev/ttyACM1 robot=so101 robot.port=/dev/ttyACM0
    vla-teleop teleop=so101_leader teleop.leader.port=/dev/ttyACM1 robot=so101 robot.port=/dev/ttyACM0 \\
        task="pick up the cube" episodes=10 episode_time_s=30 reset_time_s=10 dataset.root=data/pick
    vla-teleop teleop=keyboard robot=sim robot.task=pick            # keys: w/s a/d r/f q/e space

Runs at `runner.rate_hz` (30 by default, the recording rate; up to 100). Ctrl-C ends the session: the
episode under way is dropped, finished ones are kept, the dataset is finalised, torque goes off.
`<output_dir>/runner_metrics.json` has the runner's metrics and the buses' error and retry counts.
The library is vla.session.live.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from omegaconf import DictConfig

from vla.apps.common import hydra_app, instantiate
from vla.session.config import TeleopConfig
from vla.session.live import SessionResult, run_session, session_summary

APP = "vla-teleop"


def teleop(cfg: DictConfig) -> SessionResult:
    robot = instantiate(cfg.robot, "robot")
    device = instantiate(cfg.teleop, "teleop", robot=robot)  # checks it can drive this follower
    return run_session(cfg, robot, device, APP)


@hydra_app(APP, "teleop", TeleopConfig)
def main(cfg: DictConfig) -> None:
    result = teleop(cfg)
    print("\n".join(session_summary(result)), flush=True)
    print(json.dumps({"episodes": asdict(result)["episodes"]}) if result.episodes else "", end="")


if __name__ == "__main__":
    main()
