"""The VLA model: a transformers VLM backbone extended with state and action tokens.

`VLAModel` and `VLAConfig` are imported lazily so that `vla.model.fast` (numpy + tokenizers only) stays cheap.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vla.model.config import VLAConfig
    from vla.model.vla import VLAModel

__all__ = ["VLAConfig", "VLAModel"]


def __getattr__(name: str) -> Any:
    if name == "VLAModel":
        from vla.model.vla import VLAModel

        return VLAModel
    if name == "VLAConfig":
        from vla.model.config import VLAConfig

        return VLAConfig
    raise AttributeError(name)
