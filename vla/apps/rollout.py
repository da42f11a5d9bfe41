"""vla-rollout: evaluate a Policy on the simulated robot and report its success rate honestly.

    vla-rollout robot.task=pick policy=scripted episodes=50
    vla-rollout tasks=[touch,pick,bin] episodes=20 videos=2 output_dir=/tmp/eval
    vla-rollout policy=vla checkpoints=[runs/a/step_1000,runs/a/step_2000]

Episode i of every task (and every checkpoint) is seeded with `seed + i`, held out from recording's seeds.
`<output_dir>/report.json` holds the pooled success rate with its 95% Wilson interval, per task, per
episode and, with `checkpoints`, per checkpoint (plus `success_vs_step.svg`); the first `videos`
episodes per task are saved as mp4. Ctrl-C stops after the current episode; the partial report is
written with `"interrupted": true`. Episodes run through the real-time runner (`runner.*`);
`<output_dir>/runner_metrics.json` holds its metrics. The library is vla.session.evaluate.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from vla.apps.common import build_policy, hydra_app
from vla.session.config import RolloutConfig
from vla.session.evaluate import _table, _validate, checkpoint_step, summary
from vla.session.evaluate import rollout as rollout_with
from vla.session.report import per_task, summarize

# re-exported: tests and benchmarks use them through the app
__all__ = ["RolloutConfig", "_table", "_validate", "checkpoint_step", "main", "per_task", "rollout"]
__all__ += ["summarize", "summary"]

APP = "vla-rollout"


def rollout(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation, write report.json (and videos, plot) under cfg.output_dir; returns the report."""
    return rollout_with(cfg, build_policy)


@hydra_app(APP, "rollout", RolloutConfig)
def main(cfg: DictConfig) -> None:
    print(summary(rollout(cfg)), flush=True)


if __name__ == "__main__":
    main()
