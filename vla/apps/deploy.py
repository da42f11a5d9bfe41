"""vla-deploy: run a trained policy on a robot (a serial arm, the virtual SO-101, the simulation, or a
LeRobot robot) through the real-time runner, optionally recording what it does as a LeRobotDataset.

    vla-deploy policy.checkpoint=outputs/train/pick/checkpoints/last robot=so101 robot.port=/dev/ttyACM0 \\
        task="pick up the red cube" duration_s=60
    vla-deploy policy.checkpoint=<dir> robot=virtual_so101 robot.task=touch episodes=50 seed=100000
    vla-deploy policy.checkpoint=<dir> robot=so101 robot.port=... task="..." episodes=5 episode_time_s=20 \\
        dataset.root=data/deployments runner.strategy=rtc

The policy runs in a child process by default (runner.inference=auto under real time), so inference never
shares the control loop's interpreter. Ctrl-C ends the session: the episode under way is dropped, the
dataset is finalised, torque goes off, exit 0. `<output_dir>/deploy_report.json` has the episodes (and
success, on robots that judge it), `runner_metrics.json` the runner's metrics and bus counters.
The library is vla.session.live.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vla.apps.common import build_policy, hydra_app, instantiate
from vla.io import write_json_atomic
from vla.runner.config import RunnerConfig
from vla.session.config import DeployConfig, policy_in_child
from vla.session.live import SessionResult, run_session, session_summary

APP = "vla-deploy"


def deploy(cfg: DictConfig) -> SessionResult:
    robot = instantiate(cfg.robot, "robot")
    policy = build_policy(cfg.policy, cfg.runner, robot)
    in_child = policy_in_child(cfg.policy, RunnerConfig.from_any(cfg.runner))
    result = run_session(cfg, robot, policy, APP, in_child=in_child)
    report = {"config": OmegaConf.to_container(cfg, resolve=True), **asdict(result)}
    write_json_atomic(Path(cfg.output_dir, "deploy_report.json"), json.loads(json.dumps(report, default=str)))
    return result


@hydra_app(APP, "deploy", DeployConfig)
def main(cfg: DictConfig) -> None:
    print("\n".join(session_summary(deploy(cfg))), flush=True)


if __name__ == "__main__":
    main()
