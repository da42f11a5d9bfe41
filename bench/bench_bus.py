"""Serial bus benchmark: our ServoBus vs LeRobot's FeetechMotorsBus (the vendor SDK) on the same emulated
SO-101 bus (`vla-emulate`, a separate process, so its CPU is not counted), plus an endurance run of our
arm under injected faults.

1. Cycle latency: one SYNC_READ of the six Present_Position + one SYNC_WRITE of six Goal_Position, back
   to back; median and p99.
2. CPU at 100 Hz: the same cycle on absolute 10 ms deadlines for `--cpu-s` seconds; the process's CPU
   time (all threads) over wall time, in % of one core.
   Both, `--rounds` times, alternating the two buses with a fresh emulator each; medians over rounds.
3. Endurance (ours): connect + calibration, then get_observation + send_action (a sine on every joint) at
   100 Hz for `--endurance-s` seconds with corrupted replies and garbage bytes injected; exceptions,
   faults injected vs errors detected and retried, tracking error.

Writes bench/results/bus.json and prints markdown tables.

    .venv/bin/python -m bench.bench_bus                     # ~3 minutes
    .venv/bin/python -m bench.bench_bus --endurance-s 60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from hardware.specs import ARMS

RESULTS = Path(__file__).parent / "results"
NAMES = list(ARMS["so101"].ids)


class Emulator:
    """`vla-emulate` in its own process; `port` is its pty."""

    def __init__(self, *overrides: str) -> None:
        exe = Path(sys.executable).parent / "vla-emulate"
        self.proc = subprocess.Popen(
            [str(exe), "robot=so101", *overrides], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("port: "):
            raise RuntimeError(
                f"vla-emulate did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.port = line.removeprefix("port: ")

    def close(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err.strip().splitlines()[-1] if err.strip() else ""


def ours(port: str) -> tuple[Callable[[], None], Callable[[], None]]:
    from hardware.bus import ServoBus

    bus = ServoBus(port, "feetech", ARMS["so101"].motors)
    bus.connect()
    for name in NAMES:  # as both arms configure it: reply at once (the factory 500 µs each)
        bus.write("Return_Delay_Time", name, 0)
    goals = dict.fromkeys(NAMES, 2048)

    def cycle() -> None:
        bus.sync_read("Present_Position")
        bus.sync_write("Goal_Position", goals)

    return cycle, bus.disconnect


def lerobot(port: str) -> tuple[Callable[[], None], Callable[[], None]]:
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    motors = {n: Motor(i, "sts3215", MotorNormMode.DEGREES) for n, i in ARMS["so101"].ids.items()}
    bus = FeetechMotorsBus(port, motors)
    bus.connect()
    for name in NAMES:
        bus.write("Return_Delay_Time", name, 0, normalize=False)
    goals = dict.fromkeys(NAMES, 2048)

    def cycle() -> None:
        bus.sync_read("Present_Position", normalize=False)
        bus.sync_write("Goal_Position", goals, normalize=False)

    return cycle, bus.disconnect


def measure(
    make: Callable[[str], tuple[Callable[[], None], Callable[[], None]]], args: argparse.Namespace
) -> dict[str, Any]:
    emu = Emulator()
    try:
        cycle, close = make(emu.port)
        try:
            for _ in range(50):  # warm-up
                cycle()
            times = []
            for _ in range(args.cycles):
                start = time.perf_counter()
                cycle()
                times.append(time.perf_counter() - start)
            period = 0.01
            cpu0, wall0 = time.process_time(), time.perf_counter()
            next_t, n, late = wall0, 0, 0
            while time.perf_counter() - wall0 < args.cpu_s:
                cycle()
                n += 1
                next_t += period
                pause = next_t - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                else:
                    late += 1
            cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        finally:
            close()
    finally:
        emu.close()
    ms = np.asarray(times) * 1000
    return {
        "cycles": args.cycles,
        "median_ms": round(float(np.median(ms)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "cpu_100hz_pct": round(100 * cpu, 2),
        "cycles_100hz": n,
        "late_100hz": late,
    }


def endurance(args: argparse.Namespace) -> dict[str, Any]:
    from hardware.arms import ServoArm
    from hardware.calibration import MotorCalibration, save

    emu = Emulator(f"faults.corrupt={args.corrupt}", f"faults.garbage={args.garbage}", "time_constant_s=0.03")
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        cal = {j.name: MotorCalibration(j.id, 0, 0, 1047, 3047) for j in ARMS["so101"].joints}
        arm = ServoArm(
            "so101", emu.port, calibration=str(save(Path(tmp) / "cal.json", cal)), max_relative_target=None
        )
        arm.connect()
        track: list[float] = []
        ticks = 0
        try:
            start = time.perf_counter()
            next_t = start
            base = arm.get_observation()["observation.state"].astype(np.float64)
            sent = base
            while time.perf_counter() - start < args.endurance_s:
                t = time.perf_counter() - start
                try:
                    state = arm.get_observation()["observation.state"]
                    if ticks > 10:  # the servo lags its goal by one time constant (30 ms) at this speed
                        track.append(float(np.abs(state - sent).max()))
                    target = base + np.array([20, 15, 15, 15, 20, 0]) * np.sin(2 * np.pi * 0.5 * t)
                    target[5] = 50 + 30 * np.sin(2 * np.pi * 0.5 * t)
                    sent = arm.send_action(target).astype(np.float64)
                except Exception as e:  # counted, never expected
                    errors.append(f"{type(e).__name__}: {e}")
                ticks += 1
                next_t += 0.01
                time.sleep(max(0.0, next_t - time.perf_counter()))
            stats = arm.bus.stats
        finally:
            arm.disconnect()
    summary = emu.close()
    return {
        "seconds": args.endurance_s,
        "ticks": ticks,
        "exceptions": len(errors),
        "first_exceptions": errors[:3],
        "corrupt": args.corrupt,
        "garbage": args.garbage,
        "bus": stats.__dict__,
        "emulator": summary,
        "tracking_p50_deg": round(float(np.median(track)), 3),
        "tracking_max_deg": round(float(np.max(track)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--cpu-s", type=float, default=10.0)
    parser.add_argument("--endurance-s", type=float, default=60.0)
    parser.add_argument("--corrupt", type=float, default=0.05)
    parser.add_argument("--garbage", type=float, default=0.02)
    parser.add_argument("--skip-endurance", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per bus (medians reported)")
    args = parser.parse_args()
    out: dict[str, Any] = {
        "benchmark": "bus",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}",
        "date": str(date.today()),
        "transport": "pseudo-terminal to vla-emulate (no baud-rate delay)",
    }
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "lerobot": []}
    for r in range(args.rounds):  # interleaved, a fresh emulator each time: drift hits both alike
        for name, make in (("ours", ours), ("lerobot", lerobot)):
            runs[name].append(measure(make, args))
            print(f"round {r} {name}", json.dumps(runs[name][-1]), flush=True)
    for name, rs in runs.items():
        out[name] = {
            k: (float(np.median([x[k] for x in rs])) if isinstance(rs[0][k], float) else rs[0][k])
            for k in rs[0]
        }
        out[name]["rounds"] = rs
    o, lr = out["ours"], out["lerobot"]
    out["latency_ratio"] = round(o["median_ms"] / lr["median_ms"], 3)
    out["cpu_ratio"] = round(o["cpu_100hz_pct"] / max(lr["cpu_100hz_pct"], 1e-9), 3)
    if not args.skip_endurance:
        out["endurance"] = endurance(args)
        print("endurance", json.dumps(out["endurance"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bus.json").write_text(json.dumps(out, indent=2))
    print("| bus | cycle median | p99 | CPU at 100 Hz |")
    print("|---|---|---|---|")
    for name in ("ours", "lerobot"):
        r = out[name]
        print(f"| {name} | {r['median_ms']:.3f} ms | {r['p99_ms']:.3f} ms | {r['cpu_100hz_pct']:.1f}% |")


if __name__ == "__main__":
    main()
