"""Key tables: explicit, auditable rules from a source's weight names to ours (nanoVLM's `mapping`).

Every source key must match exactly one rule or an `ignore` pattern, and every weight of our model must
be produced by some rule: anything else is an error naming the keys, never a silent partial load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vla.importer.errors import CheckpointImportError


def _state_with_mask_columns(weight: torch.Tensor) -> torch.Tensor:
    """A state projection over the state alone [D, S] -> ours over concat(state, mask) [D, 2S]: the mask
    columns are zero, so the output is the source's for any mask."""
    return torch.cat([weight, torch.zeros_like(weight)], dim=1)


def _adarms_gate_minus_one(bias: torch.Tensor) -> torch.Tensor:
    """An adaRMS modulation bias [3D] (scale, shift, gate) whose residual is x + y·gate -> ours, whose
    residual is x + y·(1 + gate): the gate's third less one (exact)."""
    out = bias.clone()
    third = bias.shape[0] // 3
    out[2 * third :] -= 1.0
    return out


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "state_mask_columns": _state_with_mask_columns,
    "adarms_gate_minus_one": _adarms_gate_minus_one,
}


@dataclass(frozen=True)
class KeyRule:
    """`pattern` (a full match on the source key) -> `target` (re.sub template), then an optional named
    transform of the tensor (see TRANSFORMS)."""

    pattern: str
    target: str
    transform: str | None = None


def map_weights(
    source: dict[str, torch.Tensor],
    rules: Sequence[KeyRule],
    ignore: Sequence[str] = (),
    family: str = "",
) -> dict[str, torch.Tensor]:
    """Source state dict -> ours, by the rules. Raises CheckpointImportError on an unmatched or doubly
    matched source key, or two source keys mapping to one of ours."""
    compiled = [(re.compile(r.pattern), r) for r in rules]
    skipped = [re.compile(p) for p in ignore]
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmatched: list[str] = []
    for key, tensor in source.items():
        hits = [(m, r) for pattern, r in compiled if (m := pattern.fullmatch(key))]
        if not hits:
            if not any(p.fullmatch(key) for p in skipped):
                unmatched.append(key)
            continue
        if len(hits) > 1:
            raise CheckpointImportError(f"{family} key table: {key} matches {len(hits)} rules (a table bug)")
        match, rule = hits[0]
        target = match.expand(rule.target)
        if target in out:
            raise CheckpointImportError(
                f"{family} key table: {origin[target]} and {key} both map to {target}"
            )
        out[target] = TRANSFORMS[rule.transform](tensor) if rule.transform else tensor
        origin[target] = key
    if unmatched:
        raise CheckpointImportError(
            f"the source has {len(unmatched)} weight(s) the {family} key table does not know, e.g. "
            f"{unmatched[:3]}: an unsupported variant of the model"
        )
    return out
