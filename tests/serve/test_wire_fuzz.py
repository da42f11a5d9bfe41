"""Fuzzing the decoder and the request parser: any bytes give a message or a WireError, nothing else."""

from __future__ import annotations

import contextlib
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vla.serve.protocol import ProtocolError, parse_request
from vla.serve.wire import DTYPES, WireError, pack, unpack

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 64 * 1024

arrays = st.sampled_from(list(DTYPES)).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=4, max_side=5))
)
leaves: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20)
)
leaves = leaves | st.binary(max_size=20) | arrays
trees = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
messages = st.dictionaries(st.text(max_size=8), trees, max_size=5)
VALID = pack(
    {
        "type": "infer",
        "observation": {
            "observation.state": np.arange(6, dtype=np.float32),
            "img": np.ones((2, 2, 3), np.uint8),
        },
        "task": "pick",
        "guided": {"prev_chunk": np.zeros((4, 6), np.float32), "inference_delay": 1, "execution_horizon": 2},
    }
)


@pytest.fixture(autouse=True)
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> Any:
    calls: list[str] = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append("loads"))
    monkeypatch.setattr(pickle, "Unpickler", lambda *a, **k: calls.append("Unpickler"))
    yield
    assert not calls, "the decoder used pickle"


def _decode_or_wire_error(data: bytes) -> None:
    try:
        msg = unpack(data, max_message_bytes=LIMIT)
    except WireError:
        return
    assert isinstance(msg, dict)
    with contextlib.suppress(ProtocolError):  # the parser names the problem or accepts the request
        parse_request(msg)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_or_wire_error(data)


@FUZZ
@given(st.integers(0, len(VALID) - 1))
def test_truncated_valid_message(cut: int) -> None:
    with pytest.raises(WireError):
        unpack(VALID[:cut], max_message_bytes=LIMIT)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_valid_message(edits: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for pos, byte in edits:
        data[pos] = byte
    _decode_or_wire_error(bytes(data))


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, len(VALID)))
def test_spliced_valid_message(junk: bytes, at: int) -> None:
    _decode_or_wire_error(VALID[:at] + junk + VALID[at:])


@FUZZ
@given(messages)
def test_any_encodable_message_round_trips(msg: dict[str, Any]) -> None:
    try:
        data = pack(msg, max_message_bytes=LIMIT)
    except WireError:
        return  # too big, or a reserved key the strategy happened to draw
    out = unpack(data, max_message_bytes=LIMIT)
    assert pack(out, max_message_bytes=LIMIT) == data
