"""Grounding data for VLM pretraining: questions about SO-101 scenes, answered from the simulator's truth.

`GroundingData(split="train")` is a pretraining source for `vla-pretrain` (and for co-training in
`vla-train`): item i is scene i of the split (envs/so101/scenes.py) with `questions_per_scene` questions
drawn from these types:

    point        "point to the red cube in the front image"       -> <locY><locX> | none
    box          "detect the bin in the wrist image"              -> <locY0><locX0><locY1><locX1> | none
    presence     "is there a green cube?"                         -> yes | no
    count        "how many cubes are there?"                      -> 1 | 2 | 3
    colour       "what colour is the cube nearest to the gripper?" / "... at <locY><locX> in the front image"
    relation     "is the red cube left of the blue cube in the front image?" -> yes | no;
                 "which cube is nearest to the gripper?" / "farthest from the robot?" -> a colour
    gripper      "point to the gripper in the wrist image", "is the gripper open?"
    instruction  every instruction of the task suite ("touch the red cube", "pick up the red cube",
                 "put the red cube in the bin") -> the named cube's point in each camera, in camera order:
                 "front <locY><locX> wrist none"
    objects      "list the objects in the front image" -> every visible object, left to right, each named
                 (a cube by its colour) and pointed at: "green <loc..><loc..> bin <loc..><loc..> red ..."

so the words a VLA reads in the tasks are words the VLM learnt to ground. Points and boxes are in the
pixels of the camera the question names, as location tokens (vla/vlm/loc.py); a point is the mask pixel
nearest the object's centroid whose location bin decodes back onto the object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.so101.render import CAMERAS
from envs.so101.scenes import BIN, GRIPPER, OBJECTS, SPLITS, Scene, SceneGenerator
from envs.so101.tasks import COLOURS, TASK_SPECS
from vla.errors import VLAError
from vla.vlm.loc import NONE_WORD, LocationCodec
from vla.vlm.samples import PointTarget, VLMSample

QUESTION_TYPES: tuple[str, ...] = (
    "point",
    "box",
    "presence",
    "count",
    "colour",
    "relation",
    "gripper",
    "instruction",
    "objects",
)
DEFAULT_WEIGHTS: dict[str, float] = {
    "point": 3.0,
    "box": 1.0,
    "presence": 0.7,
    "count": 0.5,
    "colour": 1.0,
    "relation": 1.0,
    "gripper": 0.8,
    "instruction": 3.0,
    "objects": 2.0,
}
YES, NO = "yes", "no"
_NUMBERS = ("0", "1", "2", "3")


@dataclass
class _QA:
    prompt: str
    answer: str
    kind: str
    targets: tuple[PointTarget, ...] = ()
    # For contrastive sets: the cube the question names, and what else was drawn for it (camera, template)
    cube: str | None = None
    camera: str | None = None
    template: int | None = None


class GroundingData:
    """A map-style pretraining source over the scenes of one split (item i -> a list of VLMSamples)."""

    def __init__(
        self,
        split: str = "train",
        image_size: int = 96,
        cameras: Sequence[str] = CAMERAS,
        questions_per_scene: int = 8,
        question_types: Sequence[str] | None = None,
        weights: dict[str, float] | None = None,
        loc_bins: int = 64,
        scenes: int = 1_000_000,
        contrastive: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise VLAError(f"data.split={split!r}: choose one of {list(SPLITS)}")
        types = list(question_types) if question_types is not None else list(QUESTION_TYPES)
        unknown = [t for t in types if t not in QUESTION_TYPES]
        if unknown or not types:
            raise VLAError(
                f"data.question_types={types}: unknown type(s) {unknown}; choose from {list(QUESTION_TYPES)}"
            )
        weights = {**DEFAULT_WEIGHTS, **(dict(weights) if weights else {})}
        bad = [k for k in weights if k not in QUESTION_TYPES]
        if bad:
            raise VLAError(
                f"data.weights: unknown question type(s) {bad}; choose from {list(QUESTION_TYPES)}"
            )
        if questions_per_scene < 1 or scenes < 1:
            raise VLAError("data.questions_per_scene and data.scenes must be ≥ 1")
        p = np.array([max(0.0, float(weights[t])) for t in types])
        if p.sum() <= 0:
            raise VLAError(f"data.weights: every weight of {types} is 0")
        self.split = split
        self.image_size = int(image_size)
        self.cameras = tuple(cameras)
        self.questions_per_scene = int(questions_per_scene)
        self.types = types
        self.type_p = p / p.sum()
        self.codec = LocationCodec(int(loc_bins))
        self.scenes = int(scenes)
        # A question naming a cube is asked about every cube on the table in turn (same template, same
        # camera): samples that differ only by the colour word, which is what grounding has to learn.
        self.contrastive = bool(contrastive)
        self._generator: SceneGenerator | None = None  # built lazily: once per DataLoader worker

    # ------------------------------------------------------------------ the source protocol

    def __len__(self) -> int:
        return self.scenes

    def __getitem__(self, index: int) -> list[VLMSample]:
        if not 0 <= index < self.scenes:
            raise IndexError(index)
        scene = self.generator.scene(int(index), self.split)
        rng = np.random.default_rng([SPLITS[self.split], int(index), 7])
        kinds = rng.choice(self.types, size=self.questions_per_scene, p=self.type_p)
        images = [scene.images[c] for c in self.cameras]
        labels = [scene.labels[c] for c in self.cameras]
        qas: list[_QA] = []
        for kind in kinds:
            if len(qas) >= self.questions_per_scene:
                break
            qa = ask(str(kind), scene, rng, self.codec, self.cameras)
            qas.append(qa)
            if self.contrastive and qa.cube is not None:  # the same question about every other cube
                for other in (c for c in scene.cubes if c != qa.cube):
                    if len(qas) < self.questions_per_scene:
                        qas.append(
                            ask(qa.kind, scene, rng, self.codec, self.cameras, other, qa.camera, qa.template)
                        )
        return [VLMSample(images, q.prompt, q.answer, q.kind, q.targets, labels, self._focus(q)) for q in qas]

    def _focus(self, qa: _QA) -> tuple[int, tuple[int, ...]] | None:
        """A question naming a cube on the table: look for it in the named camera (all, for instructions)."""
        if qa.cube is None:
            return None
        cams = tuple(range(len(self.cameras))) if qa.camera is None else (self.cameras.index(qa.camera),)
        return OBJECTS.index(qa.cube) + 1, cams

    label_names = OBJECTS  # what the scene label maps' values 1.. name

    @property
    def samples_per_item(self) -> int:
        return self.questions_per_scene

    @property
    def generator(self) -> SceneGenerator:
        if self._generator is None:
            self._generator = SceneGenerator(self.image_size, self.cameras)
        return self._generator

    def vocabulary(self) -> list[str]:
        """Every prompt and answer text the templates can produce (location tokens aside), for a tokenizer."""
        texts = [YES, NO, NONE_WORD, "open", "closed", *_NUMBERS, *COLOURS, *self.cameras, BIN, GRIPPER]
        objects = [f"the {c} cube" for c in COLOURS] + ["the bin", "the gripper"]
        for cam in self.cameras:
            for obj in objects:
                texts += [f"point to {obj} in the {cam} image", f"detect {obj} in the {cam} image"]
            texts.append(f"what colour is the cube at in the {cam} image")
            texts.append(f"list the objects in the {cam} image")
            texts += [
                f"is the {a} cube left of the {b} cube in the {cam} image" for a in COLOURS for b in COLOURS
            ]
        texts += [f"is there a {c} cube" for c in COLOURS]
        texts += [
            "how many cubes are there",
            "is the gripper open",
            "what colour is the cube nearest to the gripper",
        ]
        texts += ["which cube is nearest to the gripper", "which cube is farthest from the robot"]
        texts += [spec.instruction.format(colour=c) for spec in TASK_SPECS.values() for c in COLOURS]
        return texts

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()
            self._generator = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers build their own renderer
        return {**self.__dict__, "_generator": None}


# ---------------------------------------------------------------------- questions


def ask(
    kind: str,
    scene: Scene,
    rng: np.random.Generator,
    codec: LocationCodec,
    cameras: Sequence[str],
    cube: str | None = None,
    camera: str | None = None,
    template: int | None = None,
) -> _QA:
    """One question of `kind` about `scene`, with its true answer; `cube`, `camera` and `template` fix what
    is otherwise drawn (point, box, instruction: a contrastive set about each cube)."""
    present = list(scene.cubes)
    cam = camera or str(cameras[int(rng.integers(len(cameras)))])
    if kind == "point":
        obj = cube or _pick_object(rng, present)
        answer, targets = _point(scene, cam, obj, codec)
        named = obj if obj in present else None
        return _QA(f"point to {_name(obj)} in the {cam} image", answer, kind, targets, named, cam)
    if kind == "box":
        obj = cube or _pick_object(rng, present)
        view = scene.views[cam].get(obj)  # None: the cube is not on the table
        h, w = scene.size
        answer = codec.box(*view.box, w, h) if view is not None and view.box is not None else NONE_WORD
        named = obj if obj in present else None
        return _QA(f"detect {_name(obj)} in the {cam} image", answer, kind, (), named, cam)
    if kind == "presence":
        colour = str(rng.choice(COLOURS))
        return _QA(f"is there a {colour} cube", YES if colour in present else NO, kind)
    if kind == "count":
        return _QA("how many cubes are there", str(len(present)), kind)
    if kind == "colour":
        if rng.random() < 0.5:
            colour = _nearest(scene, present)
            return _QA("what colour is the cube nearest to the gripper", colour, kind)
        visible = [c for c in present if scene.views[cam][c].visible]
        if not visible:
            cam = cameras[0]
            visible = [c for c in present if scene.views[cam][c].visible] or present
        colour = str(rng.choice(visible))
        loc, _ = _point(scene, cam, colour, codec)
        return _QA(f"what colour is the cube at {loc} in the {cam} image", colour, kind)
    if kind == "relation":
        roll = rng.random()
        if len(present) >= 2 and roll < 0.5:
            a, b = (str(c) for c in rng.choice(present, size=2, replace=False))
            va, vb = scene.views[cam][a], scene.views[cam][b]
            if not (va.visible and vb.visible):
                cam = cameras[0]
                va, vb = scene.views[cam][a], scene.views[cam][b]
            if va.visible and vb.visible:
                left = YES if va.point[0] < vb.point[0] else NO  # type: ignore[index]
                return _QA(f"is the {a} cube left of the {b} cube in the {cam} image", left, kind)
        if roll < 0.75:
            return _QA("which cube is nearest to the gripper", _nearest(scene, present), kind)
        far = max(present, key=lambda c: float(np.hypot(*scene.cubes[c][:2])))
        return _QA("which cube is farthest from the robot", far, kind)
    if kind == "gripper":
        if rng.random() < 0.75:
            answer, targets = _point(scene, cam, GRIPPER, codec)
            return _QA(f"point to the gripper in the {cam} image", answer, kind, targets)
        return _QA("is the gripper open", "open" if scene.gripper_opening > 50.0 else "closed", kind)
    if kind == "instruction":
        colour = cube or str(rng.choice(present))
        template = int(rng.integers(len(TASK_SPECS))) if template is None else template
        spec = list(TASK_SPECS.values())[template]
        slots: list[str] = []
        found: list[PointTarget] = []
        for c in cameras:
            answer, target = _point(scene, c, colour, codec, label=c)
            slots.append(f"{c} {answer}")
            found += target
        return _QA(
            spec.instruction.format(colour=colour),
            " ".join(slots),
            kind,
            tuple(found),
            colour,
            None,
            template,
        )
    if kind == "objects":
        views = scene.views[cam]
        visible = sorted((o for o in views if views[o].visible), key=lambda o: views[o].point[0])  # type: ignore[index]
        slots, found = [], []
        for obj in visible:
            answer, target = _point(scene, cam, obj, codec, label=obj)
            slots.append(f"{obj} {answer}")
            found += target
        return _QA(f"list the objects in the {cam} image", " ".join(slots) or NONE_WORD, kind, tuple(found))
    raise VLAError(f"question type {kind!r}: choose one of {list(QUESTION_TYPES)}")


def _pick_object(rng: np.random.Generator, present: list[str]) -> str:
    """Mostly a cube on the table; sometimes an absent one (answer: none), the bin or the gripper."""
    roll = rng.random()
    if roll < 0.7:
        return str(rng.choice(present))
    if roll < 0.8:
        absent = [c for c in COLOURS if c not in present]
        return str(rng.choice(absent)) if absent else str(rng.choice(present))
    return BIN if roll < 0.9 else GRIPPER


def _name(obj: str) -> str:
    return f"the {obj}" if obj in (BIN, GRIPPER) else f"the {obj} cube"


def _point(
    scene: Scene, camera: str, obj: str, codec: LocationCodec, label: str | None = None
) -> tuple[str, tuple[PointTarget, ...]]:
    """(answer slot, its evaluation target) for `obj` in `camera`: location tokens or `none`."""
    view = scene.views[camera].get(obj)
    mask = scene.mask(camera, obj) if view is not None else None
    if view is None or not view.visible or mask is None:
        return NONE_WORD, (PointTarget(camera, obj, None, label),)
    h, w = scene.size
    ys, xs = np.nonzero(mask)
    cx, cy = view.point  # type: ignore[misc]
    for k in np.argsort((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2):
        token = codec.point(xs[k] + 0.5, ys[k] + 0.5, w, h)
        ((px, py),) = codec.points(token, w, h)
        if mask[int(py), int(px)]:
            return token, (PointTarget(camera, obj, mask, label),)
    return codec.point(cx, cy, w, h), (PointTarget(camera, obj, mask, label),)


def _nearest(scene: Scene, present: list[str]) -> str:
    return min(present, key=lambda c: float(np.linalg.norm(scene.cubes[c] - scene.gripper)))
