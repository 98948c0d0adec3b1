"""Writing files so that an error never leaves a half-written one behind (no bpy)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ExportError, FileExists

_PART = ".part"
#: A temporary name from atomic_path: ".<stem>.<8 random characters>.part<suffix>".
_PART_NAME = re.compile(r"\.(?P<stem>[^/\\'\"\s]+?)\.[a-z0-9_]{8}\.part(?P<suffix>\.\w+)")


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
            prefix=f".{path.stem}.", suffix=f"{_PART}{path.suffix}", dir=path.parent
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


def final_names(text: str) -> str:
    """The temporary file names of ``atomic_path`` in ``text`` replaced by the final ones."""
    return _PART_NAME.sub(r"\g<stem>\g<suffix>", text)


@contextlib.contextmanager
def output_with_final_names() -> Iterator[None]:
    """Blender's savers and exporters print the path they write, which is the temporary one.
    Capture what they print (C and Python alike, so at the file descriptor) and print it again
    with the final names: logs name the files that exist."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            capture.seek(0)
            sys.stdout.write(final_names(capture.read().decode("utf-8", "replace")))
            sys.stdout.flush()
