"""Location tokens, PaliGemma style: `<locNNNN>` names one of `bins` equal bins along an image axis.

A point is two tokens, y then x (`<loc0031><loc0048>`); a box four, y0 x0 y1 x1. Coordinates are pixels
of the image the answer is about (x to the right, y down, pixel centres at +0.5); a bin covers
`size / bins` pixels and decodes to its centre, so encode -> decode lands within half a bin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOC_PATTERN = re.compile(r"<loc(\d{4})>")
NONE_WORD = "none"  # the answer slot when the object is not in that image


def loc_token(index: int) -> str:
    return f"<loc{index:04d}>"


def loc_tokens(bins: int) -> list[str]:
    """Every location token, in bin order (what the tokenizer adds to its vocabulary)."""
    return [loc_token(i) for i in range(bins)]


@dataclass(frozen=True)
class LocationCodec:
    """Pixels <-> location tokens for images of a given size."""

    bins: int = 64

    def __post_init__(self) -> None:
        if not 2 <= self.bins <= 10_000:
            raise ValueError(f"loc_bins={self.bins}: must be in 2..9999")

    def to_bin(self, coord: float, size: int) -> int:
        return min(self.bins - 1, max(0, int(coord / size * self.bins)))

    def from_bin(self, index: int, size: int) -> float:
        return (index + 0.5) * size / self.bins

    def point(self, x: float, y: float, width: int, height: int) -> str:
        """(x, y) pixels -> '<locY><locX>'."""
        return loc_token(self.to_bin(y, height)) + loc_token(self.to_bin(x, width))

    def box(self, x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> str:
        """Pixel box (edges) -> '<locY0><locX0><locY1><locX1>' (the far edges' last pixel bins)."""
        return (
            loc_token(self.to_bin(y0, height))
            + loc_token(self.to_bin(x0, width))
            + loc_token(self.to_bin(max(y0, y1 - 1e-6), height))
            + loc_token(self.to_bin(max(x0, x1 - 1e-6), width))
        )

    def indices(self, text: str) -> list[int]:
        """Every location token's bin in `text`, in order (out-of-range bins dropped)."""
        return [int(m) for m in LOC_PATTERN.findall(text) if int(m) < self.bins]

    def points(self, text: str, width: int, height: int) -> list[tuple[float, float]]:
        """'<locY><locX>...' -> [(x, y), ...] pixel points (pairs in order; an odd last token is dropped)."""
        idx = self.indices(text)
        return [
            (self.from_bin(idx[i + 1], width), self.from_bin(idx[i], height))
            for i in range(0, len(idx) - 1, 2)
        ]


def answer_slots(text: str) -> list[str]:
    """Split an answer into its whitespace-separated slots ('<loc..><loc..> none' -> two slots)."""
    return text.split()
