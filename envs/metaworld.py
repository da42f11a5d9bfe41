"""Meta-World (metaworld 3.1.1) presented as a `vla.robot.EpisodicRobot`, the way LeRobot evaluates it.

    vla-record robot=metaworld robot.task=push-v3 policy=scripted episodes=10 dataset.root=/tmp/mw
    vla-rollout robot=metaworld tasks=[push-v3,reach-v3] policy=scripted
    vla-rollout robot=metaworld policy=scripted "tasks=[$(python -m envs.metaworld easy)]"

Schema (LeRobot's for Meta-World): `observation.state` is LeRobot's 4-D `agent_pos` (hand x, y, z and the
gripper opening: the first four entries of Meta-World's 39-D observation), the action is 4-D in [-1, 1]
(hand displacement x, y, z and gripper effort), 80 fps, robot_type "metaworld". The single camera is
`observation.images.<camera>` (LeRobot's own datasets call it `observation.image`; our stack keys cameras
by name, see vla.robot). `corner2` is moved and flipped as LeRobot does. An episode ends at success (as in
LeRobot's env) or after 500 steps.

The full 39-D observation (object poses, goal) is privileged: scripted experts read it through
`robot.full_state`; it is never an observation feature.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

import mujoco
import numpy as np

from envs.so101.render import CameraRig
from vla.errors import VLAError
from vla.features import (
    ACTION,
    IMAGE_PREFIX,
    IS_SUCCESS,
    STATE,
    TASK,
    Features,
    camera_feature,
    vector_feature,
)

METAWORLD_ROBOT_TYPE = "metaworld"  # what LeRobot's Meta-World datasets (lerobot/metaworld_mt50) carry
FPS = 80  # Meta-World's control step: 5 physics steps of 2.5 ms (LeRobot's datasets: 80 fps)
MAX_EPISODE_STEPS = 500  # Meta-World's max_path_length; LeRobot's eval runs to it
STATE_NAMES = ["x", "y", "z", "gripper"]  # hand position (m) and gripper opening (0 closed .. 1 open)
ACTION_NAMES = ["x", "y", "z", "gripper"]  # hand displacement (x 1 cm per unit) and gripper effort

CAMERAS: tuple[str, ...] = (
    "topview",
    "corner",
    "corner2",
    "corner3",
    "corner4",
    "behindGripper",
    "gripperPOV",
)
# LeRobot moves corner2 closer to the table and flips its image on both axes (lerobot/envs/metaworld.py).
CORNER2_POS = (0.75, 0.075, 0.7)

# One instruction per task, our own wording; the keys are Meta-World's 50 v3 task names.
INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "pick up the nut and fit it over the peg",
    "basketball-v3": "pick up the ball and drop it into the hoop",
    "bin-picking-v3": "move the puck from one bin into the other",
    "box-close-v3": "put the lid on the box",
    "button-press-topdown-v3": "press the button down from above",
    "button-press-topdown-wall-v3": "reach over the wall and press the button down from above",
    "button-press-v3": "press the button on the front of the box",
    "button-press-wall-v3": "reach past the wall and press the button",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug out from under the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial half a turn",
    "disassemble-v3": "lift the nut off the peg",
    "door-close-v3": "swing the door shut",
    "door-lock-v3": "turn the door lock to lock it",
    "door-open-v3": "pull the door open",
    "door-unlock-v3": "turn the door lock to unlock it",
    "drawer-close-v3": "push the drawer closed",
    "drawer-open-v3": "pull the drawer open",
    "faucet-close-v3": "turn the faucet handle to close it",
    "faucet-open-v3": "turn the faucet handle to open it",
    "hammer-v3": "pick up the hammer and drive the nail into the wall",
    "hand-insert-v3": "put the gripper into the hole in the table",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "rotate the lever a quarter turn",
    "peg-insert-side-v3": "pick up the peg and insert it sideways into the hole",
    "peg-unplug-side-v3": "pull the peg sideways out of its socket",
    "pick-out-of-hole-v3": "lift the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "pick-place-wall-v3": "pick up the puck, lift it over the wall and place it at the goal",
    "plate-slide-back-side-v3": "slide the plate sideways out of the cabinet",
    "plate-slide-back-v3": "slide the plate back out of the cabinet",
    "plate-slide-side-v3": "slide the plate sideways into the cabinet",
    "plate-slide-v3": "slide the plate into the cabinet",
    "push-back-v3": "pull the puck back to the goal",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "reach-v3": "move the gripper to the goal",
    "reach-wall-v3": "reach over the wall to the goal",
    "shelf-place-v3": "pick up the puck and place it on the shelf",
    "soccer-v3": "push the ball into the goal",
    "stick-pull-v3": "pick up the stick and pull the box with it",
    "stick-push-v3": "pick up the stick and push the box with it",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-close-v3": "slide the window closed",
    "window-open-v3": "slide the window open",
}
TASKS: tuple[str, ...] = tuple(INSTRUCTIONS)

# LeRobot's difficulty split (28 / 11 / 6 / 5 tasks), as lerobot 0.6.1 defines it in
# lerobot/envs/metaworld_config.json ("DIFFICULTY_TO_TASKS"), which its create_metaworld_envs expands
# for env.task=easy etc. Same order as there.
DIFFICULTY: dict[str, list[str]] = {
    "easy": [
        *("button-press-v3", "button-press-topdown-v3", "button-press-topdown-wall-v3"),
        *("button-press-wall-v3", "coffee-button-v3", "dial-turn-v3", "door-close-v3", "door-lock-v3"),
        *("door-open-v3", "door-unlock-v3", "drawer-close-v3", "drawer-open-v3", "faucet-close-v3"),
        *("faucet-open-v3", "handle-press-v3", "handle-press-side-v3", "handle-pull-v3"),
        *("handle-pull-side-v3", "lever-pull-v3", "plate-slide-v3", "plate-slide-back-v3"),
        *("plate-slide-back-side-v3", "plate-slide-side-v3", "reach-v3", "reach-wall-v3"),
        *("window-close-v3", "window-open-v3", "peg-unplug-side-v3"),
    ],
    "medium": [
        *("basketball-v3", "bin-picking-v3", "box-close-v3", "coffee-pull-v3", "coffee-push-v3"),
        *("hammer-v3", "peg-insert-side-v3", "push-wall-v3", "soccer-v3", "sweep-v3", "sweep-into-v3"),
    ],
    "hard": [
        *("assembly-v3", "hand-insert-v3", "pick-out-of-hole-v3", "pick-place-v3", "push-v3"),
        "push-back-v3",
    ],
    "very_hard": ["shelf-place-v3", "disassemble-v3", "stick-pull-v3", "stick-push-v3", "pick-place-wall-v3"],
}


def check_task(task: str) -> str:
    """`task` if it is a Meta-World v3 task, else a one-line VLAError naming the choices."""
    if task in INSTRUCTIONS:
        return task
    close = difflib.get_close_matches(str(task), TASKS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise VLAError(f"robot.task={task!r} is not a Meta-World task{hint}; choose one of: {', '.join(TASKS)}")


def tasks_of(group: str) -> list[str]:
    """The tasks of a difficulty group (easy | medium | hard | very_hard), or [group] for a task name."""
    if group in DIFFICULTY:
        return list(DIFFICULTY[group])
    if group in INSTRUCTIONS:
        return [group]
    raise VLAError(f"{group!r} is neither a Meta-World task nor a difficulty ({', '.join(DIFFICULTY)})")


def metaworld_features(camera: str, height: int, width: int) -> tuple[Features, Features]:
    """(observation_features, action_features) of Meta-World with one camera."""
    observation: Features = {
        STATE: vector_feature(STATE_NAMES),
        IMAGE_PREFIX + camera: camera_feature(height, width),
    }
    return observation, {ACTION: vector_feature(ACTION_NAMES)}


class MetaWorldCamera(CameraRig):
    """The SO-101's fast camera rig (no shadows, reflections or multisampling), keeping the skybox:
    Meta-World's background is a flat grey skybox, and without it frames would differ from LeRobot's."""

    def __init__(self, model: mujoco.MjModel, camera: str, height: int, width: int) -> None:
        super().__init__(model, [camera], height, width)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 1


def _make_env(task: str) -> Any:
    """A Meta-World env for `task` whose every reset draws a fresh scene from its seeded generator."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS[task]()  # no render_mode: MetaWorldCamera renders
    # The state MT1's set_task leaves an env in (goal in the observation, task set), without its fixed
    # list of 50 goals, then LeRobot's unfreezing: each reset samples the scene from env.np_random.
    env._partially_observable = False
    vars(env).pop("sawyer_observation_space", None)  # a cached_property sized for the hidden goal
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    return env


