"""Registering a module's classes: in order, and unregistering in reverse.

The same job as ``bpy.utils.register_classes_factory``, typed alike for every supported
Blender version's stubs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import bpy


def class_registrar(classes: Sequence[type]) -> tuple[Callable[[], None], Callable[[], None]]:
    def register() -> None:
        for cls in classes:
            bpy.utils.register_class(cls)

    def unregister() -> None:
        for cls in reversed(classes):
            bpy.utils.unregister_class(cls)

    return register, unregister
