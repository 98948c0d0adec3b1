"""mypy on the daemon and the shared protocol, with the settings of pyproject.toml's
[[tool.mypy.overrides]] (every def typed, no unused ``type: ignore``).

The same check by hand: ``.venv/bin/python -m mypy daemon shared_protocol``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mypy_is_clean_on_the_daemon_and_the_shared_protocol() -> None:
    pytest.importorskip("mypy")
    # The cache under build/ keeps later runs to seconds (a cold run reads torch's and Ray's types).
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "build/mypy-cache/daemon",
         "daemon", "shared_protocol"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
