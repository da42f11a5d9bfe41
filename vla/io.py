"""Atomic writes: a reader (or a crash) never sees half a file or half a directory.

Every writer of reports, metrics, checkpoints and calibration files goes through these: the content is
written next to its target under a hidden temporary name, flushed, then renamed over the target (a rename
within one directory is atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same directory, fsync, rename over)."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """`json.dumps(data)` to `path`, atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent))


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary path to write with any library (torch.save, safetensors, PIL...); renamed over `path`
    when the block ends without an exception, removed otherwise."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path, keep_old: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """A temporary directory to fill; when the block ends without an exception it replaces `path`
    (an existing `path` is moved aside first, then removed — or handed to `keep_old`). On an exception
    the temporary directory is removed and `path` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        if keep_old is not None:
            keep_old(old)
        else:
            shutil.rmtree(old)


def prepare_output_dir(output_dir: Path) -> None:
    """Create `output_dir` and check a file can be written there; a user error (one line) if not."""
    import tempfile

    from vla.errors import VLAError

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".probe"):
            pass
    except OSError as e:
        raise VLAError(f"output_dir={output_dir}: cannot write there ({e.strerror or e})") from None
