"""Run in a fresh interpreter by test_addon_package.py: install a built zip as an extension into
an isolated user folder (BLENDER_USER_RESOURCES), and when Blender accepts it, generate against
a daemon. Prints one JSON report line. Run with tests/addon/blender_like on PYTHONPATH, so that
pyzmq comes from the extension's wheel as in a real Blender.

    python tests/addon/install_check.py ZIP [DAEMON_ADDRESS]
"""

from __future__ import annotations

import importlib
import json
import sys

import bpy

MODULE = "bl_ext.user_default.hy_motion"


def main() -> int:
    zip_path = sys.argv[1]
    status = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    addon = bpy.context.preferences.addons.get(MODULE)
    report: dict[str, object] = {"install": sorted(status), "enabled": addon is not None}
    if addon is None or len(sys.argv) < 3:
        print(json.dumps(report))
        return 0
    report["panels"] = sorted(n for n in dir(bpy.types) if n.startswith("HYMOTION_"))
    report["operators"] = sorted(dir(bpy.ops.hy_motion))
    protocol = importlib.import_module(f"{MODULE}.core.protocol")
    report["vendored"] = protocol.client.__name__
    report["zmq"] = importlib.import_module("zmq").__file__
    addon.preferences.address = sys.argv[2]
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
    code = main()
    if MODULE in sys.modules:  # the extension's own exit (bpy 4.2's module crashes at exit)
        importlib.import_module(f"{MODULE}.batch").exit_with(code)
    sys.exit(code)
