"""vla-record: drive a Robot with a Policy through the real-time runner and write a LeRobotDataset v3.0.

    vla-record robot.task=pick policy=scripted episodes=20 dataset.root=/tmp/x
    vla-record robot.task=pick policy=vla policy.checkpoint=<dir> episodes=20 dataset.root=/tmp/y keep=success
    vla-record robot.task=bin episodes=50 resume=true dataset.root=data/bin           # append 50 more

Episode i uses seed `seed + i` (continuing after the episodes already there when resuming), so a
recording is reproducible. Ctrl-C stops after the current step: finished episodes are kept, the
unfinished one is dropped, and the dataset is finalised. The hydra run dir gets record_report.json and
runner_metrics.json (the runner's metrics, its safety interventions among them). The library is
vla.session.recording.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from vla.apps.common import build_policy, hydra_app
from vla.session.config import Keep, RecordConfig
from vla.session.recording import RecordReport
from vla.session.recording import record as record_with

__all__ = ["Keep", "RecordConfig", "RecordReport", "main", "record"]

APP = "vla-record"


def record(cfg: DictConfig) -> RecordReport:
    """Record `cfg.episodes` episodes; returns the report (also printed and written by `main`)."""
    return record_with(cfg, build_policy)


@hydra_app(APP, "record", RecordConfig)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    report = record(cfg)
    print(report.summary(), flush=True)
    report.write(Path(HydraConfig.get().runtime.output_dir), cfg)
    if report.episodes_kept == 0 and report.episodes_in_dataset == 0:
        print("no episode was kept; nothing was written", file=sys.stderr)


if __name__ == "__main__":
    main()
