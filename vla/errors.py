"""The project's error type for user mistakes.

A `VLAError` carries a message that names the field and the fix; the app boundary prints it as one
line on stderr and exits non-zero. Bugs keep their tracebacks.
"""


class VLAError(Exception):
    """A user mistake: bad config, bad input data, a path that cannot be used."""
