"""Replay a recorded trajectory on emulated servos: an emulated leader arm "moved by hand" along what a
dataset recorded, so teleoperation runs end to end without hardware.

    trajectory = dataset_trajectory("data/touch", episode=0, spec=ARMS["so101_leader"], calibration=cal)
    player = TrajectoryPlayer(emulated_bus, trajectory, fps=30, loop=True); player.start()

The dataset's `action` (or `observation.state`) rows are in robot units (degrees, gripper 0-100); the
calibration turns them into the encoder steps the servos would report, and the player sets the servos'
positions at the dataset's rate (their own dynamics off: `EmulatedBus(dynamics="external")`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from hardware.calibration import MotorCalibration, to_raw
from hardware.specs import ArmSpec
from vla.errors import VLAError


def dataset_trajectory(
    root: str | Path,
    episode: int,
    spec: ArmSpec,
    calibration: dict[str, MotorCalibration],
    key: str = "action",
) -> tuple[np.ndarray, int]:
    """Encoder positions [T, joints] (the servo's own frame, homing offsets undone) of one episode of a
    LeRobot dataset at `root`, and the dataset's fps."""
    import json

    import pandas as pd

    root = Path(root).expanduser()
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
    except OSError as e:
        raise VLAError(f"replay.dataset={root}: not a LeRobot dataset ({e.strerror or e})") from None
    frames = pd.concat([pd.read_parquet(p) for p in sorted((root / "data").rglob("*.parquet"))])
    rows = frames[frames["episode_index"] == episode].sort_values("frame_index")
    if rows.empty:
        raise VLAError(
            f"replay.episode={episode}: the dataset at {root} has episodes 0..{info['total_episodes'] - 1}"
        )
    values = np.stack(rows[key].to_numpy())  # [T, joints] robot units
    if values.shape[1] != len(spec.joints):
        raise VLAError(
            f"{key} has {values.shape[1]} values per frame; {spec.name} has {len(spec.joints)} joints"
        )
    sign = -1 if spec.protocol == "feetech" else 1  # present = actual + sign * homing_offset
    out = np.empty(values.shape, dtype=np.float64)
    for j, joint in enumerate(spec.joints):
        cal = calibration[joint.name]
        out[:, j] = [to_raw(float(v), cal, joint.mode) - sign * cal.homing_offset for v in values[:, j]]
    return out, int(info["fps"])


class TrajectoryPlayer:
    """Sets the emulated servos' positions along `positions` [T, joints] (ids in `ids` order) at `fps`."""

    def __init__(
        self, bus: object, positions: np.ndarray, ids: list[int], fps: float, loop: bool = True
    ) -> None:
        self.bus, self.positions, self.ids, self.fps, self.loop = bus, positions, ids, float(fps), loop
        self.frames_played = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trajectory-player", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            i = int((time.monotonic() - start) * self.fps)
            if i >= len(self.positions):
                if not self.loop:
                    return
                start, i = time.monotonic(), 0
            velocity = (self.positions[min(i + 1, len(self.positions) - 1)] - self.positions[i]) * self.fps
            for k, id_ in enumerate(self.ids):
                self.bus.servo(id_).set_present_position(float(self.positions[i, k]), float(velocity[k]))  # type: ignore[attr-defined]
            self.frames_played = i + 1
            self._stop.wait(max(0.0, start + (i + 1) / self.fps - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
