"""The model options an exact import needs (SmolVLA's today; see vla.importer): each changes what it says
and nothing else, and each default keeps the model as it was."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from tests.model.helpers import TASKS, small_config, toy_batch, toy_stats
from vla.model.backbone import Backbone, resize_with_pad
from vla.model.config import BackboneConfig, ModelConfigError
from vla.model.expert import RMSNorm
from vla.model.tokenizer import TextTokenizer
from vla.model.vla import VLAModel


def _model(*overrides: str, seed: int = 0) -> VLAModel:
    torch.manual_seed(seed)
    return VLAModel(small_config(*overrides), stats=toy_stats(), tasks=TASKS).eval()


def _velocity(model: VLAModel, noise: torch.Tensor) -> torch.Tensor:
    """One denoising step's velocity [B, H, A] at t = 0.5 for the toy batch."""
    inputs = model.prepare_inputs(toy_batch(model.config, with_action=False), training=False)
    from vla.model.prefix import embed_prefix

    prefix, layout = embed_prefix(model.backbone, model.state_proj, inputs)
    assert model.flow is not None
    t = torch.full((noise.shape[0],), 0.5)
    with torch.no_grad():
        return model.flow.velocity(model.backbone, noise, t, layout, prefix=prefix)


def _perturbed_rows(model: VLAModel, row: int) -> torch.Tensor:
    """Which action rows' velocities change when only row `row` of the noisy chunk changes -> [H] bool."""
    cfg = model.config
    noise = torch.randn(2, cfg.chunk_size, cfg.max_action_dim, generator=torch.Generator().manual_seed(1))
    moved = noise.clone()
    moved[:, row] += 1.0
    return (_velocity(model, moved) - _velocity(model, noise)).abs().amax(dim=(0, 2)) > 1e-6


def test_cross_attention_layers_every_nth() -> None:
    model = _model("expert.self_attn_every=2")
    assert model.flow is not None
    layers = model.flow.expert.layers
    assert [layer.cross for layer in layers] == [False, True]
    kv = model.backbone.num_kv_heads * model.backbone.head_dim
    assert layers[1].self_attn.k_proj.in_features == kv  # projects the backbone's keys
    assert layers[0].self_attn.k_proj.in_features == model.flow.expert.width
    assert not any(layer.cross for layer in _model().flow.expert.layers)  # default: all joint


def test_cross_attention_only_expert_never_mixes_action_tokens() -> None:
    # Cross layers attend to the prefix alone, and MLPs are per token: one row's noise moves only its row.
    assert _perturbed_rows(_model("expert.self_attn_every=0"), row=3).tolist() == [i == 3 for i in range(8)]
    assert _perturbed_rows(_model("expert.self_attn_every=1"), row=3).all()


def test_causal_actions_hide_later_actions() -> None:
    causal = _perturbed_rows(_model("causal_actions=true"), row=5)
    assert causal.tolist() == [i >= 5 for i in range(8)]
    assert _perturbed_rows(_model(), row=5).all()  # default: all-to-all within the chunk


def test_cached_equals_uncached_with_every_import_option() -> None:
    model = _model(
        "expert.self_attn_every=2",
        "expert.llama_norm=true",
        "causal_actions=true",
        "backbone.embed_scale=true",
        "backbone.fixed_rope_theta=10000.0",
        "backbone.image_resize=smolvla",
        "image_size=[40,56]",
    )
    batch = toy_batch(model.config, with_action=False)
    noise = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(2))
    cached = model.sample_actions(batch, noise=noise, use_cache=True)
    uncached = model.sample_actions(batch, noise=noise, use_cache=False)
    torch.testing.assert_close(cached, uncached, rtol=1e-5, atol=1e-5)


def test_embed_scale_multiplies_image_and_text_embeddings() -> None:
    plain, scaled = _model(), _model("backbone.embed_scale=true")
    scaled.load_state_dict(plain.state_dict())
    root = math.sqrt(plain.backbone.hidden_size)
    ids = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(scaled.backbone.embed_text(ids), root * plain.backbone.embed_text(ids))
    pixels = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(
        scaled.backbone.embed_images(pixels), root * plain.backbone.embed_images(pixels)
    )


