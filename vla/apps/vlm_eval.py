"""vla-vlm-eval: evaluate a pretrained VLM on held-out items (answer accuracy per type, pointing per camera).

    vla-vlm-eval model_dir=outputs/vlm/model output_dir=outputs/vlm_eval        # held-out SO-101 scenes
    vla-vlm-eval model_dir=outputs/vlm/model data=jsonl data.path=my_data/ eval.num_items=500 output_dir=...

Prints a table and writes <output_dir>/eval.json (pointing_accuracy, pointing_accuracy_per_camera,
answer_accuracy_per_type, examples, ...).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vla.apps.common import hydra_app, prepare_output_dir
from vla.errors import VLAError
from vla.vlm.config import VLMEvalAppConfig

APP = "vla-vlm-eval"


@hydra_app(APP, "vlm_eval", VLMEvalAppConfig)
def main(cfg: DictConfig) -> None:
    from omegaconf import open_dict

    from vla.train.common import hydra_output_dir
    from vla.vlm.evaluate import evaluate, table
    from vla.vlm.model import VisionLanguageModel
    from vla.vlm.train import EVAL_FILE, build_sources, resolve_device, write_eval

    out = Path(cfg.output_dir or hydra_output_dir()).absolute()
    prepare_output_dir(out)
    if not Path(cfg.model_dir).is_dir():
        raise VLAError(f"model_dir={cfg.model_dir}: no such directory")
    model = VisionLanguageModel.from_pretrained(cfg.model_dir, resolve_device(cfg.device))
    for node in (cfg.data, cfg.eval_data):  # generated answers use the model's location bins
        if node is not None and "loc_bins" in node:
            with open_dict(node):
                node.loc_bins = model.config.loc_bins
    _, held = build_sources(cfg)
    e = cfg.eval
    metrics = evaluate(model, held, e.num_items, e.batch_items, e.examples, progress=True)
    metrics["model"] = str(cfg.model_dir)
    write_eval(out / EVAL_FILE, metrics)
    print(table(metrics), flush=True)
    print(
        f"evaluation: {out / EVAL_FILE} ({metrics['items']} held-out items, {metrics['seconds']:.0f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
