"""Fixtures for the motion core tests: the bundled real mocap clips (examples/mocap)."""

from __future__ import annotations

from pathlib import Path

import pytest

MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"
CLIPS = sorted(p.name for p in MOCAP.glob("*.bvh"))


@pytest.fixture(scope="session")
def mocap_dir() -> Path:
    return MOCAP
