"""The wire format: msgpack maps whose leaves may be numpy arrays. Never pickle.

An array travels as a map with exactly these keys, all little-endian and C-contiguous:

    {"__nd__": True, "dtype": "float32", "shape": [50, 6], "data": <bin: 50*6*4 bytes>}

Only the dtypes in `DTYPES` are accepted (no object, void, string or structured dtypes), and the byte
length must equal `prod(shape) * itemsize`. Everything else in a message is plain msgpack: nil, bool,
int, float, str, bin, arrays and maps with str keys. msgpack ext types (which is where other codecs hide
pickled objects), timestamps and non-str map keys are rejected, as are messages over
`max_message_bytes` (checked before any decoding), strings over `max_string_bytes`, containers nested
deeper than `MAX_DEPTH` and non-map top levels. Every decoding failure raises `WireError`.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_STRING_BYTES = 64 * 1024
MAX_DEPTH = 8  # the protocol nests 3 deep (message → observation → array); leave room, refuse abuse
MAX_CONTAINER_LEN = 4096  # items in one msgpack array or map: the protocol's are tiny
MAX_NDIM = 8

# Wire dtype name → numpy dtype, explicitly little-endian.
DTYPES: dict[str, np.dtype] = {
    "bool": np.dtype("|b1"),
    "uint8": np.dtype("|u1"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
# (kind, itemsize) → wire name: any byte order is accepted when sending, and converted.
_NAMES = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items()}
ND_KEYS = frozenset({"__nd__", "dtype", "shape", "data"})


class WireError(ValueError):
    """A message that is not valid on the wire: too big, not msgpack, or not our schema."""


# ---------------------------------------------------------------------------------------------- encode


def _encode_array(arr: np.ndarray) -> dict[str, Any]:
    name = _NAMES.get((arr.dtype.kind, arr.dtype.itemsize))
    if name is None:
        raise WireError(f"dtype {arr.dtype} cannot be sent; allowed: {', '.join(DTYPES)}")
    if arr.ndim > MAX_NDIM:
        raise WireError(f"array with {arr.ndim} dimensions; at most {MAX_NDIM}")
    data = np.ascontiguousarray(arr, dtype=DTYPES[name]).tobytes()
    return {"__nd__": True, "dtype": name, "shape": list(arr.shape), "data": data}


def _to_wire(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, np.generic):
        return _to_wire(value.item(), depth)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise WireError(f"map keys must be str, got {type(k).__name__}")
            if k == "__nd__":
                raise WireError("'__nd__' is a reserved key")
            out[k] = _to_wire(v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_to_wire(v, depth + 1) for v in value]
    raise WireError(f"cannot send a {type(value).__name__}")


def pack(message: dict[str, Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """One message (a dict, possibly holding numpy arrays) → msgpack bytes."""
    if not isinstance(message, dict):
        raise WireError(f"a message is a dict, got {type(message).__name__}")
    data: bytes = msgpack.packb(_to_wire(message, 0), use_bin_type=True)
    if len(data) > max_message_bytes:
        raise WireError(f"message is {len(data)} bytes; the limit is {max_message_bytes}")
    return data


# ---------------------------------------------------------------------------------------------- decode


def _reject_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack ext type {code} is not accepted")


def _decode_array(m: dict[str, Any]) -> np.ndarray:
    if set(m) != ND_KEYS or m["__nd__"] is not True:
        raise WireError(f"an array map has exactly the keys {sorted(ND_KEYS)} with __nd__ true")
    name, shape, data = m["dtype"], m["shape"], m["data"]
    if not isinstance(name, str) or name not in DTYPES:
        raise WireError(f"array dtype {str(name)[:40]!r} is not accepted; allowed: {', '.join(DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise WireError(f"array shape must be a list of at most {MAX_NDIM} sizes")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise WireError("array shape must hold non-negative ints")
    if not isinstance(data, bytes):
        raise WireError("array data must be msgpack bin")
    dtype = DTYPES[name]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if expected != len(data):
        raise WireError(f"array of shape {shape} and dtype {name} needs {expected} bytes, got {len(data)}")
    # A copy: writable, aligned, and owning its memory rather than a view into the message.
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _from_wire(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, list):
        return [_from_wire(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise WireError("map keys must be str")
        if "__nd__" in value:
            return _decode_array(value)
        return {k: _from_wire(v, depth + 1) for k, v in value.items()}
    raise WireError(f"a {type(value).__name__} is not accepted on the wire")


def unpack(
    data: bytes,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
) -> dict[str, Any]:
    """msgpack bytes → one message dict with numpy arrays; anything else raises WireError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"a message is binary, got {type(data).__name__}")
    if len(data) > max_message_bytes:
        raise WireError(f"message is {len(data)} bytes; the limit is {max_message_bytes}")
    try:
        raw = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_str_len=max_string_bytes,
            max_bin_len=max_message_bytes,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            max_ext_len=0,
        )
    except WireError:
        raise
    except Exception as e:  # msgpack signals bad input with many types; all mean "malformed"
        raise WireError(f"not a valid msgpack message: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(raw, dict):
        raise WireError(f"a message is a msgpack map, got {type(raw).__name__}")
    out: dict[str, Any] = _from_wire(raw, 0)
    return out
