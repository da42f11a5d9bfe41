"""VLM evaluation on held-out items: answer accuracy per question type and pointing accuracy per camera.

A point slot of an answer counts when its location decodes onto the named object's pixels in that image
(the source's segmentation mask); a slot whose object is not in the image counts when it says `none`.
Answers with points count when every slot does; boxes when the predicted box overlaps the true one with an
IoU ≥ 0.5; every other answer when it equals the truth word for word.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vla.vlm.loc import LOC_PATTERN, NONE_WORD, LocationCodec
from vla.vlm.samples import PointTarget, VLMSample, collate

BOX_IOU = 0.5


def _slots(text: str) -> tuple[dict[str, str], list[str]]:
    """Answer text -> ({label: slot} for 'front <loc..> wrist none' / 'red <loc..> bin <loc..>' answers (the
    first slot a label names), the slots (location groups and `none`) in order)."""
    words = text.split()
    is_slot = [w == NONE_WORD or bool(LOC_PATTERN.fullmatch(w[:9])) for w in words]
    labelled: dict[str, str] = {}
    for i in range(len(words) - 1):
        if not is_slot[i] and is_slot[i + 1]:
            labelled.setdefault(words[i], words[i + 1])
    return labelled, [w for w, slot in zip(words, is_slot, strict=True) if slot]


def point_correct(slot: str | None, target: PointTarget, codec: LocationCodec) -> bool:
    if target.mask is None:
        return slot == NONE_WORD
    if slot is None or not LOC_PATTERN.search(slot):
        return False
    h, w = target.mask.shape
    points = codec.points(slot, w, h)
    if not points:
        return False
    x, y = points[0]
    return bool(target.mask[min(h - 1, int(y)), min(w - 1, int(x))])


def _box_iou(a: list[int], b: list[int]) -> float:
    """Boxes as bins (y0, x0, y1, x1), each bin inclusive."""
    ya, xa, ya1, xa1 = a
    yb, xb, yb1, xb1 = b
    iy = max(0, min(ya1, yb1) - max(ya, yb) + 1)
    ix = max(0, min(xa1, xb1) - max(xa, xb) + 1)
    inter = iy * ix
    union = (ya1 - ya + 1) * (xa1 - xa + 1) + (yb1 - yb + 1) * (xb1 - xb + 1) - inter
    return inter / union if union > 0 else 0.0


def score(
    sample_answer: str,
    prediction: str,
    targets: Sequence[PointTarget],
    kind: str,
    codec: LocationCodec,
) -> tuple[bool, list[tuple[PointTarget, bool]]]:
    """-> (answer correct, [(point target, hit)]) for one sample."""
    if targets:
        labelled, slots = _slots(prediction)
        hits = []
        for t in targets:  # a labelled slot is found by its label; a one-slot answer is the first slot
            slot = labelled.get(t.label) if t.label is not None else (slots[0] if slots else None)
            hits.append((t, point_correct(slot, t, codec)))
        correct = all(h for _, h in hits)
        if kind == "objects":  # and nothing named that is not there
            correct = correct and len(labelled) == len(targets)
        return correct, hits
    truth_bins, pred_bins = codec.indices(sample_answer), codec.indices(prediction)
    if kind == "box" and len(truth_bins) == 4:
        return len(pred_bins) >= 4 and _box_iou(truth_bins, pred_bins[:4]) >= BOX_IOU, []
    return " ".join(prediction.split()) == " ".join(sample_answer.split()), []


@torch.no_grad()
def evaluate(
    model: Any, source: Any, items: int, batch_items: int = 8, examples: int = 20, progress: bool = False
) -> dict[str, Any]:
    """Evaluate `model` (a VisionLanguageModel) on the first `items` items of `source` -> the metrics."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    codec = LocationCodec(model.config.loc_bins)
    per_type: dict[str, list[bool]] = defaultdict(list)
    per_camera: dict[str, list[bool]] = defaultdict(list)
    per_point_type: dict[str, list[bool]] = defaultdict(list)
    none_hits: list[bool] = []
    shown: list[dict[str, Any]] = []
    started = time.perf_counter()
    n = min(items, len(source))
    bar = tqdm(total=n, desc="evaluating", unit="item", disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, n, batch_items):
            chunk: list[list[VLMSample]] = [source[i] for i in range(start, min(n, start + batch_items))]
            batch = collate(chunk, model.backbone.image_size)
            predictions = model.generate(batch["images"], batch["prompt"], batch["image_index"])
            for answer, prediction, targets, kind, prompt in zip(
                batch["answer"], predictions, batch["targets"], batch["kind"], batch["prompt"], strict=True
            ):
                correct, hits = score(answer, prediction, targets, kind, codec)
                per_type[kind].append(correct)
                for t, hit in hits:
                    if t.mask is None:
                        none_hits.append(hit)
                    else:
                        per_camera[t.camera].append(hit)
                        per_point_type[kind].append(hit)
                if len(shown) < examples:
                    shown.append(
                        {
                            "type": kind,
                            "prompt": prompt,
                            "answer": answer,
                            "prediction": prediction,
                            "correct": correct,
                        }
                    )
            bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)
    points = [h for hs in per_camera.values() for h in hs]
    return {
        "pointing_accuracy": _mean(points),
        "pointing_accuracy_per_camera": {c: _mean(h) for c, h in sorted(per_camera.items())},
        "pointing_accuracy_per_type": {k: _mean(h) for k, h in sorted(per_point_type.items())},
        "pointing_counts": {c: len(h) for c, h in sorted(per_camera.items())},
        "none_accuracy": _mean(none_hits),
        "answer_accuracy": _mean([h for hs in per_type.values() for h in hs]),
        "answer_accuracy_per_type": {k: _mean(h) for k, h in sorted(per_type.items())},
        "answer_counts": {k: len(h) for k, h in sorted(per_type.items())},
        "items": n,
        "samples": sum(len(h) for h in per_type.values()),
        "seconds": time.perf_counter() - started,
        "examples": shown,
    }


def _mean(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def table(metrics: dict[str, Any]) -> str:
    """The evaluation as a small text table (what vla-pretrain and vla-vlm-eval print)."""
    lines = [f"{'question type':<14} {'samples':>8} {'accuracy':>9}"]
    for kind, acc in metrics["answer_accuracy_per_type"].items():
        lines.append(f"{kind:<14} {metrics['answer_counts'][kind]:>8} {_pct(acc):>9}")
    lines.append(f"{'all':<14} {metrics['samples']:>8} {_pct(metrics['answer_accuracy']):>9}")
    lines.append("")
    lines.append(f"{'pointing':<14} {'points':>8} {'on target':>9}")
    for cam, acc in metrics["pointing_accuracy_per_camera"].items():
        lines.append(f"{cam:<14} {metrics['pointing_counts'][cam]:>8} {_pct(acc):>9}")
    total = sum(metrics["pointing_counts"].values())
    lines.append(f"{'all cameras':<14} {total:>8} {_pct(metrics['pointing_accuracy']):>9}")
    lines.append(f"'none' when the object is out of view: {_pct(metrics['none_accuracy'])}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