def test_fixed_rope_theta_overrides_the_backbones_own() -> None:
    fields = {"hidden_size": 64, "layers": 1, "heads": 4, "kv_heads": 2, "intermediate_size": 64}
    own_1e4 = Backbone.create(BackboneConfig(**fields, rope_theta=1e4))
    fixed = Backbone.create(BackboneConfig(**fields, rope_theta=1e5, fixed_rope_theta=1e4))
    own_1e5 = Backbone.create(BackboneConfig(**fields, rope_theta=1e5))
    positions = torch.arange(40)[None].repeat(2, 1)
    ref = torch.zeros(1)
    for got, want in zip(fixed.rope(ref, positions), own_1e4.rope(ref, positions), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    assert not torch.allclose(fixed.rope(ref, positions)[1], own_1e5.rope(ref, positions)[1], atol=1e-3)


def test_llama_norm_multiplies_by_the_weight() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    x = torch.randn(2, 5, 16)
    plain, gemma, llama = RMSNorm(16, 1e-5, plain=True), RMSNorm(16, 1e-5), LlamaRMSNorm(16, eps=1e-5)
    assert torch.equal(plain.weight, torch.ones(16)) and torch.equal(gemma.weight, torch.zeros(16))
    with torch.no_grad():
        w = torch.rand(16) + 0.5
        plain.weight.copy_(w)
        llama.weight.copy_(w)
        gemma.weight.copy_(w)
    torch.testing.assert_close(plain(x)[0], llama(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gemma(x)[0], llama(x) * (1 + w) / w, rtol=1e-5, atol=1e-5)
    model = _model("expert.llama_norm=true")
    assert model.flow is not None and model.flow.expert.norm.plain


def test_family_resizes_pad_where_their_family_pads() -> None:
    x = torch.rand(1, 3, 16, 32) * 0.5 + 0.25  # wide: 16 rows of padding at 32x32
    default, smolvla, pi0 = (resize_with_pad(x, 32, mode) for mode in ("default", "smolvla", "pi0"))
    assert (default[..., 16:, :] == 0).all() and (default[..., :16, :] > 0).all()  # bottom
    assert (smolvla[..., :16, :] == 0).all() and (smolvla[..., 16:, :] > 0).all()  # top
    assert (pi0[..., :8, :] == 0).all() and (pi0[..., 24:, :] == 0).all() and (pi0[..., 8:24, :] > 0).all()
    with pytest.raises(ModelConfigError, match="image_resize"):
        small_config("backbone.image_resize=stretch")


def _newline_tokenizer() -> TextTokenizer:
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", "\n", "pick", "up", "the", "cube"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(  # type: ignore[assignment]
        [pre_tokenizers.Split(" ", behavior="removed"), pre_tokenizers.Split("\n", behavior="isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])  # type: ignore[assignment]
    return TextTokenizer(tok, pad_id=0, bos_id=2, eos_id=3, source="test")


def test_task_newline_prompts_use_the_tokenizers_own_specials() -> None:
    tok = _newline_tokenizer()
    ids, valid = tok.encode_prompts(["pick up the cube", "pick up_the cube\n"], None, 8, "task_newline")
    assert ids[0][valid[0]].tolist() == [2, 5, 6, 7, 8, 4]  # <s> from the post-processor, then "\n"
    assert ids[1][valid[1]].tolist() == [2, 5, 1, 8, 4]  # as given: no underscore rewriting, one "\n"
    ids, valid = tok.encode_prompts(["pick up the cube"], None, 4, "task_newline")
    assert ids[0][valid[0]].tolist() == [2, 5, 6, 7]  # truncated, the special token kept
    ids, valid = tok.encode_prompts(["pick up the cube"], None, 8)  # default bos_task: unchanged
    assert ids[0][valid[0]].tolist() == [2, 5, 6, 7, 8]
    with pytest.raises(ModelConfigError, match="prompt_format"):
        small_config("prompt_format=task_newline", "state_mode=discrete")


def test_missing_cameras_masked_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from vla.model.batch import BatchError

    strict, masked = _model(), _model("missing_cameras=mask")
    masked.load_state_dict(strict.state_dict())
    batch = toy_batch(strict.config, with_action=False)
    noise = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(3))
    full = strict.sample_actions(dict(batch), noise=noise)
    torch.testing.assert_close(masked.sample_actions(dict(batch), noise=noise), full)  # all there: as before
    lacking = {k: v for k, v in batch.items() if k != "observation.images.wrist"}
    with pytest.raises(BatchError, match=r"observation\.images\.wrist: missing camera"):
        strict.sample_actions(dict(lacking), noise=noise)
    with caplog.at_level("WARNING"):
        first = masked.sample_actions(dict(lacking), noise=noise)
        masked.sample_actions(dict(lacking), noise=noise)
    assert sum("masked out" in r.getMessage() for r in caplog.records) == 1
    assert not torch.allclose(first, full, atol=1e-4)
    other = dict(batch, **{"observation.images.wrist": torch.rand(2, 3, 48, 48)})  # masked: never seen
    torch.testing.assert_close(
        masked.sample_from_inputs(_masked(masked, other), noise=noise),
        masked.sample_from_inputs(_masked(masked, batch), noise=noise),
    )
    with pytest.raises(BatchError, match="missing camera"):
        masked.sample_actions({k: v for k, v in lacking.items() if k != "observation.images.top"})


def _masked(model: VLAModel, batch: dict) -> object:
    """The batch's inputs with the wrist camera marked missing."""
    inputs = model.prepare_inputs(dict(batch), training=False)
    assert inputs.image_valid is not None
    inputs.image_valid = inputs.image_valid.clone()
    inputs.image_valid[:, 1] = False
    return inputs


def test_pi05_prompt_format_writes_the_digitized_state_into_the_prompt() -> None:
    from vla.model.tokenizer import digitize_state, pi05_prompt

    model = _model("state_mode=discrete", "prompt_format=pi05", "max_text_tokens=24")
    batch = toy_batch(model.config, with_action=False)
    inputs = model.prepare_inputs(batch)
    words = digitize_state(model.normalizer.normalize_state(batch["observation.state"]), 256)
    for i, task in enumerate(batch["task"]):
        want = model.text_tokenizer.encode_prompts([task], [words[i]], 24, "pi05")
        assert inputs.text_ids[i].tolist() == want[0][0].tolist()
        assert pi05_prompt(task, words[i]).endswith(";\nAction: ")
    bos = _model("state_mode=discrete", "max_text_tokens=24").prepare_inputs(batch)
    assert not torch.equal(bos.text_ids, inputs.text_ids)
    with pytest.raises(ModelConfigError, match="prompt_format"):
        small_config("prompt_format=pi05")  # continuous state: nothing to write into the prompt


def test_state_token_in_the_expert_stream() -> None:
    prefix_model, expert_model = _model(), _model("state_token=expert")
    assert expert_model.flow is not None and expert_model.state_proj is not None
    assert expert_model.state_proj.proj.out_features == expert_model.flow.expert.width  # expert's width
    assert _model().state_proj.proj.out_features == prefix_model.backbone.hidden_size  # default: as before
    batch = toy_batch(expert_model.config, with_action=False)
    noise = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(3))
    cached = expert_model.sample_actions(dict(batch), noise=noise, use_cache=True)
    torch.testing.assert_close(expert_model.sample_actions(dict(batch), noise=noise, use_cache=False), cached)
    inputs = expert_model.prepare_inputs(dict(batch))
    cache, layout = expert_model.encode_observation(inputs)
    _, prefix_layout = expert_model.embed_prefix_fn(expert_model.backbone, None, inputs)
    assert len(layout) == len(prefix_layout) + 1  # the prefix plus the state token, cached once
    assert cache.keys[0].shape[2] == len(layout)
    moved = dict(batch, **{"observation.state": batch["observation.state"] + 1.0})
    assert not torch.allclose(expert_model.sample_actions(moved, noise=noise), cached, atol=1e-4)
    # The same weights everywhere else, the state token moved to the prefix: a different model.
    shared = {k: v for k, v in expert_model.state_dict().items() if not k.startswith("state_proj.")}
    prefix_model.load_state_dict(shared, strict=False)
    assert not torch.allclose(prefix_model.sample_actions(dict(batch), noise=noise), cached, atol=1e-4)
    loss = expert_model(toy_batch(expert_model.config))["loss"]
    assert torch.isfinite(loss)
    with pytest.raises(ModelConfigError, match="state_token"):
        small_config("state_token=expert", "expert.self_attn_every=2")


def test_keep_fp32_keeps_lerobots_float32_parts_under_a_bf16_cast() -> None:
    fields = ("backbone.family=paligemma", "backbone.kv_heads=1", "state_token=expert")
    plain, kept = _model(*fields), _model(*fields, "keep_fp32=true")
    kept.load_state_dict(plain.state_dict())
    batch = toy_batch(plain.config, with_action=False)
    noise = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        kept.sample_actions(dict(batch), noise=noise), plain.sample_actions(dict(batch), noise=noise)
    )
    plain, kept = plain.to(torch.bfloat16), kept.to(torch.bfloat16)
    assert kept.flow is not None and kept.state_proj is not None
    fp32 = [
        kept.backbone.vision.parameters(),
        kept.backbone.projector.parameters(),
        kept.backbone.layers[0].input_layernorm.parameters(),
        kept.flow.expert.layers[1].post_attention_layernorm.parameters(),
        kept.flow.expert.action_out.parameters(),
        kept.state_proj.parameters(),
    ]
    assert {p.dtype for group in fp32 for p in group} == {torch.float32}
    assert kept.backbone.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert kept.flow.expert.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert {p.dtype for p in plain.parameters()} == {torch.bfloat16}  # default: everything cast
    ours = kept.sample_actions(dict(batch), noise=noise)
    assert torch.isfinite(ours).all()
    assert not torch.equal(ours, plain.sample_actions(dict(batch), noise=noise))
    with pytest.raises(ModelConfigError, match="keep_fp32"):
        small_config("keep_fp32=true")  # smolvlm: its Llama norms do not compute in float32


def test_expert_state_token_with_several_flow_draws_per_observation() -> None:
    # flow_samples > 1 caches the prefix and the state token once, then draws: the loss equals the
    # plain pass on the batch repeated, and gradients reach the state projection.
    one = _model("state_token=expert")
    two = _model("state_token=expert", "flow_samples=2")
    two.load_state_dict(one.state_dict())
    batch = toy_batch(one.config)
    g = torch.Generator().manual_seed(1)
    noise, t = torch.randn(4, 8, 8, generator=g), torch.rand(4, generator=g)
    drawn = two.loss_from_inputs(two.prepare_inputs(batch, training=True), noise=noise, t=t)["loss"]
    repeated = {
        k: v.repeat_interleave(2, 0) if torch.is_tensor(v) else [x for x in v for _ in range(2)]
        for k, v in batch.items()
    }
    plain = one.loss_from_inputs(one.prepare_inputs(repeated, training=True), noise=noise, t=t)["loss"]
    torch.testing.assert_close(drawn, plain)
    drawn.backward()
    assert two.state_proj is not None and two.state_proj.proj.weight.grad is not None
    assert float(two.state_proj.proj.weight.grad.abs().sum()) > 0


def test_one_observation_to_tensor_conversion() -> None:
    """uint8 HWC frames (numpy or tensor, with leading dims) -> float CHW in [0, 1]; state -> float32."""
    import numpy as np

    from vla.model.batch import image_tensor, state_tensor

    frames = np.arange(2 * 4 * 5 * 3, dtype=np.int64).reshape(2, 4, 5, 3).astype(np.uint8)
    out = image_tensor(frames)
    assert out.dtype == torch.float32 and tuple(out.shape) == (2, 3, 4, 5)
    assert torch.equal(out[1, 2, 3, 4], torch.tensor(float(frames[1, 3, 4, 2]) / 255.0))
    assert torch.equal(image_tensor(torch.from_numpy(frames[0])), out[0])
    assert float(image_tensor(np.full((1, 1, 3), 255, np.uint8)).max()) == 1.0
    state = state_tensor([1, 2.5])
    assert state.dtype == torch.float32 and state.tolist() == [1.0, 2.5]
