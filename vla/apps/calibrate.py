"""vla-calibrate: record an arm's homing offsets and ranges of motion, write them to the servos and to a
calibration file (LeRobot's format and place, so either tool can use it).

    vla-calibrate robot=so101 port=/dev/ttyACM0 robot_id=my_arm
    vla-calibrate robot=koch port=/dev/ttyUSB0 from_file=<a LeRobot calibration JSON>

The procedure is hardware.calibrate's; configs/calibrate.yaml holds the settings.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from hardware.calibrate import CalibrateConfig, run
from vla.apps.common import hydra_app
from vla.apps.emulate import robot_means_arm

APP = "vla-calibrate"


@hydra_app(APP, "calibrate", CalibrateConfig)
def _app(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    sys.argv[1:] = robot_means_arm(sys.argv[1:])
    _app()


if __name__ == "__main__":
    main()
