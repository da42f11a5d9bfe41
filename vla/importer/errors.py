"""The importer's user-facing error."""

from vla.errors import VLAError


class CheckpointImportError(VLAError):
    """A source that cannot be imported (unsupported option, missing file); the message names it."""
