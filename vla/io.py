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


def temporary_path(path: str | Path) -> Path:
    """The hidden sibling a writer fills before renaming it over `path` (same directory: the rename is
    atomic; hidden: never listed as a result)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to the disk (before a rename makes it visible)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_tree(path: str | Path) -> None:
    """fsync every file under directory `path` (a directory about to be renamed into place)."""
    for child in Path(path).rglob("*"):
        if child.is_file() and not child.is_symlink():
            fsync_file(child)


def move_into_place(tmp: str | Path, path: str | Path) -> None:
    """For a writer that streams into a temporary file over many calls (a video): fsync `tmp`, then
    rename it over `path`."""
    fsync_file(tmp)
    os.replace(tmp, path)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same directory, fsync, rename over)."""
    path = Path(path)
    tmp = temporary_path(path)
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
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(
    path: str | Path, keep_old: Callable[[Path], None] | None = None, durable: bool = False
) -> Iterator[Path]:
    """A temporary directory to fill; when the block ends without an exception it replaces `path`
    (an existing `path` is moved aside first, then removed — or handed to `keep_old`). On an exception
    the temporary directory is removed and `path` is untouched. `durable`: every file in it is fsynced
    before the rename (a training checkpoint that a SIGKILL or power loss must not leave half-written).

    The temporary is `.<name>.tmp-<pid>` beside `path` (what a killed writer leaves matches `.*tmp-*`,
    the pattern vla.train.state cleans up on resume)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if durable:
            fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
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


def replace_symlink(link: str | Path, target: str) -> None:
    """Point symlink `link` at `target` (relative to the link's directory) atomically: a new link under a
    temporary name, renamed over the old one."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
