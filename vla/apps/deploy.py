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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from vla.apps.common import build_policy, instantiate, user_errors
from vla.apps.session import SessionConfig, run_session, summary_lines

APP = "vla-deploy"


@dataclass
class DeployConfig(SessionConfig):
    policy: Any = MISSING


ConfigStore.instance().store(name="deploy_schema", node=DeployConfig)


def deploy(cfg: DictConfig) -> Any:
    robot = instantiate(cfg.robot, "robot")
    policy = build_policy(cfg.policy, cfg.runner, robot)
    result = run_session(cfg, robot, policy, APP)
    report = {"config": OmegaConf.to_container(cfg, resolve=True), **asdict(result)}
    Path(cfg.output_dir, "deploy_report.json").write_text(json.dumps(report, indent=2, default=str))
    return result


@hydra.main(version_base="1.3", config_path="pkg://configs", config_name="deploy")
@user_errors(APP)
def main(cfg: DictConfig) -> None:
    print("\n".join(summary_lines(deploy(cfg))), flush=True)


if __name__ == "__main__":
    main()
