"""HY-Motion for Blender: text to character animation from a HY-Motion daemon.

This file only registers. Submodules are imported inside ``register`` so that ``core`` (the
bpy-free logic) and ``batch`` stay importable without Blender.
"""

from __future__ import annotations

from types import ModuleType


def _modules() -> list[ModuleType]:
    # Dependency order: properties before the operators and panels that use them.
    from . import (
        directing_ui,
        finishing_ui,
        operators,
        prefs,
        props,
        rig_operators,
        rig_ui,
        runtime,
        ui,
    )

    return [props, prefs, runtime, operators, ui, finishing_ui, directing_ui, rig_operators, rig_ui]


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
