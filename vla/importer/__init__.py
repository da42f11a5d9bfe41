"""Policies trained elsewhere, brought into our checkpoint format (`vla-import`).

    from vla.importer import OpenpiOptions, import_policy
    summary = import_policy("path/to/lerobot/policy", "outputs/imported/smolvla")
    summary = import_policy("path/to/openpi/checkpoint", "outputs/imported/pi05", "path/to/paligemma",
                            OpenpiOptions(asset_id="droid"))

A source is read from safetensors and JSON only (never pickle). Each family has an explicit key table
(regular-expression rules, `keys.KeyRule`) from the source's weight names to ours, and a config
translation that refuses, with one line naming the option, what our model does not implement. An openpi
PyTorch π0 / π0.5 checkpoint is read as the LeRobot π0 / π0.5 policy it corresponds to (`openpi.py`).
"""

from vla.importer.convert import ImportSummary, import_policy
from vla.importer.errors import CheckpointImportError
from vla.importer.openpi import OpenpiOptions

__all__ = ["CheckpointImportError", "ImportSummary", "OpenpiOptions", "import_policy"]
