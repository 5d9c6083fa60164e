"""A backup set packed as a .tar.gz in memory, for downloads."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from core.backups import get_set


def backup_archive(models_dir: Path | str, timestamp: str) -> bytes:
    """The files of one backup set as a gzip'd tar, under a `backup_<timestamp>/` folder with their on-disk names."""
    chosen = get_set(Path(models_dir), timestamp)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(chosen.files.values()):
            tar.add(path, arcname=f"backup_{timestamp}/{path.name}", recursive=False)
    return buffer.getvalue()


def archive_name(timestamp: str, version: str | None) -> str:
    """The download file name for a backup set."""
    return f"model_backup_{timestamp}" + (f"_v{version}" if version else "") + ".tar.gz"
