"""hydra's `instantiate` with the project's own errors surfacing as themselves (one line at the app)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vla.errors import VLAError


def instantiate(cfg: Any, field: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with our own errors surfacing as themselves rather than wrapped."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(cfg, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, VLAError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, VLAError):
            raise cause from None
        target = cfg.get("_target_", "?") if isinstance(cfg, Mapping) else "?"
        raise VLAError(f"{field} (_target_={target}) could not be built: {str(e).splitlines()[0]}") from e
