"""What every app shares at its boundary: one-line errors, instantiation, graceful stop on signals."""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from vla.errors import VLAError
from vla.instantiate import instantiate
from vla.io import prepare_output_dir
from vla.policy import Policy
from vla.robot import Robot
from vla.stop import GracefulStop

__all__ = [
    "GracefulStop",
    "build_policy",
    "hydra_app",
    "instantiate",
    "prepare_output_dir",
    "renamed_group_error",
]
__all__ += ["user_errors"]

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


# Config groups that were renamed: old group -> (new group, {old option: new option}). An app whose
# config selects the new group refuses the old name on its command line with one line naming the new one.
RENAMED_GROUPS: dict[str, tuple[str, dict[str, str]]] = {
    # vla-record's and vla-rollout's env=: sim and real robots are one group for every app
    "env": ("robot", {"so101": "sim"}),
}
_OVERRIDE = re.compile(r"^(?P<prefix>\+{0,2}|~)(?P<key>[A-Za-z_]\w*)(?P<rest>(?:[.@=].*)?)$", re.DOTALL)


def _config_groups(config_name: str) -> set[str]:
    """The groups `configs/<config_name>.yaml` selects in its defaults list (`robot: sim` -> robot)."""
    from importlib.resources import files

    try:
        config = OmegaConf.create((files("configs") / f"{config_name}.yaml").read_text())
    except Exception:  # hydra reports a missing or broken config itself
        return set()
    defaults = config.get("defaults") if isinstance(config, Mapping) else None
    keys = [str(k) for entry in defaults or [] if isinstance(entry, Mapping) for k in entry]
    return {k.removeprefix("override ").split("@")[0].strip() for k in keys}


def renamed_group_error(config_name: str, argv: Sequence[str]) -> str | None:
    """The one line for command-line overrides that use a renamed group's old name (`env=so101`,
    `env.task=pick`, `+env.x=1`, `~env`), naming the new ones; None when there are none."""
    groups = _config_groups(config_name)
    found: dict[str, list[str]] = {}
    for arg in argv:
        match = _OVERRIDE.match(arg)
        renamed = RENAMED_GROUPS.get(match["key"]) if match else None
        if match is None or renamed is None or renamed[0] not in groups:
            continue
        new, options = renamed
        path, eq, value = match["rest"].partition("=")
        if "." not in path:  # a group selection (`env=so101`, `env@pkg=so101`): the option may be renamed
            value = options.get(value, value)
        found.setdefault(match["key"], []).append(f"{arg} → {match['prefix']}{new}{path}{eq}{value}")
    if not found:
        return None
    return "; ".join(
        f"{old}= is now {RENAMED_GROUPS[old][0]}= (configs/{RENAMED_GROUPS[old][0]}/): {', '.join(pairs)}"
        for old, pairs in found.items()
    )


def hydra_app(
    app_name: str, config_name: str, schema: type | None = None
) -> Callable[[F], Callable[[], Any]]:
    """The one preamble of every app: registers `schema` (a dataclass) as `<config_name>_schema` for the
    config's defaults list, refuses renamed groups' old names on the command line (`RENAMED_GROUPS`), runs
    hydra on `configs/<config_name>.yaml`, and turns user errors into one line and exit status 2
    (`user_errors`).

        @hydra_app("vla-train", "train", TrainConfig)
        def main(cfg: DictConfig) -> None: ...
    """
    import hydra
    from hydra.core.config_store import ConfigStore

    if schema is not None:
        ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)

    def wrap(fn: F) -> Callable[[], Any]:
        run: Callable[[], Any] = hydra.main(
            version_base="1.3", config_path="pkg://configs", config_name=config_name
        )(user_errors(app_name)(fn))

        @functools.wraps(fn)
        def main() -> Any:
            error = renamed_group_error(config_name, sys.argv[1:])
            if error is not None:
                print(f"{app_name}: error: {error}", file=sys.stderr, flush=True)
                sys.exit(2)
            return run()

        return main

    return wrap


def build_policy(policy_cfg: Any, runner_cfg: Any, robot: Robot, **override: Any) -> Policy:
    """The configured policy for `robot`; in a child process when `runner.inference` says so (a checkpoint
    policy under real time, by default: see vla.runner.config), served over loopback."""
    from policies.process import ProcessPolicy  # the apps sit on top: they may name a concrete policy
    from vla.runner.config import RunnerConfig
    from vla.session.config import policy_in_child

    if not policy_in_child(policy_cfg, RunnerConfig.from_any(runner_cfg)):
        policy: Policy = instantiate(policy_cfg, "policy", robot=robot, **override)
        return policy
    node = {**OmegaConf.to_container(policy_cfg, resolve=True), **override}  # type: ignore[dict-item]
    target = f"{ProcessPolicy.__module__}.{ProcessPolicy.__qualname__}"
    spec = {"_target_": target, "_recursive_": False, "_convert_": "all", "node": node}
    child: Policy = instantiate(spec, "policy", robot=robot)
    return child
