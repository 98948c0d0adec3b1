"""Put on PYTHONPATH by the add-on tests that run an installed extension under the bpy module.

A real Blender has no pyzmq of its own: the extension's wheel provides it. The test venv has
pyzmq (the rest of the suite needs it) and it would shadow the wheel, so here ``zmq`` is found
only where Blender installed the extension's wheels. With ``HYMOTION_REPORT_FILE`` set, the
modules that were used are written there as JSON at exit.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType


class ExtensionWheelsOnly(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "zmq":
            return None
        wheels = [p for p in sys.path if "/extensions/.local/" in p.replace("\\", "/")]
        spec = importlib.machinery.PathFinder.find_spec(fullname, wheels)
        if spec is None:
            raise ModuleNotFoundError("zmq is not among the extension's installed wheels")
        return spec


def _report(path: str) -> None:
    zmq = sys.modules.get("zmq")
    modules = sorted(name for name in sys.modules if name.endswith(".batch"))
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"zmq": getattr(zmq, "__file__", None), "batch_modules": modules}, f)


sys.meta_path.insert(0, ExtensionWheelsOnly())
if os.environ.get("HYMOTION_REPORT_FILE"):
    atexit.register(_report, os.environ["HYMOTION_REPORT_FILE"])
