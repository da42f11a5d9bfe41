"""Co-training data for vla-train (trainer.cotrain): a pretraining source fitted to the robot dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vla.errors import VLAError
from vla.vlm.samples import PretrainSource

VLM_KEYS = ("images", "image_index", "prompt", "answer")  # what a VLM batch hands the model
HINT = "start from a VLM pretrained on such data (model.backbone.pretrained=<vla-pretrain dir>/model)"


def cotrain_source(node: Any, model: Any, cameras: Sequence[str], image_size: int) -> PretrainSource:
    """Instantiate the source node (configs/data/*.yaml) for this VLA: its `cameras` and `image_size` the
    dataset's, its `loc_bins` the location tokens the backbone's tokenizer has, split train; and check that
    the tokenizer knows every word the source uses."""
    from omegaconf import OmegaConf, open_dict

    from vla.instantiate import instantiate
    from vla.vlm.loc import LOC_PATTERN
    from vla.vlm.tokenizer import unknown_words

    if node is None:
        raise VLAError(
            "trainer.cotrain.ratio > 0 needs trainer.cotrain.source (e.g. data@trainer.cotrain.source=so101)"
        )
    node = (
        OmegaConf.create(OmegaConf.to_container(node, resolve=False))
        if not hasattr(node, "copy")
        else node.copy()
    )
    vocab = model.text_tokenizer.tokenizer.get_vocab()
    locations = sum(1 for tok in vocab if LOC_PATTERN.fullmatch(tok))
    with open_dict(node):
        if "cameras" in node:
            node.cameras = list(cameras)
        if "image_size" in node:
            node.image_size = int(image_size)
        if "loc_bins" in node:  # answers in the location tokens the backbone's tokenizer has
            if not locations:
                raise VLAError(f"trainer.cotrain: the backbone's tokenizer has no location tokens; {HINT}")
            node.loc_bins = locations
        if "split" in node:
            node.split = "train"
    source = instantiate(node, "trainer.cotrain.source")
    if not isinstance(source, PretrainSource):
        raise VLAError(
            f"trainer.cotrain.source (_target_={node.get('_target_')}) is not a pretraining source"
        )
    missing = unknown_words(model.text_tokenizer, source.vocabulary())
    if missing:
        raise VLAError(f"trainer.cotrain: the backbone's tokenizer does not know {missing[:5]}; {HINT}")
    return source


def items_per_batch(ratio: float, batch_size: int, samples_per_item: int) -> int:
    """Source items per co-training batch: ratio × the robot batch in samples (at least one), rounded up
    to whole items (an item may hold several question-answer samples)."""
    samples = max(1, round(ratio * batch_size))
    return max(1, -(-samples // samples_per_item))
