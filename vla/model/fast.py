"""FAST action tokenizer: a chunk of normalised actions <-> a short list of discrete token ids.

After Pertsch et al. 2025, "FAST: Efficient Action Tokenization for Vision-Language-Action Models":
DCT along time per action dimension, scale and round, flatten low frequencies first, then byte-pair
encode the integers. Smooth chunks have few non-zero coefficients, so BPE squeezes the long runs of
zeros into a handful of tokens.

Each quantised integer becomes one character of a private-use Unicode block, so the BPE (Hugging Face
`tokenizers`) works on plain strings and saves as a standard `tokenizer.json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, trainers

from vla.io import write_text_atomic

_SYMBOL_BASE = 0xE000  # Unicode private-use area: no normaliser or pre-tokenizer touches these
_SYMBOL_COUNT = 0xF8FF - 0xE000 + 1
_FORMAT = "vla-fast-tokenizer"
_FORMAT_VERSION = 1
_CONFIG_FILE = "fast_config.json"
_TOKENIZER_FILE = "tokenizer.json"


class FASTDecodeError(ValueError):
    """A token sequence that does not describe exactly one action chunk (raised by strict decoding)."""


def dct_matrix(horizon: int) -> np.ndarray:
    """Orthonormal DCT-II matrix D [H, H]: coefficients = D @ signal, signal = D.T @ coefficients."""
    n = np.arange(horizon)
    d = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * horizon)) * math.sqrt(2.0 / horizon)
    d[0] /= math.sqrt(2.0)
    return d  # [H(freq), H(time)]


def _check_chunks(chunks: np.ndarray, name: str, ndim: int, shape: tuple[int, int] | None) -> np.ndarray:
    arr = np.asarray(chunks)
    if arr.ndim != ndim:
        want = "[N, H, A]" if ndim == 3 else "[H, A]"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    if shape is not None and arr.shape[-2:] != shape:
        raise ValueError(f"{name} must have (horizon, action_dim) = {shape}, got {arr.shape[-2:]}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~np.isfinite(arr)).sum())} values)")
    return arr


class FASTTokenizer:
    """DCT + quantisation + BPE. Build with `fit` or `load`; ids are in [0, vocab_size)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        horizon: int,
        action_dim: int,
        scale: float,
        min_value: int,
        max_value: int,
    ) -> None:
        if horizon < 1 or action_dim < 1 or not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"bad FAST config: horizon={horizon}, action_dim={action_dim}, scale={scale}")
        if not 0 < max_value - min_value + 1 <= _SYMBOL_COUNT:
            raise ValueError(f"bad FAST alphabet range [{min_value}, {max_value}]")
        self.horizon = horizon
        self.action_dim = action_dim
        self.scale = float(scale)
        self.min_value = min_value  # integer range of the BPE's base alphabet
        self.max_value = max_value
        self._tokenizer = tokenizer
        self._dct = dct_matrix(horizon)  # [H, H]
        # id -> the quantised integers it stands for; built once so decoding never calls into the BPE.
        vocab = tokenizer.get_vocab()
        self._id_values: list[tuple[int, ...]] = [()] * (max(vocab.values(), default=-1) + 1)
        for token, idx in vocab.items():
            values = tuple(ord(c) - _SYMBOL_BASE + min_value for c in token)
            if not all(min_value <= v <= max_value for v in values):
                raise ValueError(f"tokenizer token {token!r} (id {idx}) is not a FAST symbol string")
            self._id_values[idx] = values

    # ---------------------------------------------------------------- fitting

    @classmethod
    def fit(cls, chunks: np.ndarray, vocab_size: int = 1024, scale: float = 10.0) -> FASTTokenizer:
        """chunks: [N, H, A] normalised actions. Fits the BPE. Raises ValueError on bad shapes / NaN."""
        arr = _check_chunks(chunks, "chunks", 3, None)  # [N, H, A]
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        _, horizon, action_dim = arr.shape
        coeffs = np.rint(np.einsum("fh,nha->nfa", dct_matrix(horizon), arr) * scale)  # [N, H, A]
        lo, hi = int(coeffs.min()), int(coeffs.max())
        # Margin so held-out chunks a little outside the training range still encode exactly.
        margin = max(8, math.ceil(0.2 * (hi - lo)))
        lo, hi = lo - margin, hi + margin
        n_symbols = hi - lo + 1
        if n_symbols > _SYMBOL_COUNT:
            raise ValueError(f"{n_symbols} quantisation levels exceed {_SYMBOL_COUNT}: lower scale={scale}")
        if vocab_size < n_symbols:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the {n_symbols} base symbols the data needs "
                f"(integers {lo}..{hi} at scale={scale}): raise vocab_size or lower scale"
            )
        alphabet = [chr(_SYMBOL_BASE + i) for i in range(n_symbols)]
        tokenizer = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=alphabet, special_tokens=[], show_progress=False
        )
        strings = [_to_string(c, lo) for c in coeffs.reshape(len(arr), -1).astype(np.int64)]
        tokenizer.train_from_iterator(strings, trainer=trainer, length=len(strings))
        return cls(tokenizer, horizon, action_dim, scale, lo, hi)

    @property
    def vocab_size(self) -> int:
        """Number of ids; may be below the requested size when the data allows no more merges."""
        return len(self._id_values)

    # ---------------------------------------------------------------- encoding

    def _quantise(self, chunks: np.ndarray) -> np.ndarray:
        """[B, H, A] actions -> [B, H*A] integers, low frequencies first, clipped to the alphabet."""
        coeffs = np.einsum("fh,bha->bfa", self._dct, chunks) * self.scale  # [B, H(freq), A]
        coeffs = np.clip(np.rint(coeffs), self.min_value, self.max_value).astype(np.int64)
        return coeffs.reshape(len(chunks), -1)  # [B, H*A]: freq0 of all dims, freq1 of all dims, ...

    def encode(self, chunk: np.ndarray) -> list[int]:
        """chunk [H, A] -> token ids."""
        arr = _check_chunks(chunk, "chunk", 2, (self.horizon, self.action_dim))
        return self.encode_batch(arr[None])[0]

    def encode_batch(self, chunks: np.ndarray) -> list[list[int]]:
        """chunks [B, H, A] -> one id list per chunk (lengths differ)."""
        arr = _check_chunks(chunks, "chunks", 3, (self.horizon, self.action_dim))
        strings = [_to_string(row, self.min_value) for row in self._quantise(arr)]
        return [list(e.ids) for e in self._tokenizer.encode_batch(strings)]

    # ---------------------------------------------------------------- decoding

    def decode(self, ids: Sequence[int], strict: bool = False) -> np.ndarray:
        """Token ids -> chunk [H, A] float32.

        Lenient (default): unknown ids are dropped, missing coefficients (a truncated sequence) are
        zero, i.e. the high frequencies are lost, and extra ones are cut. The result is always finite.
        strict=True raises FASTDecodeError instead of repairing.
        """
        n = self.horizon * self.action_dim
        values: list[int] = []
        for pos, raw in enumerate(ids):
            idx = int(raw)
            if 0 <= idx < len(self._id_values):
                values.extend(self._id_values[idx])
            elif strict:
                raise FASTDecodeError(f"token id {idx} at position {pos} is outside [0, {self.vocab_size})")
        if strict and len(values) != n:
            raise FASTDecodeError(
                f"tokens decode to {len(values)} coefficients, a ({self.horizon}, {self.action_dim}) chunk "
                f"needs {n}: the sequence is {'truncated' if len(values) < n else 'too long'}"
            )
        flat = np.zeros(n, dtype=np.float64)  # [H*A]
        kept = values[:n]
        flat[: len(kept)] = kept
        coeffs = flat.reshape(self.horizon, self.action_dim) / self.scale  # [H(freq), A]
        return (self._dct.T @ coeffs).astype(np.float32)  # [H, A]

    def decode_batch(self, ids: Sequence[Sequence[int]], strict: bool = False) -> np.ndarray:
        """One id sequence per chunk -> [B, H, A] float32."""
        out = np.zeros((len(ids), self.horizon, self.action_dim), dtype=np.float32)
        for b, seq in enumerate(ids):
            out[b] = self.decode(seq, strict=strict)
        return out

    # ---------------------------------------------------------------- files

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json (the BPE) and fast_config.json into `directory` (JSON only)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "horizon": self.horizon,
            "action_dim": self.action_dim,
            "scale": self.scale,
            "min_value": self.min_value,
            "max_value": self.max_value,
        }
        write_text_atomic(path / _TOKENIZER_FILE, self._tokenizer.to_str())
        write_text_atomic(path / _CONFIG_FILE, json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> FASTTokenizer:
        """Read a directory written by `save`. Raises ValueError if the files are not a FAST tokenizer."""
        path = Path(directory)
        config = json.loads((path / _CONFIG_FILE).read_text())
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise ValueError(f"{path / _CONFIG_FILE} is not a FAST tokenizer config (format != {_FORMAT!r})")
        if config.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path / _CONFIG_FILE}: unsupported version {config.get('version')!r}")
        try:
            ints = {k: int(config[k]) for k in ("horizon", "action_dim", "min_value", "max_value")}
            scale = float(config["scale"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path / _CONFIG_FILE}: missing or malformed field {e}") from e
        tokenizer = Tokenizer.from_file(str(path / _TOKENIZER_FILE))
        return cls(tokenizer, scale=scale, **ints)


def _to_string(values: np.ndarray, min_value: int) -> str:
    """[H*A] integers (already within the alphabet) -> one symbol per integer."""
    return "".join(map(chr, (values - min_value + _SYMBOL_BASE).tolist()))
