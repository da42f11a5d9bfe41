"""vla-pretrain and vla-vlm-eval as a user runs them: outputs, resume after SIGKILL, data from disk, bad
input, and the pretrained VLM fine-tuned by vla-train and rolled out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vla.train import state

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A VLM small enough for a test: 32 px images, a 32-wide 2-layer model, 4 questions per scene.
TINY = [
    "vlm.backbone.hidden_size=32",
    "vlm.backbone.intermediate_size=64",
    "vlm.backbone.layers=2",
    "vlm.backbone.vision_hidden_size=32",
    "vlm.backbone.vision_intermediate_size=64",
    "vlm.backbone.vision_layers=1",
    "vlm.backbone.image_size=32",
    "data.image_size=32",
    "data.questions_per_scene=4",
    "trainer.batch_size=8",
    "trainer.num_workers=0",
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "eval.num_items=4",
    "eval.examples=3",
]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MUJOCO_GL="egl")


def _cli(cwd: Path, *argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "vlm"
    proc = _cli(
        out.parent, "vla-pretrain", *TINY, f"output_dir={out}", "trainer.steps=6", "trainer.save_every=3"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pointing" in proc.stdout and "front" in proc.stdout
    return out


def test_pretrain_writes_model_checkpoints_metrics_and_eval(pretrained: Path) -> None:
    assert sorted(p.name for p in (pretrained / "checkpoints").iterdir()) == ["000003", "000006", "last"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (pretrained / "model").iterdir()
    }
    metrics = json.loads((pretrained / "eval.json").read_text())
    for key in ("pointing_accuracy", "pointing_accuracy_per_camera", "answer_accuracy_per_type", "examples"):
        assert key in metrics
    assert (
        set(metrics["pointing_accuracy_per_camera"]) <= {"front", "wrist"} and len(metrics["examples"]) == 3
    )
    records = [json.loads(line) for line in (pretrained / "pretrain_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [6]  # log_every=10: the last step is always logged
    assert np.isfinite(records[0]["loss"])


def test_vlm_eval_command(pretrained: Path, tmp_path: Path) -> None:
    proc = _cli(
        tmp_path, "vla-vlm-eval", f"model_dir={pretrained / 'model'}", "data.image_size=32",
        "eval.num_items=3", f"output_dir={tmp_path / 'e'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert metrics["items"] == 3 and metrics["samples"] == 3 * 8  # questions_per_scene default: 8


def test_pretrained_vlm_fine_tunes_and_rolls_out(pretrained: Path, tmp_path: Path) -> None:
    """pretrain -> save -> vla-train model.backbone.pretrained=<dir> (co-trained) -> vla-rollout."""
    from vla.model.vla import VLAModel

    data = tmp_path / "touch"
    proc = _cli(
        tmp_path, "vla-record", "robot.task=touch", "robot.image_size=64", "episodes=2", "progress=false",
        f"dataset.root={data}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "run"
    proc = _cli(
        tmp_path, "vla-train", "trainer=debug", "trainer.steps=3", "trainer.save_every=3", "trainer.log_every=1",
        "trainer.progress=false", "model.chunk_size=10", f"dataset.root={data}", f"output_dir={run}",
        f"model.backbone.pretrained={pretrained / 'model'}", "trainer.cotrain.ratio=1.0",
        "trainer.cotrain.num_workers=0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run / "train_metrics.jsonl").read_text().splitlines()]
    for r in records:  # both losses logged, and the total is their sum (weight 1)
        assert r["loss"] == pytest.approx(r["action_loss"] + r["lm_loss"], rel=1e-4)
    model = VLAModel.from_pretrained(run / "checkpoints" / "last")
    assert model.backbone.hidden_size == 32 and "<loc0000>" in model.text_tokenizer.tokenizer.get_vocab()
    proc = _cli(
        tmp_path, "vla-rollout", f"policy.checkpoint={run / 'checkpoints' / 'last'}", "robot.task=touch",
        "robot.image_size=64", "episodes=2", "robot.max_episode_steps=15", "videos=0", f"output_dir={tmp_path / 'ev'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["episodes"] == 2 and 0.0 <= report["named_first_share"] <= 1.0
    assert "named_first_share" in report["per_task"]["touch"]


def test_sigkill_then_resume_continues(tmp_path: Path) -> None:
    out = tmp_path / "vlm"
    args = [
        str(BIN / "vla-pretrain"),
        *TINY,
        f"output_dir={out}",
        "trainer.save_every=2",
        "trainer.log_every=1",
    ]
    proc = subprocess.Popen(
        [*args, "trainer.steps=100000"],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not state.is_complete(out / "checkpoints" / "000004"):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    last = state.find_last(out / "checkpoints")
    assert last is not None and int(last.name) >= 4
    resumed_from = int(last.name)
    done = _cli(tmp_path, *[a.rsplit("/", 1)[-1] if i == 0 else a for i, a in enumerate(args)], "resume=true",
                f"trainer.steps={resumed_from + 2}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (out / "pretrain_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r][-2:] == [resumed_from + 1, resumed_from + 2]
    saved = json.loads((out / "checkpoints" / "last" / state.STATE_FILE).read_text())["progress"]
    assert (
        saved["step"] == resumed_from + 2 and saved["position"] == (resumed_from + 2) * 2
    )  # 8 samples / 4 a scene
    assert (out / "eval.json").is_file()


def _write_jsonl(folder: Path, lines: list[str]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    (folder / "data.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def test_jsonl_data_pretrains(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"image": f"im{i % 3}.png", "prompt": f"what is in picture {i % 3}", "answer": f"thing {i % 3}"}
        )
        for i in range(12)
    ]
    folder = _write_jsonl(tmp_path / "mine", lines)
    model_overrides = [o for o in TINY if not o.startswith("data.")]
    proc = _cli(
        tmp_path, "vla-pretrain", *model_overrides, "data=jsonl", f"data.path={folder}", "data.heldout_every=4",
        "trainer.steps=2", f"output_dir={tmp_path / 'o'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert metrics["samples"] == 3 and metrics["pointing_accuracy"] is None  # lines 0, 4, 8 held out


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "holds no samples"),
        (['{"image": "im0.png", "prompt": "a"'], "not valid JSON"),
        (['{"image": "im0.png", "answer": "b"}'], "missing 'prompt'"),
        (['{"image": "nope.png", "prompt": "a", "answer": "b"}'], "does not exist"),
    ],
)
def test_bad_jsonl_is_one_line_and_exit_2(tmp_path: Path, lines: list[str], message: str) -> None:
    folder = _write_jsonl(tmp_path / "bad", lines)
    proc = _cli(tmp_path, "vla-pretrain", "data=jsonl", f"data.path={folder}", f"output_dir={tmp_path / 'o'}",
                timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("vla-pretrain: error:")
    assert message in proc.stderr


def test_unknown_question_type_and_wrong_family_are_one_line(pretrained: Path, tmp_path: Path) -> None:
    proc = _cli(tmp_path, "vla-pretrain", "data.question_types=[point,poetry]", f"output_dir={tmp_path / 'o'}",
                timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "poetry" in proc.stderr.strip().splitlines()[-1]
    proc = _cli(
        tmp_path, "vla-train", "trainer=debug", f"dataset.root={tmp_path / 'x'}", f"output_dir={tmp_path / 't'}",
        f"model.backbone.pretrained={pretrained / 'model'}", "model.backbone.family=paligemma", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
