"""Serve an emulated servo bus on a pseudo-terminal, with the servos of a real arm: what `vla-emulate`
(vla/apps/emulate.py) runs.

    vla-emulate robot=so101
    vla-emulate robot=koch faults.corrupt=0.05 faults.garbage=0.01 faults.drop=0.01 faults.delay_ms=2

`robot=` on the command line is the `arm` field here (configs/ has a `robot/` group, which would claim
a plain `robot` key). The first line on stdout is `port: /dev/pts/N`: point a `hardware.bus.ServoBus`
(or LeRobot) at it. One line on stderr says which servos answer. It serves until SIGINT or SIGTERM
(exit 0), or until unplugged (SIGUSR1, or `faults.unplug_after_s`), which closes the pty as a pulled
cable would. On exit one line on stderr counts the requests served and the faults injected.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field

from omegaconf import DictConfig

from hardware.calibration import load
from hardware.emulator import EmulatedBus, EmulatorStats, Faults
from hardware.replay import TrajectoryPlayer, dataset_trajectory
from hardware.specs import ARMS
from hardware.tables import MODELS
from vla.errors import VLAError

APP = "vla-emulate"
_STOP = (signal.SIGINT, signal.SIGTERM)
_UNPLUG = signal.SIGUSR1


@dataclass
class FaultsConfig:
    corrupt: float = 0.0
    garbage: float = 0.0
    drop: float = 0.0
    delay_ms: float = 0.0
    unplug_after_s: float | None = None


@dataclass
class ReplayConfig:
    dataset: str | None = (
        None  # a LeRobot dataset: its episode's actions move the servos (a hand on a leader)
    )
    episode: int = 0
    calibration: str | None = None  # the emulated arm's calibration (degrees -> encoder steps)
    key: str = "action"
    loop: bool = True


@dataclass
class EmulateConfig:
    arm: str = "so101"  # robot=<arm> on the command line
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    time_constant_s: float = 0.05
    seed: int = 0
    baudrate: int | None = 1_000_000  # model the wire time at this rate (null: a pty's instant transfers)


def build(cfg: DictConfig) -> EmulatedBus:
    """The emulated bus the config describes; VLAError naming the field for a bad value."""
    if cfg.arm not in ARMS:
        raise VLAError(f"robot={cfg.arm!r} is not an emulated arm; choose one of {', '.join(sorted(ARMS))}")
    if not 0 < cfg.time_constant_s <= 10:
        raise VLAError(f"time_constant_s={cfg.time_constant_s}: must be in (0, 10] seconds")
    unplug = cfg.faults.unplug_after_s
    if unplug is not None and unplug <= 0:
        raise VLAError(f"faults.unplug_after_s={unplug}: must be positive (or null: never)")
    f = cfg.faults
    faults = Faults(corrupt=f.corrupt, garbage=f.garbage, drop=f.drop, delay_ms=f.delay_ms, seed=cfg.seed)
    arm = ARMS[cfg.arm]
    servos = {m.id: m.model for m in arm.motors.values()}
    dynamics = "external" if cfg.replay.dataset else "first_order"
    if cfg.baudrate is not None and cfg.baudrate <= 0:
        raise VLAError(f"baudrate={cfg.baudrate}: must be positive (or null: no wire time)")
    return EmulatedBus(
        arm.protocol,
        servos,
        faults=faults,
        time_constant_s=cfg.time_constant_s,
        dynamics=dynamics,
        baudrate=cfg.baudrate,
    )


def player(cfg: DictConfig, bus: EmulatedBus) -> TrajectoryPlayer | None:
    """The replay of `replay.dataset` on the servos, if one is configured."""
    if not cfg.replay.dataset:
        return None
    if not cfg.replay.calibration:
        raise VLAError("replay.calibration is required with replay.dataset (the arm's calibration JSON)")
    spec = ARMS[cfg.arm]
    calibration = load(cfg.replay.calibration, spec.ids)
    positions, fps = dataset_trajectory(
        cfg.replay.dataset, cfg.replay.episode, spec, calibration, cfg.replay.key
    )
    return TrajectoryPlayer(bus, positions, [j.id for j in spec.joints], fps, loop=cfg.replay.loop)


def describe(cfg: DictConfig, bus: EmulatedBus) -> str:
    servos = ", ".join(
        f"{i}={bus.servo(i).model} ({MODELS[bus.servo(i).model].model_number})" for i in bus.ids
    )
    return (
        f"{APP}: {cfg.arm} on {bus.port}: {bus.protocol} servos {servos}; faults: {bus.faults.describe()}; "
        f"time constant {cfg.time_constant_s * 1000:g} ms"
    )


def summary(stats: EmulatorStats) -> str:
    f = stats.faults
    assert f is not None
    return (
        f"{APP}: served {stats.requests} requests with {stats.replies} replies "
        f"({stats.bad_packets} bad packets received); faults injected: {f.corrupted} corrupted, "
        f"{f.garbage} garbage, {f.dropped} dropped, {f.delayed} delayed"
    )


def emulate(cfg: DictConfig) -> EmulatorStats:
    bus = build(cfg)
    replay = player(cfg, bus)
    # Block the signals and take them with sigwait: no handler races, and the serving thread (which
    # inherits the mask) is never interrupted.
    watched = {*_STOP, _UNPLUG}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        print(f"port: {bus.start()}", flush=True)
        print(describe(cfg, bus), file=sys.stderr, flush=True)
        if replay is not None:
            replay.start()
            print(
                f"{APP}: replaying {cfg.replay.dataset} episode {cfg.replay.episode}",
                file=sys.stderr,
                flush=True,
            )
        timeout = cfg.faults.unplug_after_s
        if timeout:
            info = signal.sigtimedwait(watched, timeout)
            signo = _UNPLUG if info is None else info.si_signo  # None: unplug_after_s has passed
        else:
            signo = signal.sigwait(watched)
        if signo == _UNPLUG:
            print(f"{APP}: unplugged (the pty is closed)", file=sys.stderr, flush=True)
        else:
            print(f"{APP}: {signal.Signals(signo).name}: stopping", file=sys.stderr, flush=True)
    finally:
        if replay is not None:
            replay.stop()
        bus.stop()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    print(summary(bus.stats), file=sys.stderr, flush=True)
    return bus.stats
