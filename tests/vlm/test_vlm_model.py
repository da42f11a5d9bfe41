"""The VLM: prefix-LM attention, answer encoding round trip, save/load, and the VLA loading it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vla.model.attention import TokenLayout, block_mask
from vla.model.config import BackboneConfig, ModelConfigError, load_config
from vla.model.prefix import suffix_layout
from vla.vlm.model import VisionLanguageModel, VLMConfig, answer_ids, question_prefix
from vla.vlm.tokenizer import build_tokenizer

TEXTS = [
    "point to the red cube",
    "touch the red cube",
    "what colour is it",
    "red",
    "green",
    "none",
    "front",
    "wrist",
]


def tiny(image_size: int = 32) -> VLMConfig:
    b = BackboneConfig(
        hidden_size=32, layers=2, heads=4, kv_heads=2, intermediate_size=64, vision_hidden_size=32,
        vision_layers=1, vision_heads=4, vision_intermediate_size=64, patch_size=8, image_size=image_size,
    )  # fmt: skip
    return VLMConfig(backbone=b, max_prompt_tokens=8, max_answer_tokens=6, loc_bins=16)


@pytest.fixture
def vlm() -> VisionLanguageModel:
    torch.manual_seed(0)
    return VisionLanguageModel(tiny(), build_tokenizer(TEXTS, 16))


def _batch(n: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "images": torch.rand((n, 2, 3, 32, 32), generator=g),
        "prompt": ["point to the red cube", "touch the red cube", "what colour is it"][:n],
        "answer": ["<loc0003><loc0007>", "front <loc0001><loc0002> wrist none", "green"][:n],
    }


def test_answers_round_trip_through_the_tokenizer(vlm: VisionLanguageModel) -> None:
    batch = _batch()
    ids, valid = answer_ids(vlm.text, batch["answer"], 12, torch.device("cpu"))
    assert [vlm.decode(row) for row in ids.tolist()] == batch["answer"]
    eos = vlm.text.eos_id
    assert all(row[int(v.sum()) - 1] == eos for row, v in zip(ids.tolist(), valid, strict=True))


def test_prefix_lm_mask_bidirectional_question_causal_answer(vlm: VisionLanguageModel) -> None:
    batch = _batch()
    prefix, layout = question_prefix(vlm.backbone, vlm.text, batch["images"], batch["prompt"], 8)
    ids, valid = answer_ids(vlm.text, batch["answer"], 6, torch.device("cpu"))
    full = TokenLayout.cat([layout, suffix_layout(layout, valid, causal=True)])
    mask = block_mask(full, full)[0, 0]  # [T, T]
    p = prefix.shape[1]
    real = layout.valid[0]
    # image + question tokens see every real prefix token (both ways) and no answer token
    assert bool(mask[:p, :p][:, real].all()) and not bool(mask[:p, p:].any())
    # answer token j sees the whole prefix and answer tokens <= j only
    for j in range(ids.shape[1]):
        assert bool(mask[p + j, :p][real].all())
        assert mask[p + j, p:].tolist() == [k <= j and bool(valid[0, k]) for k in range(ids.shape[1])]


def test_later_answer_tokens_do_not_change_earlier_predictions(vlm: VisionLanguageModel) -> None:
    """Causality in the computation itself: logits at answer position j ignore tokens after j, while the
    last question word changes the predictions of the first answer token (the question is read)."""
    from vla.model.attention import Segment, joint_forward

    batch = _batch(1)
    prefix, layout = question_prefix(vlm.backbone, vlm.text, batch["images"], batch["prompt"], 8)
    ids, valid = answer_ids(vlm.text, batch["answer"], 6, torch.device("cpu"))

    def hidden(answer_ids: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        tokens = vlm.backbone.embed_text(answer_ids)
        full = TokenLayout.cat([layout, suffix_layout(layout, valid, causal=True)])
        (h,), _ = joint_forward(
            [Segment(torch.cat([prefix, tokens], 1), vlm.backbone.layers)], full, vlm.backbone
        )
        return h

    base = hidden(ids, prefix)
    changed = ids.clone()
    changed[0, -1] = 5
    other = hidden(changed, prefix)
    p, n = prefix.shape[1], ids.shape[1]
    torch.testing.assert_close(other[:, : p + n - 1], base[:, : p + n - 1])
    assert not torch.allclose(other[:, -1], base[:, -1])
    prefix2, _ = question_prefix(vlm.backbone, vlm.text, batch["images"], ["point to the green cube"], 8)
    assert not torch.allclose(hidden(ids, prefix2)[:, p - 1], base[:, p - 1])
    # image tokens see the question (bidirectional prefix)
    assert not torch.allclose(hidden(ids, prefix2)[:, 0], base[:, 0])


def test_shared_images_match_repeated_images(vlm: VisionLanguageModel) -> None:
    batch = _batch(2)
    shared = {**batch, "images": batch["images"][:1], "image_index": torch.tensor([0, 0])}
    repeated = {**batch, "images": batch["images"][:1].repeat(2, 1, 1, 1, 1)}
    torch.testing.assert_close(vlm(shared)["loss"], vlm(repeated)["loss"])


def test_save_load_and_the_vla_loads_it_as_its_backbone(vlm: VisionLanguageModel, tmp_path: Path) -> None:
    from vla.model.vla import VLAModel

    batch = _batch()
    out = vlm.save_pretrained(tmp_path / "vlm")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()
    }
    again = VisionLanguageModel.from_pretrained(out)
    torch.testing.assert_close(again(batch)["loss"], vlm(batch)["loss"])
    assert again.generate(batch["images"], batch["prompt"]) == vlm.generate(batch["images"], batch["prompt"])
    stats = {k: {"mean": np.zeros(6), "std": np.ones(6)} for k in ("observation.state", "action")}
    cfg = load_config("tiny", [f"backbone.pretrained={out}", "cameras=[front,wrist]", "image_size=[32,32]"])
    vla = VLAModel(cfg, stats=stats)
    for a, b in zip(vla.backbone.state_dict().values(), vlm.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    # the VLA encodes an instruction exactly as the VLM encodes a question
    ids_vla, _ = vla.text_tokenizer.encode_prompts(["touch the red cube"], None, 8)
    ids_vlm, _ = vlm.text.encode_prompts(["touch the red cube"], None, 8)
    assert torch.equal(ids_vla, ids_vlm)
    # co-training: the VLA's LM loss on a VLM batch is the VLM's loss (same weights, same encoding)
    vla_cfg_len = vla.config.max_text_tokens
    from vla.vlm.model import question_answer_loss

    lm = question_answer_loss(vla.backbone, vla.text_tokenizer, batch, vla_cfg_len, 6)["loss"]
    torch.testing.assert_close(lm, vlm(batch)["loss"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ModelConfigError, match="is a smolvlm model"):
        VLAModel(
            load_config("tiny", [f"backbone.pretrained={out}", "backbone.family=paligemma"]), stats=stats
        )


def test_convolutional_patch_stem_saves_loads_and_the_vla_rebuilds_it(tmp_path: Path) -> None:
    from vla.model.backbone import ConvPatchStem
    from vla.model.vla import VLAModel

    cfg = tiny()
    cfg.backbone.patch_stem = 8
    torch.manual_seed(0)
    vlm = VisionLanguageModel(cfg, build_tokenizer(TEXTS, 16))
    stem = vlm.backbone.vision.embeddings.patch_embedding
    assert isinstance(stem, ConvPatchStem)
    assert len([m for m in stem.convs if isinstance(m, torch.nn.Conv2d)]) == 3  # log2(8) stride-2 convs
    batch = _batch()
    assert vlm.backbone.vision_features(batch["images"][:, 0]).shape == (3, 16, 32)  # 4x4 patches, width 32
    out = vlm.save_pretrained(tmp_path / "vlm")
    again = VisionLanguageModel.from_pretrained(out)  # the stem's weights come back, not a fresh init
    torch.testing.assert_close(again(batch)["loss"], vlm(batch)["loss"])
    stats = {k: {"mean": np.zeros(6), "std": np.ones(6)} for k in ("observation.state", "action")}
    vla = VLAModel(
        load_config("tiny", [f"backbone.pretrained={out}", "cameras=[front,wrist]", "image_size=[32,32]"]),
        stats=stats,
    )
    for a, b in zip(vla.backbone.state_dict().values(), vlm.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    saved = VLAModel.from_pretrained(vla.save_pretrained(tmp_path / "vla"))  # rebuilt from its HF config
    assert isinstance(saved.backbone.vision.embeddings.patch_embedding, ConvPatchStem)
    for a, b in zip(saved.state_dict().values(), vla.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    cfg.backbone.patch_stem, cfg.backbone.patch_size = 8, 6
    with pytest.raises(ModelConfigError, match="power-of-two patch_size"):
        VisionLanguageModel(cfg, build_tokenizer(TEXTS, 16))


def test_patch_targets_are_each_patchs_share_of_each_object() -> None:
    """Cell t is patch (t // g, t % g) of the vision tower's row-major grid, which its patch embedding
    produces: moving a bright square moves the feature change to that patch."""
    from vla.model.backbone import Backbone
    from vla.vlm.model import patch_targets

    labels = torch.zeros((1, 32, 32), dtype=torch.uint8)
    labels[0, 20, 3] = 2  # one pixel in patch (2, 0) -> cell 8
    labels[0, 0:9, 25:30] = 1  # 40 pixels in patch (0, 3) -> cell 3, 5 in patch (1, 3) -> cell 7
    target = patch_targets(labels, 4, 3)  # [1, 16, 3]
    expect = torch.zeros((16, 3))
    expect[8, 1], expect[3, 0], expect[7, 0] = 1 / 64, 40 / 64, 5 / 64
    torch.testing.assert_close(target[0], expect)
    backbone = Backbone.create(tiny(32).backbone)
    embed = backbone.vision.embeddings.patch_embedding  # the first layer: no mixing across patches yet
    img = torch.zeros((1, 3, 32, 32))
    img[0, :, 16:24, 0:8] = 1.0  # patch (2, 0)
    changed = (embed(img) - embed(torch.zeros_like(img))).flatten(2).transpose(1, 2).abs().sum(-1)[0]  # [16]
    assert changed.argmax().item() == 8 and int((changed > 1e-6).sum()) == 1


def test_patch_objective_adds_to_the_loss_and_saves(tmp_path: Path) -> None:
    cfg = tiny()
    cfg.patch_loss_weight, cfg.patch_labels = 0.5, 3
    torch.manual_seed(0)
    vlm = VisionLanguageModel(cfg, build_tokenizer(TEXTS, 16))
    batch = {**_batch(), "labels": torch.randint(0, 4, (3, 2, 32, 32), dtype=torch.uint8)}
    out = vlm(batch)
    plain = vlm({k: v for k, v in batch.items() if k != "labels"})
    torch.testing.assert_close(out["loss"], plain["loss"] + 0.5 * out["patch_loss"])
    again = VisionLanguageModel.from_pretrained(vlm.save_pretrained(tmp_path / "v"))
    torch.testing.assert_close(again(batch)["loss"], out["loss"])


def test_sincos_position_init_is_smooth_and_scaled() -> None:
    from vla.vlm.model import location_ids

    cfg = tiny()
    cfg.position_init = "sincos"
    vlm = VisionLanguageModel(cfg, build_tokenizer(TEXTS, 16))
    table = vlm.backbone.vision.embeddings.position_embedding.weight.detach()  # [16 patches, 32]
    sim = torch.nn.functional.normalize(table, dim=1) @ torch.nn.functional.normalize(table, dim=1).T
    assert sim[0, 1] > sim[0, 2] > sim[0, 3]  # along a row, similarity falls with distance
    assert sim[0, 4] > sim[0, 8] > sim[0, 12]  # along a column too
    rows = vlm.backbone.embed_tokens.weight.detach()[location_ids(vlm.text)]  # [16 bins, 32]
    near = torch.cosine_similarity(rows[5], rows[6], dim=0)
    far = torch.cosine_similarity(rows[5], rows[15], dim=0)
    assert near > 0.5 > far
    random = VisionLanguageModel(tiny(), build_tokenizer(TEXTS, 16)).backbone.vision.embeddings
    assert float(random.position_embedding.weight.std()) < 0.5 * float(table.std())  # sincos is louder


def test_attention_probe_and_focus_loss(vlm: VisionLanguageModel) -> None:
    """The probe records proper attention distributions (no mass on padding), and the focus loss is
    -log of the mass on the named object's image tokens: uniform attention over K keys with m target
    tokens gives -log(m / K)."""
    from vla.model.attention import AttentionProbe, Segment, joint_forward
    from vla.vlm.model import focus_loss

    batch = _batch(2)
    prefix, layout = question_prefix(vlm.backbone, vlm.text, batch["images"], batch["prompt"], 8)
    probe = AttentionProbe(torch.full((2,), prefix.shape[1] - 1), [])
    joint_forward([Segment(prefix, vlm.backbone.layers)], layout, vlm.backbone, probe=probe)
    assert len(probe.maps) == len(vlm.backbone.layers)
    for m in probe.maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:2]))
        assert (
            float(m.detach()[:, :, ~layout.valid[0]].abs().sum()) == 0.0
        )  # left padding of sample 0 is masked
    tokens = vlm.backbone.tokens_per_image  # 32 px, patch 8, shuffle 2 -> 4 tokens (2x2) per image
    labels = torch.zeros((2, 2, 32, 32), dtype=torch.uint8)
    labels[0, 0, 0:4, 20:24] = 3  # sample 0: object 3 in image 0, token (0, 1)
    labels[1, 1, 30:32, 0:2] = 3  # sample 1: object 3 in image 1 only, token (1, 0)
    keys = prefix.shape[1]
    uniform = [torch.full((2, 4, keys), 1.0 / keys) for _ in range(3)]
    focus = {
        "labels": labels,
        "image_index": torch.tensor([0, 1]),
        "focus_label": torch.tensor([3, 3]),
        "focus_images": torch.tensor([[True, False], [True, True]]),
    }
    assert tokens == 4
    assert float(focus_loss(vlm.backbone, uniform, focus)) == pytest.approx(-np.log(1 / keys), rel=1e-5)
    # sample 0's object is only looked for in image 0; a map putting all mass on its token costs ~0
    sharp = torch.zeros((2, 4, keys))
    sharp[0, 0, 1], sharp[1, 0, 4 + 2] = 1.0, 1.0
    assert float(focus_loss(vlm.backbone, [sharp, sharp], focus)) < 1e-4


def test_shipped_vlm_loads_knows_the_task_words_and_carries_its_evaluation() -> None:
    """envs/so101/assets/vlm_tiny (what `make demo` fine-tunes from, made by `make vlm`): it loads, is
    small, its tokenizer knows every instruction of the SO-101 tasks, and its eval.json has the keys."""
    import json

    from envs.so101.grounding import GroundingData

    root = Path(__file__).resolve().parents[2] / "envs" / "so101" / "assets" / "vlm_tiny"
    assert sum(p.stat().st_size for p in root.iterdir()) < 10 * 2**20
    vlm = VisionLanguageModel.from_pretrained(root)
    vocab = vlm.text.tokenizer.get_vocab()
    words = {w for text in GroundingData(scenes=4).vocabulary() for w in text.split()}
    assert words and not {w for w in words if w not in vocab and not w.startswith("<loc")}
    ev = json.loads((root / "eval.json").read_text())
    assert {
        "pointing_accuracy",
        "pointing_accuracy_per_camera",
        "answer_accuracy_per_type",
        "examples",
    } <= set(ev)
    assert set(ev["pointing_accuracy_per_camera"]) == {"front", "wrist"}
    meta = json.loads((root / "vlm_config.json").read_text())
    assert meta["config"]["backbone"]["pretrained"] is None  # no path of the machine that made it
