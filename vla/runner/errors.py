"""The runner's errors: a policy that cannot answer right now, and a bad runner config."""

from __future__ import annotations

from vla.errors import VLAError


class PolicyUnavailable(RuntimeError):
    """Raised by `select_chunk` / `select_chunk_guided` when no chunk can be had right now (a remote
    server unreachable, a timeout). The runner holds position, retries, and after
    `runner.safe_stop_timeout_s` brings the robot to a safe stop; control resumes when a chunk comes."""


class RunnerConfigError(VLAError, ValueError):
    """A `runner.*` field out of range; the message names it."""
