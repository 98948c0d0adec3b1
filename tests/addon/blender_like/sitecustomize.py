"""Put on PYTHONPATH by the add-on tests that run an installed extension under the bpy module.

A real Blender has no pyzmq of its own: the extension's wheel provides it. The test venv has
pyzmq (the rest of the suite needs it) and it would shadow the wheel, so here ``zmq`` is found
only where Blender installed the extension's wheels. With ``HYMOTION_REPORT_FILE`` set, the
file ``zmq`` was loaded from and the ``*.batch`` modules imported are written there as JSON as
they are imported (not at exit: the batch may end the process without the interpreter's
clean-up, see ``blender_addon.batch.exit_with``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType

_used: dict[str, object] = {"zmq": None, "batch_modules": []}
_batch_modules: set[str] = set()


class ExtensionWheelsOnly(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.endswith(".batch"):
            _batch_modules.add(fullname)
            _record("batch_modules", sorted(_batch_modules))
        if fullname != "zmq":
            return None
        wheels = [p for p in sys.path if "/extensions/.local/" in p.replace("\\", "/")]
        spec = importlib.machinery.PathFinder.find_spec(fullname, wheels)
        if spec is None:
            raise ModuleNotFoundError("zmq is not among the extension's installed wheels")
        _record("zmq", spec.origin)
        return spec


def _record(key: str, value: object) -> None:
    _used[key] = value
    if os.environ.get("HYMOTION_REPORT_FILE"):
        with open(os.environ["HYMOTION_REPORT_FILE"], "w", encoding="utf-8") as f:
            json.dump(_used, f)


sys.meta_path.insert(0, ExtensionWheelsOnly())
