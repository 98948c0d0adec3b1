"""Run in a fresh interpreter by test_addon_package.py: install the built zip as an extension
into an isolated user folder (BLENDER_USER_RESOURCES), enable it, generate against a daemon.

    python tests/addon/install_check.py ZIP DAEMON_ADDRESS
"""

from __future__ import annotations

import importlib
import json
import sys

import bpy


def main() -> int:
    zip_path, address = sys.argv[1], sys.argv[2]
    status = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    module = "bl_ext.user_default.hy_motion"
    addon = bpy.context.preferences.addons.get(module)
    report: dict[str, object] = {"install": sorted(status), "enabled": addon is not None}
    if addon is None:
        print(json.dumps(report))
        return 1
    protocol = importlib.import_module(f"{module}.core.protocol")
    report["vendored"] = protocol.client.__name__
    report["zmq"] = importlib.import_module("zmq").__file__
    addon.preferences.address = address
    scene = bpy.context.scene
    scene.render.fps = 30
    settings = scene.hy_motion
    settings.prompt, settings.duration_s, settings.candidates, settings.steps = "walk", 1.0, 2, 5
    report["generate"] = sorted(bpy.ops.hy_motion.generate())
    report["takes"] = len(settings.takes)
    report["status"] = settings.status_message
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
