"""What a served policy expects: observation keys with dtypes and shapes, action width, chunk size.

The server sends this in its hello reply and checks every observation against it; the client checks it
against its robot's features before the first step. A shape entry of None means "any size".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.errors import VLAError
from vla.features import ACTION
from vla.policy import FeaturedPolicy, GuidedPolicy, Policy
from vla.serve.wire import DTYPES

# LeRobot's feature dtypes for frames are "video" / "image"; a Robot hands them over as uint8.
_FRAME_DTYPES = {"video": "uint8", "image": "uint8"}


@dataclass(frozen=True)
class ObservationFeature:
    dtype: str  # a wire dtype name (vla.serve.wire.DTYPES)
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = "x".join("*" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class PolicySpec:
    """The served policy's contract. `observation` is None when the policy does not declare one."""

    observation: dict[str, ObservationFeature] | None
    action_dim: int | None = None
    chunk_size: int | None = None
    fps: float | None = None
    model: str = ""
    guided: bool = False

    def to_wire(self) -> dict[str, Any]:
        obs = None
        if self.observation is not None:
            obs = {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in self.observation.items()}
        return {
            "observation": obs,
            "action_dim": self.action_dim,
            "chunk_size": self.chunk_size,
            "fps": self.fps,
            "model": self.model,
            "guided": self.guided,
        }

    @classmethod
    def from_wire(cls, m: Any) -> PolicySpec:
        """The spec from a hello reply; a reply that does not fit raises VLAError."""
        try:
            obs_m = m["observation"]
            obs = None
            if obs_m is not None:
                obs = {
                    str(k): ObservationFeature(str(v["dtype"]), tuple(_dim(d) for d in v["shape"]))
                    for k, v in obs_m.items()
                }
            return cls(
                observation=obs,
                action_dim=_opt_int(m.get("action_dim")),
                chunk_size=_opt_int(m.get("chunk_size")),
                fps=None if m.get("fps") is None else float(m["fps"]),
                model=str(m.get("model", "")),
                guided=bool(m.get("guided", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise VLAError(f"the server's hello reply has no valid policy spec ({e})") from None

    def check_observation(self, observation: Any) -> str | None:
        """None if `observation` fits; otherwise an error message naming the key."""
        if not isinstance(observation, dict):
            return "observation must be a map of feature name to array"
        if self.observation is None:
            for key, value in observation.items():
                if not isinstance(value, np.ndarray):
                    return f"observation[{key!r}] must be an array"
            return None
        for key, feat in self.observation.items():
            if key not in observation:
                return f"observation is missing {key!r} ({feat.describe()})"
            value = observation[key]
            if not isinstance(value, np.ndarray):
                return f"observation[{key!r}] must be an array {feat.describe()}"
            if str(value.dtype) != feat.dtype or not _shape_fits(value.shape, feat.shape):
                got = ObservationFeature(str(value.dtype), tuple(value.shape)).describe()
                return f"observation[{key!r}] is {got}; the policy expects {feat.describe()}"
        for key in observation:
            if key not in self.observation:
                return f"observation[{str(key)[:80]!r}] is not a feature of the policy: {sorted(self.observation)}"
        return None

    def check_robot(self, observation_features: dict, action_features: dict) -> None:
        """Raise VLAError when a robot's features cannot feed this policy or take its actions."""
        if self.observation is not None:
            for key, feat in self.observation.items():
                if key not in observation_features:
                    raise VLAError(
                        f"the served policy needs {key} ({feat.describe()}); the robot has "
                        f"{sorted(observation_features)}"
                    )
                have = robot_feature(observation_features[key])
                if have.dtype != feat.dtype or not _shape_fits(have.shape, feat.shape):
                    raise VLAError(
                        f"{key} is {have.describe()} on the robot; the served policy expects {feat.describe()}"
                    )
        if self.action_dim is not None and ACTION in action_features:
            dim = int(action_features[ACTION]["shape"][0])
            if dim != self.action_dim:
                raise VLAError(
                    f"the robot takes {dim}-D actions; the served policy predicts {self.action_dim}-D"
                )


def _dim(d: Any) -> int | None:
    if d is None:
        return None
    if type(d) is not int or d < 0:
        raise ValueError(f"bad dimension {d!r}")
    return d


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _shape_fits(shape: tuple[int | None, ...], want: tuple[int | None, ...]) -> bool:
    return len(shape) == len(want) and all(w is None or s == w for s, w in zip(shape, want, strict=True))


def robot_feature(feature: dict[str, Any]) -> ObservationFeature:
    """A LeRobot feature dict ({"dtype": "video", "shape": (H, W, 3)}) → what goes on the wire."""
    dtype = _FRAME_DTYPES.get(str(feature["dtype"]), str(feature["dtype"]))
    if dtype not in DTYPES:
        raise VLAError(f"feature dtype {feature['dtype']!r} cannot be sent; allowed: {', '.join(DTYPES)}")
    return ObservationFeature(dtype, tuple(int(d) for d in feature["shape"]))


@runtime_checkable
class DescribedPolicy(Policy, Protocol):
    """A policy that states its own serving contract (the VLA policy: from its checkpoint's config)."""

    def policy_spec(self) -> PolicySpec: ...


def describe_policy(policy: Policy) -> PolicySpec:
    """The spec of a policy, from what it declares: its own `policy_spec()` (a `DescribedPolicy`), or
    LeRobot-style features (a `FeaturedPolicy`). Anything else is served without an observation schema
    (arrays are still size- and dtype-checked on the wire). `guided` is whether it is a `GuidedPolicy`.
    """
    guided = isinstance(policy, GuidedPolicy)
    if isinstance(policy, DescribedPolicy):
        return replace(policy.policy_spec(), guided=guided)
    name = type(policy).__name__
    if isinstance(policy, FeaturedPolicy):
        obs = {k: robot_feature(v) for k, v in policy.observation_features.items()}
        act = policy.action_features
        action_dim = int(act[ACTION]["shape"][0]) if ACTION in act else None
        return PolicySpec(obs, action_dim, _opt_int(policy.chunk_size), None, name, guided)
    return PolicySpec(None, None, None, None, name, guided)
