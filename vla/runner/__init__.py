"""The real-time runner: one control loop for every robot and policy (rate, strategy, safety, metrics).

from vla.runner import Runner, RunnerConfig
with Runner(robot, policy, RunnerConfig(strategy="rtc", rate_hz=50)) as runner:
    result = runner.run_episode(seed=0)
    runner.write_metrics("runner_metrics.json")
"""

from vla.runner.clock import Clock, FakeClock, RealClock
from vla.runner.config import RunnerConfig
from vla.runner.errors import PolicyUnavailable, RunnerConfigError
from vla.runner.metrics import RunnerMetrics
from vla.runner.runner import Runner
from vla.runner.safety import SafetyFilter

__all__ = [
    "Clock",
    "FakeClock",
    "PolicyUnavailable",
    "RealClock",
    "Runner",
    "RunnerConfig",
    "RunnerConfigError",
    "RunnerMetrics",
    "SafetyFilter",
]
