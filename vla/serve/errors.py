"""Errors of the policy client.

`PolicyUnavailable` is the runner's own (`vla.runner`): its signal to hold position and, past
`runner.safe_stop_timeout_s`, to safe-stop; control resumes when a chunk comes again.
"""

from __future__ import annotations

from vla.errors import VLAError
from vla.runner.errors import PolicyUnavailable

__all__ = ["PolicyUnavailable", "ServerError"]


class ServerError(VLAError):
    """The server answered a request with an error (a wrong observation, a failed inference)."""
