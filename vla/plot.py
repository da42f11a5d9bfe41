"""Plots drawn by hand as SVG, so that reports need no plotting dependency."""

from __future__ import annotations

from html import escape
from typing import Any


def success_vs_step_svg(rows: list[dict[str, Any]], width: int = 480, height: int = 300) -> str:
    """A hand-drawn SVG (no plotting dependency): success rate with its 95% CI against training step.

    Checkpoints without a known step are placed by their index instead.
    """
    rows = [r for r in rows if r["episodes"]]  # an interrupted run may not have reached every checkpoint
    if not rows:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>\n'
    by_step = all(r["step"] is not None for r in rows)
    xs = [float(r["step"]) if by_step else float(i) for i, r in enumerate(rows)]
    left, right, top, bottom = 60, 20, 30, 50
    x_lo, x_hi = min(xs), max(xs)
    span = (x_hi - x_lo) or 1.0

    def px(x: float) -> float:
        return (
            left + (x - x_lo) / span * (width - left - right) if len(xs) > 1 else (left + width - right) / 2
        )

    def py(y: float) -> float:
        return top + (1.0 - y) * (height - top - bottom)

    el = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">success rate per checkpoint</text>',
        f'<line x1="{left}" y1="{py(0)}" x2="{width - right}" y2="{py(0)}" stroke="black"/>',
        f'<line x1="{left}" y1="{py(0)}" x2="{left}" y2="{py(1)}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">'
        f"{'training step' if by_step else 'checkpoint (step unknown)'}</text>",
        f'<text x="14" y="{py(0.5)}" text-anchor="middle" transform="rotate(-90 14 {py(0.5)})">success</text>',
    ]
    for y in (0.0, 0.25, 0.5, 0.75, 1.0):
        el.append(f'<line x1="{left - 4}" y1="{py(y)}" x2="{left}" y2="{py(y)}" stroke="black"/>')
        el.append(f'<text x="{left - 7}" y="{py(y) + 4}" text-anchor="end">{100 * y:.0f}%</text>')
    labelled = range(len(xs)) if len(xs) <= 8 else (0, len(xs) - 1)
    for i in labelled:
        el.append(f'<text x="{px(xs[i])}" y="{py(0) + 16}" text-anchor="middle">{xs[i]:.0f}</text>')
    for x, r in zip(xs, rows, strict=True):  # 95% Wilson interval as an error bar
        lo, hi = r["success_ci95"]
        el.append(f'<line x1="{px(x)}" y1="{py(lo)}" x2="{px(x)}" y2="{py(hi)}" stroke="#9ab"/>')
        tip = escape(f"{r['checkpoint']}: {100 * r['success_rate']:.1f}%")
        el.append(
            f'<circle cx="{px(x)}" cy="{py(r["success_rate"])}" r="3.5" fill="#1f5fa8"><title>{tip}</title></circle>'
        )
    points = " ".join(f"{px(x):.1f},{py(r['success_rate']):.1f}" for x, r in zip(xs, rows, strict=True))
    el.append(f'<polyline points="{points}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    return "\n".join([*el, "</svg>"]) + "\n"
