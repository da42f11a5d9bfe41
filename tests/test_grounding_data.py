"""The grounding-data generator: deterministic scenes, right labels (checked against an independent
segmentation render and the colour image), held-out split, every question type."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from envs.so101.grounding import QUESTION_TYPES, GroundingData
from envs.so101.scenes import SceneGenerator
from envs.so101.tasks import COLOURS, TASK_SPECS
from vla.errors import VLAError
from vla.vlm.loc import LocationCodec

RGB = {"red": 0, "green": 1, "blue": 2}


@pytest.fixture(scope="module")
def data() -> GroundingData:
    src = GroundingData(questions_per_scene=12)
    yield src
    src.close()


def test_same_seed_same_scene_and_questions(data: GroundingData) -> None:
    other = GroundingData(questions_per_scene=12)
    try:
        for i in (0, 5, 17):
            a, b = data[i], other[i]
            assert [(s.prompt, s.answer) for s in a] == [(s.prompt, s.answer) for s in b]
            for x, y in zip(a[0].images, b[0].images, strict=True):
                np.testing.assert_array_equal(x, y)
        assert data[1][0].images[0].tobytes() != data[2][0].images[0].tobytes()
    finally:
        other.close()


def test_heldout_split_draws_other_scenes() -> None:
    gen = SceneGenerator(64)
    try:
        train, held = gen.scene(3, "train"), gen.scene(3, "heldout")
        assert train.images["front"].tobytes() != held.images["front"].tobytes()
        np.testing.assert_array_equal(gen.scene(3, "heldout").images["front"], held.images["front"])
        with pytest.raises(VLAError, match="split"):
            gen.scene(0, "test")
    finally:
        gen.close()


def test_scenes_render_as_the_env_does() -> None:
    """The generator's camera rig is the env's: the same state gives the same pixels."""
    from envs.so101.env import SO101Env

    gen = SceneGenerator(96)
    env = SO101Env(task="touch", image_size=96)
    try:
        scene = gen.scene(4)
        env.reset(seed=0)
        env.data.qpos[:] = gen.data.qpos
        env.data.mocap_pos[:] = gen.data.mocap_pos
        mujoco.mj_forward(env.model, env.data)
        obs = env._observation()
        for cam in ("front", "wrist"):
            np.testing.assert_array_equal(obs[f"observation.images.{cam}"], scene.images[cam])
    finally:
        gen.close()
        env.close()


def test_pointed_locations_land_on_the_named_object(data: GroundingData) -> None:
    """Every point answer decodes onto the object's pixels in an independent segmentation render of the
    scene, and onto a pixel of the cube's colour in the image the policy sees."""
    gen = data.generator
    codec = LocationCodec(64)
    seg = mujoco.Renderer(gen.model, gen.height, gen.width)
    seg.enable_segmentation_rendering()
    checked = 0
    try:
        for i in range(40):
            samples = data[i]
            gen.scene(i)  # the scene's state, to render it again here
            for s in samples:
                for t in s.targets:
                    if t.mask is None:
                        continue
                    words = s.answer.split()
                    slot = words[words.index(t.label) + 1] if t.label is not None else s.answer
                    ((x, y),) = codec.points(slot, gen.width, gen.height)
                    seg.update_scene(gen.data, camera=t.camera)
                    ids = seg.render()[..., 0]
                    name = (
                        mujoco.mj_id2name(gen.model, mujoco.mjtObj.mjOBJ_GEOM, int(ids[int(y), int(x)])) or ""
                    )
                    body = gen.model.body(int(gen.model.geom_bodyid[ids[int(y), int(x)]])).name
                    if t.obj in COLOURS:
                        assert name == f"cube_{t.obj}", (s.prompt, s.answer, name)
                        pixel = s.images[list(data.cameras).index(t.camera)][int(y), int(x)].astype(int)
                        assert pixel.argmax() == RGB[t.obj], (s.prompt, pixel)
                    elif t.obj == "bin":
                        assert body == "bin"
                    else:
                        assert body in ("gripper", "moving_jaw")
                    checked += 1
    finally:
        seg.close()
    assert checked > 100


def test_answers_agree_with_the_scene(data: GroundingData) -> None:
    seen = set()
    for i in range(60):
        scene = data.generator.scene(i)
        for s in data[i]:
            seen.add(s.kind)
            if s.kind == "count":
                assert s.answer == str(len(scene.cubes))
            elif s.kind == "presence":
                colour = s.prompt.split()[3]
                assert s.answer == ("yes" if colour in scene.cubes else "no")
            elif s.kind == "instruction":
                assert any(
                    s.prompt == spec.instruction.format(colour=c)
                    for spec in TASK_SPECS.values()
                    for c in COLOURS
                )
                assert s.answer.split()[0] == "front" and "wrist" in s.answer.split()
                colour = next(c for c in COLOURS if c in s.prompt)
                assert colour in scene.cubes  # instructions name a cube that is there
            elif s.kind == "point" and "cube" in s.prompt:
                colour = s.prompt.split()[3]
                cam = s.prompt.split()[-2]
                visible = colour in scene.cubes and scene.views[cam][colour].visible
                assert (s.answer == "none") == (not visible)
            elif s.kind == "colour" and "nearest" in s.prompt:
                near = min(scene.cubes, key=lambda c: np.linalg.norm(scene.cubes[c] - scene.gripper))
                assert s.answer == near
    assert seen == set(QUESTION_TYPES)


def test_vocabulary_covers_every_prompt_and_answer(data: GroundingData) -> None:
    import re

    words = {w for t in data.vocabulary() for w in t.split()}
    for i in range(30):
        for s in data[i]:
            text = re.sub(r"<loc\d{4}>", " ", f"{s.prompt} {s.answer}")
            assert set(text.split()) <= words, text


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(VLAError, match="question_types"):
        GroundingData(question_types=["point", "poetry"])
    with pytest.raises(VLAError, match="weights"):
        GroundingData(weights={"poetry": 1.0})
    with pytest.raises(VLAError, match="cameras"):
        SceneGenerator(32, cameras=["side"])
