"""Policies trained elsewhere, brought into our checkpoint format (`vla-import`).

    from vla.importer import import_policy
    summary = import_policy("path/to/lerobot/policy", "outputs/imported/smolvla")

A source is read from safetensors and JSON only (never pickle). Each family has an explicit key table
(regular-expression rules, `keys.KeyRule`) from the source's weight names to ours, and a config
translation that refuses, with one line naming the option, what our model does not implement.
"""

from vla.importer.convert import ImportSummary, import_policy
from vla.importer.errors import CheckpointImportError

__all__ = ["CheckpointImportError", "ImportSummary", "import_policy"]
