"""What every app shares at its boundary: one-line errors, instantiation, graceful stop on signals."""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from vla.errors import VLAError

F = TypeVar("F", bound=Callable[..., Any])


def _value_or(value: Any, default: Any) -> Any:
    return default if value is None or value == "" else value


# `${vla.or:${output_dir},outputs/train/...}`: hydra's run dir follows output_dir when one is given.
OmegaConf.register_new_resolver("vla.or", _value_or, replace=True)


def _run_dir(output_dir: str) -> str:
    """hydra's run dir: `output_dir` if it can be created; else a scratch dir, so that hydra's own mkdir
    does not crash with a traceback and the app can report the bad output_dir as one line."""
    probe = Path(output_dir).absolute()
    while not probe.exists():
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return output_dir
    return str(Path(tempfile.gettempdir()) / f"vla-{os.getuid()}-unwritable")


OmegaConf.register_new_resolver("vla.run_dir", _run_dir, replace=True)


def prepare_output_dir(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".probe"):
            pass
    except OSError as e:
        raise VLAError(f"output_dir={output_dir}: cannot write there ({e.strerror or e})") from None


def user_errors(app_name: str) -> Callable[[F], F]:
    """Turn a VLAError into one line on stderr and exit status 2; bugs keep their traceback."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except VLAError as e:
                print(f"{app_name}: error: {e}", file=sys.stderr, flush=True)
                sys.exit(2)
            except MissingMandatoryValue as e:
                key = e.full_key or "a value"
                print(f"{app_name}: error: {key} is required; pass {key}=...", file=sys.stderr, flush=True)
                sys.exit(2)

        return inner  # type: ignore[return-value]

    return wrap


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
        target = cfg.get("_target_", "?") if hasattr(cfg, "get") else "?"
        raise VLAError(f"{field} (_target_={target}) could not be built: {str(e).splitlines()[0]}") from e


class GracefulStop:
    """First SIGINT/SIGTERM asks the loop to stop at the next step; a second SIGINT aborts at once.

    Used as a context manager around a recording or control loop so that an episode being saved is never
    cut in half and the dataset is always finalised.
    """

    def __init__(self, message: str = "stopping after this step (Ctrl-C again to abort)") -> None:
        self.message = message
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._event.set()
        print(f"\n{signal.Signals(signum).name}: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


PROCESS_POLICY = "policies.process.ProcessPolicy"  # named, not imported: vla/ depends on no concrete policy


def build_policy(policy_cfg: Any, runner_cfg: Any, robot: Any, **override: Any) -> Any:
    """The configured policy for `robot`; in a child process when `runner.inference` says so (a checkpoint
    policy under real time, by default: see vla.runner.config), served over loopback."""
    from vla.runner.config import RunnerConfig

    runner = RunnerConfig.from_any(runner_cfg)
    if not runner.in_process(loads_checkpoint="checkpoint" in list(policy_cfg.keys())):
        return instantiate(policy_cfg, "policy", robot=robot, **override)
    node = {**OmegaConf.to_container(policy_cfg, resolve=True), **override}  # type: ignore[dict-item]
    spec = {"_target_": PROCESS_POLICY, "_recursive_": False, "_convert_": "all", "node": node}
    return instantiate(spec, "policy", robot=robot)
