"""FAST action tokenizer: round trip, compression, malformed sequences, save/load, input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.model.fast import FASTDecodeError, FASTTokenizer, dct_matrix

H, A = 50, 7
ACTION_RANGE = 2.0  # normalised actions live in [-1, 1]


def smooth_chunks(rng: np.random.Generator, n: int, noise: float = 0.002) -> np.ndarray:
    """[n, H, A] realistic chunks: an offset plus three low-frequency sinusoids plus sensor noise."""
    t = np.linspace(0.0, 1.0, H)[None, :, None]
    out = rng.uniform(-0.4, 0.4, (n, 1, A)) + np.zeros((n, H, A))
    for k in range(1, 4):
        amp = rng.uniform(-0.3, 0.3, (n, 1, A)) / k
        freq = rng.uniform(0.2, 1.5, (n, 1, A)) * k
        out += amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1, A)))
    out += noise * rng.standard_normal(out.shape)
    return np.clip(out, -1.0, 1.0)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return smooth_chunks(rng, 400), smooth_chunks(rng, 100)  # train, held out


@pytest.fixture(scope="module")
def tok(data: tuple[np.ndarray, np.ndarray]) -> FASTTokenizer:
    return FASTTokenizer.fit(data[0])  # defaults: vocab 1024, scale 10


def test_dct_matrix_is_orthonormal() -> None:
    d = dct_matrix(H)
    np.testing.assert_allclose(d @ d.T, np.eye(H), atol=1e-12)


def test_round_trip_default_scale(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    held_out = data[1]
    ids = tok.encode_batch(held_out)
    err = np.abs(tok.decode_batch(ids) - held_out)
    # Scale 10 rounds each DCT coefficient to 0.1: ~0.5% mean error, a few % at worst.
    assert err.mean() <= 0.01 * ACTION_RANGE, f"mean abs error {err.mean():.4f}"
    assert err.max() <= 0.05 * ACTION_RANGE, f"max abs error {err.max():.4f}"
    assert all(0 <= i < tok.vocab_size for seq in ids for i in seq)
    assert tok.vocab_size == 1024


def test_round_trip_within_one_percent_at_fine_scale(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, held_out = data
    tok = FASTTokenizer.fit(train, vocab_size=2048, scale=100.0)
    ids = tok.encode_batch(held_out)
    err = np.abs(tok.decode_batch(ids) - held_out).max()
    assert err <= 0.01 * ACTION_RANGE, f"max abs error {err:.4f} > 1% of the action range"
    ratio = np.mean([len(s) for s in ids]) / (H * A)
    assert ratio < 0.4, f"tokens per coefficient {ratio:.3f}"


def test_compression(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    lengths = [len(s) for s in tok.encode_batch(data[1])]
    ratio = np.mean(lengths) / (H * A)
    assert ratio < 0.15, f"mean {np.mean(lengths):.1f} tokens for {H * A} values (ratio {ratio:.3f})"
    assert max(lengths) < 0.25 * H * A, f"longest sequence {max(lengths)} tokens"


def test_single_and_batch_agree(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    chunks = data[1][:5]
    batch = tok.encode_batch(chunks)
    assert batch == [tok.encode(c) for c in chunks]
    decoded = tok.decode_batch(batch)
    assert decoded.shape == (5, H, A) and decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded[2], tok.decode(batch[2]))


def test_out_of_range_values_are_clipped(tok: FASTTokenizer) -> None:
    chunk = np.full((H, A), 50.0)  # far outside anything seen in fitting
    out = tok.decode(tok.encode(chunk), strict=True)
    assert np.isfinite(out).all() and out.shape == (H, A)
    expected = tok.max_value / tok.scale / np.sqrt(H)  # the DC coefficient clipped to the alphabet's top
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_truncated_sequence_is_a_low_pass(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    chunk = data[1][0]
    ids = tok.encode(chunk)
    prefix = ids[: len(ids) // 2]
    with pytest.raises(FASTDecodeError, match="truncated"):
        tok.decode(prefix, strict=True)
    out = tok.decode(prefix)
    assert out.shape == (H, A) and np.isfinite(out).all()
    # The decoded prefix is exactly the chunk with its first m coefficients (FAST order) kept.
    d = dct_matrix(H)
    q = np.clip(np.rint(d @ chunk * tok.scale), tok.min_value, tok.max_value).ravel()  # [H*A]
    matches = [m for m in range(H * A) if np.allclose(out, d.T @ _keep(q, m) / tok.scale, atol=1e-5)]
    assert matches and 0 < matches[0] < H * A
    err_trunc = np.abs(out - chunk).mean()
    err_zero = np.abs(chunk).mean()
    assert err_trunc < 0.5 * err_zero, f"truncated {err_trunc:.4f} vs zeros {err_zero:.4f}"


def _keep(q: np.ndarray, m: int) -> np.ndarray:
    kept = np.where(np.arange(q.size) < m, q, 0.0)
    return kept.reshape(H, A)


def test_over_long_sequence_is_cut(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    ids = tok.encode(data[1][1])
    longer = ids + tok.encode(data[1][2])
    np.testing.assert_array_equal(tok.decode(longer), tok.decode(ids))
    with pytest.raises(FASTDecodeError, match="too long"):
        tok.decode(longer, strict=True)


@pytest.mark.parametrize(
    "bad",
    [[], [-1], [10**9], [-5, 3, 2**40], list(range(-3, 3))],
    ids=["empty", "neg", "huge", "mix", "span"],
)
def test_garbage_ids(tok: FASTTokenizer, bad: list[int]) -> None:
    out = tok.decode(bad)
    assert out.shape == (H, A) and out.dtype == np.float32 and np.isfinite(out).all()
    with pytest.raises(FASTDecodeError):
        tok.decode(bad, strict=True)


def test_unknown_ids_are_dropped(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    ids = tok.encode(data[1][3])
    noisy = [-1, *ids[:3], tok.vocab_size, *ids[3:], 10**12]
    np.testing.assert_array_equal(tok.decode(noisy), tok.decode(ids))
    with pytest.raises(FASTDecodeError, match="outside"):
        tok.decode(noisy, strict=True)
    assert tok.decode_batch([noisy, []]).shape == (2, H, A)


@settings(max_examples=150, deadline=None)
@given(ids=st.lists(st.one_of(st.integers(0, 1100), st.integers(-(2**63), 2**63)), max_size=400))
def test_any_ids_decode_to_a_finite_chunk(tok: FASTTokenizer, ids: list[int]) -> None:
    out = tok.decode(ids)
    assert out.shape == (H, A) and out.dtype == np.float32 and np.isfinite(out).all()


def test_save_load(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    tok.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast_config.json", "tokenizer.json"]
    for p in tmp_path.iterdir():
        json.loads(p.read_text())  # JSON only, nothing pickled
    loaded = FASTTokenizer.load(tmp_path)
    assert (loaded.horizon, loaded.action_dim, loaded.scale, loaded.vocab_size) == (
        tok.horizon,
        tok.action_dim,
        tok.scale,
        tok.vocab_size,
    )
    ids = tok.encode_batch(data[1])
    assert loaded.encode_batch(data[1]) == ids
    np.testing.assert_array_equal(loaded.decode_batch(ids), tok.decode_batch(ids))


def test_load_rejects_foreign_config(tok: FASTTokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path)
    (tmp_path / "fast_config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a FAST tokenizer"):
        FASTTokenizer.load(tmp_path)


def test_bad_inputs(tok: FASTTokenizer, data: tuple[np.ndarray, np.ndarray]) -> None:
    train = data[0]
    with pytest.raises(ValueError, match=r"\[N, H, A\]"):
        FASTTokenizer.fit(train[0])
    nan = train[:10].copy()
    nan[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FASTTokenizer.fit(nan)
    with pytest.raises(ValueError, match="empty"):
        FASTTokenizer.fit(np.zeros((0, H, A)))
    with pytest.raises(ValueError, match="scale"):
        FASTTokenizer.fit(train[:10], scale=0.0)
    with pytest.raises(ValueError, match="vocab_size"):
        FASTTokenizer.fit(train[:10], vocab_size=16)
    with pytest.raises(ValueError, match=r"\(horizon, action_dim\)"):
        tok.encode(np.zeros((H, A + 1)))
    with pytest.raises(ValueError, match=r"\[H, A\]"):
        tok.encode(np.zeros((1, H, A)))
    with pytest.raises(ValueError, match="NaN or inf"):
        tok.encode(np.full((H, A), np.inf))
    with pytest.raises(ValueError, match=r"\(horizon, action_dim\)"):
        tok.encode_batch(np.zeros((2, H - 1, A)))
