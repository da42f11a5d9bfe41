"""The wire format: numpy arrays round-trip exactly; everything outside the format is a WireError."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest

from vla.serve import wire
from vla.serve.wire import DTYPES, WireError, pack, unpack

PWNED: list[str] = []


def _pwn(tag: str) -> None:
    PWNED.append(tag)


class Evil:
    """Unpickling this would call _pwn: the classic code-execution payload."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_pwn, ("executed",))


@pytest.fixture(autouse=True)
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any use of pickle while decoding is recorded (and fails the test)."""
    calls: list[str] = []

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        calls.append("pickle")
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    yield calls
    assert not calls
    assert not PWNED


def _nd(dtype: str, shape: Any, data: Any) -> dict[str, Any]:
    return {"__nd__": True, "dtype": dtype, "shape": shape, "data": data}


def _raw(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3), (4, 5, 3), (1, 2, 1, 2, 1, 2, 1, 2)])
def test_every_dtype_and_shape_round_trips(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.uniform(-100, 100, size=shape) if shape else np.array(rng.uniform(-100, 100))).astype(dtype)
    out = unpack(pack({"a": arr}))["a"]
    assert out.dtype == np.dtype(dtype)
    assert out.shape == shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable and out.flags.c_contiguous


def test_nested_message_round_trips() -> None:
    msg = {
        "type": "infer",
        "observation": {
            "observation.state": np.arange(6, dtype=np.float32),
            "img": np.zeros((4, 4, 3), np.uint8),
        },
        "task": "pick up the red cube",
        "list": [1, 2.5, None, True, b"raw", "s", [np.int64(3), np.float32(0.5)]],
    }
    out = unpack(pack(msg))
    assert out["task"] == msg["task"]
    np.testing.assert_array_equal(out["observation"]["observation.state"], np.arange(6, dtype=np.float32))
    assert out["list"] == [1, 2.5, None, True, b"raw", "s", [3, 0.5]]


def test_big_endian_and_strided_arrays_are_sent_as_values() -> None:
    big = np.arange(12, dtype=">f4").reshape(3, 4)
    strided = np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2]
    out = unpack(pack({"big": big, "strided": strided}))
    np.testing.assert_array_equal(out["big"], big)
    assert out["big"].dtype == np.float32
    np.testing.assert_array_equal(out["strided"], strided)


@pytest.mark.parametrize(
    "value",
    [
        np.array([object()], dtype=object),
        np.zeros(2, np.complex64),
        np.array(["ab"]),
        np.zeros(2, "V4"),
        {1: 2},
        {3.5},
    ],
)
def test_encoder_refuses_what_the_decoder_would(value: Any) -> None:
    with pytest.raises(WireError):
        pack({"x": value})


def test_encoder_refuses_reserved_key_and_non_dict() -> None:
    with pytest.raises(WireError, match="reserved"):
        pack({"__nd__": 1})
    with pytest.raises(WireError, match="dict"):
        pack([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload, match",
    [
        (pickle.dumps(Evil()), "msgpack"),
        (pickle.dumps({"type": "infer"}), "msgpack"),
        (_raw({"x": _nd("object", [1], pickle.dumps(Evil()))}), "dtype"),
        (_raw({"x": _nd("O", [1], b"\x00" * 8)}), "dtype"),
        (_raw({"x": _nd("<U4", [1], b"\x00" * 16)}), "dtype"),
        (_raw({"x": _nd("complex64", [1], b"\x00" * 8)}), "dtype"),
        (_raw({"x": _nd("V8", [1], b"\x00" * 8)}), "dtype"),
        (_raw({"x": _nd("float32", [3], b"\x00" * 8)}), "needs 12 bytes"),
        (_raw({"x": _nd("float32", [2**40, 2**40], b"\x00" * 8)}), "needs"),
        (_raw({"x": _nd("float32", [-1], b"")}), "non-negative"),
        (_raw({"x": _nd("float32", [True], b"\x00" * 4)}), "non-negative ints"),
        (_raw({"x": _nd("float32", [1.0], b"\x00" * 4)}), "non-negative ints"),
        (_raw({"x": _nd("float32", [1] * 9, b"\x00" * 4)}), "at most 8"),
        (_raw({"x": _nd("float32", "1", b"\x00" * 4)}), "shape"),
        (_raw({"x": _nd("float32", [1], "text")}), "bin"),
        (_raw({"x": {**_nd("float32", [1], b"\x00" * 4), "extra": 1}}), "exactly the keys"),
        (_raw({"x": {"__nd__": False, "dtype": "float32", "shape": [1], "data": b"\x00" * 4}}), "exactly"),
        (_raw({"x": {"__nd__": True}}), "exactly the keys"),
        (_raw([1, 2, 3]), "map"),
        (_raw("infer"), "map"),
        (_raw(None), "map"),
        (_raw({"x": msgpack.ExtType(1, b"payload")}), "ext"),
        (b"\x81\xa1x\xd6\xff\x00\x00\x00\x00", "msgpack"),  # {"x": a msgpack timestamp}
        (_raw({b"bytes-key": 1}), "keys must be str"),
        (_raw({"x": "s" * (wire.DEFAULT_MAX_STRING_BYTES + 1)}), "msgpack"),
        (_raw({"x": list(range(wire.MAX_CONTAINER_LEN + 1))}), "msgpack"),
        (_raw({"x": 1}) + b"\x01", "msgpack"),  # trailing bytes
        (b"", "msgpack"),
        (b"\xc1", "msgpack"),  # never used
        (b"\xdf\xff\xff\xff\xff", "msgpack"),  # a map claiming 4 billion entries
    ],
)
def test_decoder_rejects(payload: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        unpack(payload)


def test_integer_map_key_is_rejected() -> None:
    packed = msgpack.packb({1: 2})
    with pytest.raises(WireError):
        unpack(packed)


def test_deep_nesting_is_rejected() -> None:
    nested: Any = 1
    for _ in range(wire.MAX_DEPTH + 2):
        nested = {"a": nested}
    with pytest.raises(WireError, match="nested deeper"):
        unpack(_raw(nested))
    with pytest.raises(WireError):
        unpack(b"\x91" * 100_000 + b"\x01")  # 100k nested arrays: msgpack's own stack limit


def test_oversize_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pack({"x": np.zeros(1000, np.uint8)})

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded an oversized message")

    monkeypatch.setattr(msgpack, "unpackb", never)
    with pytest.raises(WireError, match="limit is 100"):
        unpack(data, max_message_bytes=100)
    with pytest.raises(WireError, match="limit"):
        pack({"x": np.zeros(1000, np.uint8)}, max_message_bytes=100)


def test_reduce_style_content_stays_data() -> None:
    """A map that looks like a pickle recipe is just a map of plain values: nothing is called."""
    msg = {
        "__reduce__": ["os.system", ["echo pwned"]],
        "__class__": "builtins.eval",
        "p": pickle.dumps(Evil()),
    }
    out = unpack(_raw(msg))
    assert out["__reduce__"] == ["os.system", ["echo pwned"]]
    assert isinstance(out["p"], bytes)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(WireError, match="binary"):
        unpack("text")  # type: ignore[arg-type]