class MetaWorldRobot:
    """One Meta-World task as a Robot: one `send_action` = one 80 Hz step (5 physics steps).

    Seeding is LeRobot's: `reset(seed)` reseeds the env, so seed s gives the scene LeRobot's Meta-World
    env gives for seed s. Rendering a 128 px frame costs ~9 ms on this machine's 2 CPU cores (llvmpipe;
    ~90 ms with Meta-World's default shadows and 4x multisampling) and a physics step ~1 ms, so one
    step with its frame takes ~12 ms (~85 steps/s through vla-rollout).
    """

    @staticmethod
    def task_group(name: str) -> list[str] | None:
        """vla-rollout's `tasks=[easy]`: the tasks of LeRobot's difficulty group, or None for a task name."""
        return list(DIFFICULTY[name]) if name in DIFFICULTY else None

    robot_type = METAWORLD_ROBOT_TYPE
    fps = FPS

    def __init__(
        self,
        task: str = "push-v3",
        image_size: int = 128,
        camera: str = "corner2",
        max_episode_steps: int | None = None,
        seed: int | None = None,
    ) -> None:
        check_task(task)  # a bad task fails here, before anything heavy is built
        if camera not in CAMERAS:
            raise VLAError(
                f"robot.camera={camera!r}: not a Meta-World camera; choose one of: {', '.join(CAMERAS)}"
            )
        if int(image_size) < 8:
            raise VLAError(f"robot.image_size={image_size}: must be at least 8 pixels")
        if max_episode_steps is not None and not 1 <= int(max_episode_steps) <= MAX_EPISODE_STEPS:
            raise VLAError(
                f"robot.max_episode_steps={max_episode_steps}: must be 1..{MAX_EPISODE_STEPS} "
                "(Meta-World's limit), or null for the limit"
            )
        self.task_name = task
        self.image_size = int(image_size)
        self.camera = camera
        self.max_episode_steps = MAX_EPISODE_STEPS if max_episode_steps is None else int(max_episode_steps)
        self.seed = seed
        self._env: Any = None
        self._camera: MetaWorldCamera | None = None
        self._state: np.ndarray | None = None  # the latest full observation, (39,) float64
        self._obs: dict[str, np.ndarray] | None = None  # rendered on demand, once per step
        self._info: dict[str, Any] = {}
        self._done = False
        self._steps = 0

    # -- schema (available before connect) -------------------------------------------------------------
    @property
    def observation_features(self) -> Features:
        return metaworld_features(self.camera, self.image_size, self.image_size)[0]

    @property
    def action_features(self) -> Features:
        return metaworld_features(self.camera, self.image_size, self.image_size)[1]

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        """Action bounds by action name, for the runner's safety filter."""
        return {name: (-1.0, 1.0) for name in ACTION_NAMES}

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        """Build the simulation and the camera, and reset to `seed`."""
        if self._env is not None:
            return
        env = _make_env(self.task_name)
        if self.camera == "corner2":
            env.model.cam_pos[env.model.camera("corner2").id] = CORNER2_POS
        try:
            self._camera = MetaWorldCamera(env.model, self.camera, self.image_size, self.image_size)
        except BaseException:
            env.close()
            raise
        self._env = env
        self.reset(self.seed)

    def disconnect(self) -> None:
        """Free the renderer and the simulation."""
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        if self._env is not None:
            self._env.close()
            self._env = None
        self._state = self._obs = None

    @property
    def env(self) -> Any:
        """The Meta-World env itself (a metaworld SawyerXYZEnv); connects if needed."""
        if self._env is None:
            self.connect()
        return self._env

    @property
    def full_state(self) -> np.ndarray:
        """Privileged: Meta-World's full observation (39,) (hand, gripper, objects, previous frame, goal)."""
        if self._state is None:
            self.reset(self.seed)
        assert self._state is not None
        return self._state.copy()

    # -- episodes --------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start an episode (fully determined by `seed`); returns its first observation."""
        env = self.env
        if seed is not None:
            env.seed(seed)
        self._state, _ = env.reset()
        self._obs = None
        self._info = {IS_SUCCESS: False, TASK: self.task}
        self._done = False
        self._steps = 0
        return self.get_observation()

    @property
    def task(self) -> str:
        return INSTRUCTIONS[self.task_name]

    @property
    def info(self) -> dict[str, Any]:
        return self._info

    @property
    def episode_done(self) -> bool:
        return self._done

    # -- control ---------------------------------------------------------------------------------------
    def get_observation(self) -> dict[str, np.ndarray]:
        if self._state is None:
            self.reset(self.seed)
        if self._obs is None:
            assert self._camera is not None and self._state is not None
            frame = self._camera.render(self._env.data)[self.camera]  # [H, W, 3] uint8
            if self.camera == "corner2":
                frame = np.ascontiguousarray(frame[::-1, ::-1])  # upright, as LeRobot shows it
            self._obs = {
                STATE: self._state[:4].astype(np.float32),
                IMAGE_PREFIX + self.camera: frame,
            }
        return self._obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Step once with `action` (4,) clipped to [-1, 1]; returns the clipped action actually sent."""
        env = self.env
        if self._state is None:
            self.reset(self.seed)
        if self._done:
            raise RuntimeError("the episode is over; call reset() before sending another action")
        given = np.asarray(action, dtype=np.float32).reshape(-1)
        if given.shape != (4,) or not np.isfinite(given).all():
            raise ValueError(f"a Meta-World action is 4 finite numbers; got {np.asarray(action)!r}")
        sent = np.clip(given, -1.0, 1.0)
        self._state, _reward, _terminated, truncated, info = env.step(sent)
        self._obs = None
        self._steps += 1
        success = bool(info.get("success", 0.0))
        self._info = {**info, IS_SUCCESS: success, TASK: self.task}
        # LeRobot's Meta-World env ends an episode at its first success.
        self._done = success or bool(truncated) or self._steps >= self.max_episode_steps
        return sent


if __name__ == "__main__":  # `python -m envs.metaworld easy`: the group's tasks, for tasks=[...]
    if len(sys.argv) != 2:
        print(f"usage: python -m envs.metaworld <{'|'.join(DIFFICULTY)}|task>", file=sys.stderr)
        sys.exit(2)
    try:
        print(",".join(tasks_of(sys.argv[1])))
    except VLAError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
