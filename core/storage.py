"""Durable file primitives: temp file in the same directory, fsync, os.replace, fsync the directory."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from core.constants import SET_FILES, TMP_PREFIX

FileSignature = tuple[tuple[int, int, int] | None, ...]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name beside `target` (same filesystem, so os.replace is atomic)."""
    return target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}"


def write_temp_bytes(target: Path, data: bytes) -> Path:
    """Write `data` to a fsynced temp file beside `target`; return its path."""
    tmp = temp_path_for(target)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def copy_to_temp(source: Path, target: Path) -> Path:
    """Copy `source` to a fsynced temp file beside `target`; return its path."""
    tmp = temp_path_for(target)
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    return tmp


def atomic_write_bytes(target: Path, data: bytes) -> None:
    tmp = write_temp_bytes(target, data)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def atomic_write_json(target: Path, payload: Any) -> None:
    atomic_write_bytes(target, json_bytes(payload))


def json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@functools.lru_cache(maxsize=64)
def _set_paths(models_dir: Path) -> tuple[str, ...]:
    """The current set's file paths in `models_dir` (joined once: set_signature runs on every status request)."""
    return tuple(os.path.join(models_dir, name) for name in SET_FILES)


def set_signature(models_dir: Path) -> FileSignature:
    """(inode, size, mtime) of every file of the current set: any promote, restore or hand copy changes it."""
    out: list[tuple[int, int, int] | None] = []
    for path in _set_paths(models_dir):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)
