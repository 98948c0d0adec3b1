"""Writing files so that an error never leaves a half-written one behind (no bpy)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ExportError, FileExists


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse an existing file unless the overwrite was confirmed."""
    if path.exists() and not overwrite:
        raise FileExists(f"{path} already exists", path=str(path))


@contextlib.contextmanager
def atomic_path(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    Same folder, so the final ``os.replace`` is atomic; same suffix, because Blender's
    exporters choose the format from it.
    """
    check_target(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent
        )
        os.close(handle)
    except OSError as exc:
        raise ExportError(f"cannot write in {path.parent}: {exc.strerror}", path=str(path)) from exc
    temp = Path(temp_name)
    try:
        yield temp
        if not temp.is_file() or temp.stat().st_size == 0:
            raise ExportError(f"the exporter wrote nothing for {path.name}", path=str(path))
        try:
            # mkstemp creates 0600; give the file the permissions a plain open() would.
            os.chmod(temp, 0o666 & ~_umask())
            os.replace(temp, path)
        except OSError as exc:
            raise ExportError(f"cannot write {path}: {exc.strerror}", path=str(path)) from exc
    finally:
        temp.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
