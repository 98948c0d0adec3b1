"""mypy on the add-on against the fake-bpy-module stubs of each supported Blender version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.2", "4.5", "5.0", "5.2", "latest"])
def test_mypy_is_clean_with_the_stubs_of(version: str) -> None:
    pytest.importorskip("mypy")
    # The first run per version creates build/mypy-venv/<version> (one small pip download).
    result = subprocess.run(
        ["bash", str(ROOT / "tests/addon/run_mypy.sh"), version],
        cwd=ROOT, env={**os.environ, "PY": sys.executable},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
