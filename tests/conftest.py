"""Suite-wide settings: tests never reach the network (hub ids fail fast instead of downloading)."""

import importlib.util
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    # ray.serve's own pydantic models use pydantic-1 style fields (Ray's to fix); ours stay
    # loud. Only where pydantic exists: Blender's test venvs have neither it nor Ray, and
    # pytest warns about a filter whose category it cannot import.
    if importlib.util.find_spec("pydantic") is not None:
        config.addinivalue_line(
            "filterwarnings", "ignore::pydantic.warnings.PydanticDeprecatedSince20:ray.*"
        )
