"""Shared fixtures: the tiny model written to disk once per session, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from daemon.engine.engine import HYMotionEngine
from daemon.engine.factory import EngineOptions, ModelLoader, create_engine
from daemon.engine.pipeline import MotionPipeline
from daemon.engine.tiny import ensure_tiny


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny(tmp_path_factory.mktemp("engine") / "tiny")


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_root: Path) -> MotionPipeline:
    served = ModelLoader(EngineOptions(tiny_dir=str(tiny_root)), torch.device("cpu")).load(
        "tiny", "tiny"
    )
    assert served.pipeline is not None
    return served.pipeline


@pytest.fixture(scope="session")
def tiny_engine(tiny_root: Path) -> HYMotionEngine:
    return create_engine({"tiny_dir": str(tiny_root)}, "cpu")
