"""The parsers against arbitrary bytes: a clean result or a clean error, always an end, and resync."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.dynamixel import DYNAMIXEL
from hardware.errors import PacketError
from hardware.feetech import FEETECH
from hardware.protocol import Codec, Frame

CODECS = [FEETECH, DYNAMIXEL]
HEADERISH = st.sampled_from([b"\xff", b"\xff\xff", b"\xff\xff\xfd", b"\xff\xff\xfd\x00", b"\xfd", b"\x00"])
# Byte strings rich in header fragments and valid packets, so the interesting paths get hit.
NOISE = st.lists(
    st.one_of(
        st.binary(max_size=12),
        HEADERISH,
        st.builds(lambda i, d: FEETECH.status(i, 0, d), st.integers(0, 253), st.binary(max_size=6)),
        st.builds(lambda i, d: DYNAMIXEL.status(i, 0, d), st.integers(0, 252), st.binary(max_size=6)),
    ),
    max_size=12,
).map(b"".join)


def drain(codec: Codec, data: bytes) -> list[Frame]:
    """Scan to the end as a reader does; every step must make progress or ask for more."""
    buf, frames = bytearray(data), []
    for _ in range(len(data) + 2):
        scan = codec.scan(buf)
        assert scan.consumed > 0 or scan.need > 0
        assert 0 <= scan.skipped <= scan.consumed <= len(buf)
        del buf[: scan.consumed]
        if scan.frame is not None:
            frames.append(scan.frame)
            with contextlib.suppress(PacketError):
                codec.parse_status(scan.frame)
        if scan.need:
            return frames
    raise AssertionError("scan did not come to an end")


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=200), NOISE))
def test_any_bytes_scan_cleanly(codec: Codec, data: bytes) -> None:
    drain(codec, data)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=40), id_=st.integers(0, 252), data=st.binary(max_size=8))
def test_garbage_then_packet_finds_the_packet(codec: Codec, garbage: bytes, id_: int, data: bytes) -> None:
    packet = codec.status(id_, 0, data)
    frames = drain(codec, garbage + packet)
    assert frames, "the valid packet after the noise was not found"
    status = codec.parse_status(frames[-1])
    assert (status.id, status.data) == (id_, data)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_noise_that_looks_like_a_long_header_does_not_hide_a_reply(codec: Codec) -> None:
    # A header with an absurd length right before a real reply: the reply must still be found.
    fake = codec.header + b"\x05\xfe\x00" if codec is DYNAMIXEL else codec.header + b"\x05"
    packet = codec.status(3, 0, b"\x00\x08")
    frames = drain(codec, fake + packet)
    assert [codec.parse_status(f).id for f in frames] == [3]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_corrupted_packet_then_good_one(codec: Codec) -> None:
    bad = bytearray(codec.status(1, 0, b"\x00\x08"))
    bad[-1] ^= 0x5A
    good = codec.status(2, 0, b"\x01\x08")
    buf = bytearray(bytes(bad) + good)
    first = codec.scan(buf)
    assert first.error == "checksum"
    del buf[: first.consumed]
    second = codec.scan(buf)
    assert second.frame is not None and codec.parse_status(second.frame).id == 2


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_packet_split_anywhere(codec: Codec) -> None:
    packet = codec.status(4, 0, b"\x10\x02")
    for cut in range(len(packet)):
        scan = codec.scan(packet[:cut])
        assert scan.frame is None and scan.need > 0 and scan.skipped == 0
    assert codec.scan(packet).frame is not None


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@settings(max_examples=200, deadline=None)
@given(params=st.binary(max_size=30))
def test_parameter_splitters_raise_only_packet_errors(codec: Codec, params: bytes) -> None:
    for split in (codec.split_read, codec.split_write, codec.split_sync_read, codec.split_sync_write):
        with contextlib.suppress(PacketError):
            split(params)
