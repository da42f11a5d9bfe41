"""Real-time chunking (Black, Galliker, Levine 2025), the runner's side: the soft inpainting mask and the
previous chunk re-indexed to the new observation's tick. The guided sampling itself is an option of the
model's one sampler (`vla.model.flow.RTCGuidance`).
"""

from __future__ import annotations

import math

import numpy as np


def guidance_weights(horizon: int, inference_delay: int, execution_horizon: int) -> np.ndarray:
    """Per-row weights [H]: 1 on rows [0, d) (frozen: they execute while the chunk is computed),
    c·(e^c − 1)/(e − 1) with c = (H − s − i)/(H − s − d + 1) on rows [d, H − s) (exponential decay),
    0 on rows ≥ H − s (past the end of the previous chunk's usable actions)."""
    h, d, s = horizon, inference_delay, execution_horizon
    if not 0 <= d <= h or not 0 <= s <= h:
        raise ValueError(f"need 0 <= d={d} <= H={h} and 0 <= s={s} <= H")
    weights = np.zeros(h, dtype=np.float32)
    end = max(h - s, d)  # rows >= end are free
    weights[: min(d, h)] = 1.0
    for i in range(d, end):
        c = (end - i) / (end - d + 1)
        weights[i] = c * (math.exp(c) - 1.0) / (math.e - 1.0)
    return weights


def reindex(plan: np.ndarray, plan_start: int, tick: int, horizon: int) -> np.ndarray:
    """The planned actions for ticks [tick, tick + H) from `plan` [N, A] whose row 0 is at `plan_start`;
    rows past its end repeat its last action -> [H, A]."""
    idx = np.clip(np.arange(tick, tick + horizon) - plan_start, 0, len(plan) - 1)
    return plan[idx]
