"""Location tokens: encode -> decode lands within half a bin, boxes, parsing."""

from __future__ import annotations

import numpy as np
import pytest

from vla.vlm.loc import LocationCodec, loc_token, loc_tokens


@pytest.mark.parametrize("bins", [16, 64, 1024])
def test_points_round_trip_within_half_a_bin(bins: int) -> None:
    codec = LocationCodec(bins)
    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = int(rng.integers(8, 300)), int(rng.integers(8, 300))
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        text = codec.point(x, y, w, h)
        assert len(codec.indices(text)) == 2
        ((px, py),) = codec.points(text, w, h)
        assert abs(px - x) <= w / bins / 2 + 1e-9 and abs(py - y) <= h / bins / 2 + 1e-9
        assert 0 <= px < w and 0 <= py < h


def test_tokens_order_and_names() -> None:
    codec = LocationCodec(64)
    assert loc_token(7) == "<loc0007>" and len(loc_tokens(64)) == 64 and loc_tokens(64)[-1] == "<loc0063>"
    # y first, then x (PaliGemma's order); out-of-image coordinates clip to the edge bins
    assert codec.point(95.9, 0.0, 96, 96) == "<loc0000><loc0063>"
    assert codec.point(-5, 200, 96, 96) == "<loc0063><loc0000>"


def test_boxes_and_parsing() -> None:
    codec = LocationCodec(32)
    box = codec.box(10, 20, 30, 40, 64, 64)  # x0 y0 x1 y1 -> y0 x0 y1 x1 bins
    assert codec.indices(box) == [10, 5, 19, 14]
    # several slots, a bin beyond the codec's range dropped, an odd trailing token ignored by points()
    text = "front <loc0003><loc0004> wrist none <loc0099>"
    assert codec.indices(text) == [3, 4]
    assert codec.points("<loc0001><loc0002><loc0003>", 32, 32) == [(2.5, 1.5)]
    with pytest.raises(ValueError):
        LocationCodec(1)
