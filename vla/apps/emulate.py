"""vla-emulate: serve an emulated servo bus on a pseudo-terminal, with the servos of a real arm.

    vla-emulate robot=so101
    vla-emulate robot=koch faults.corrupt=0.05 faults.garbage=0.01 faults.drop=0.01 faults.delay_ms=2
    vla-emulate robot=so101_leader replay.dataset=<dataset> replay.calibration=<json>

The first line on stdout is `port: /dev/pts/N`. SIGINT/SIGTERM stop it; SIGUSR1 unplugs it (closes the
pty). The emulator itself is hardware.emulate; configs/emulate.yaml holds the settings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from omegaconf import DictConfig

from hardware.emulate import EmulateConfig, emulate
from vla.apps.common import hydra_app

APP = "vla-emulate"


def robot_means_arm(argv: Sequence[str]) -> list[str]:
    """`robot=<arm>` -> `arm=<arm>`: the hardware apps take the arm's kind as `robot=`, as they always
    have, but configs/ has a `robot/` group (sim and serial robots for the other apps) that hydra would
    otherwise take the override for."""
    return [f"arm={a.removeprefix('robot=')}" if a.startswith("robot=") else a for a in argv]


@hydra_app(APP, "emulate", EmulateConfig)
def _app(cfg: DictConfig) -> None:
    emulate(cfg)


def main() -> None:
    sys.argv[1:] = robot_means_arm(sys.argv[1:])
    _app()


if __name__ == "__main__":
    main()
