"""Add-on preferences: daemon address, CURVE keys, timeouts, default export folder."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import FloatProperty, StringProperty

from .core.errors import HYMotionError
from .core.protocol import keys
from .core.settings import DEFAULT_ADDRESS, DEFAULT_JOB_TIMEOUT_S, ConnectionSettings
from .registration import class_registrar

ADDON_ID = __package__ or "blender_addon"
DEFAULT_EXPORT_DIR = "//hy_motion_exports/"
#: Used when the add-on runs from a checkout without being enabled (tests, the batch).
ADDRESS_ENV = "HY_MOTION_DAEMON"


class HYMOTION_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    address: StringProperty(  # type: ignore[valid-type]
        name="Daemon address",
        description=f"ZeroMQ address of the HY-Motion daemon, e.g. {DEFAULT_ADDRESS}",
        default=DEFAULT_ADDRESS,
    )
    server_key: StringProperty(  # type: ignore[valid-type]
        name="Server public key",
        description="The daemon's CURVE public key (40 characters); empty on this machine",
    )
    client_secret_file: StringProperty(  # type: ignore[valid-type]
        name="Your key pair",
        description="Your NAME.key_secret file; give NAME.key to the daemon's operator",
        subtype="FILE_PATH",
    )
    artist: StringProperty(  # type: ignore[valid-type]
        name="Artist name",
        description="Shown in the daemon's logs (loopback only; CURVE keys name you otherwise)",
    )
    connect_timeout_s: FloatProperty(  # type: ignore[valid-type]
        name="Connect timeout", description="Seconds before 'no daemon answered'",
        default=1.0, min=0.2, max=30.0, unit="TIME_ABSOLUTE",
    )  # fmt: skip
    job_timeout_s: FloatProperty(  # type: ignore[valid-type]
        name="Job timeout", description="Seconds a headless generation may take, then cancelled",
        default=DEFAULT_JOB_TIMEOUT_S, min=10.0, max=86400.0, unit="TIME_ABSOLUTE",
    )  # fmt: skip
    export_dir: StringProperty(  # type: ignore[valid-type]
        name="Export folder", description="Default folder for FBX/BVH exports", subtype="DIR_PATH",
        default=DEFAULT_EXPORT_DIR,
    )  # fmt: skip

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "address")
        layout.prop(self, "artist")
        box = layout.box()
        box.label(text="Remote daemon (CURVE)", icon="LOCKED")
        box.prop(self, "server_key")
        box.prop(self, "client_secret_file")
        row = box.row()
        row.operator("hy_motion.generate_keys", icon="KEY_HLT")
        row.operator("hy_motion.import_keys", icon="IMPORT")
        if self.client_secret_file:
            try:
                public = keys.load_keypair(Path(bpy.path.abspath(self.client_secret_file))).public
                box.label(text=f"Your public key: {public.decode()}")
                box.label(text=f"Fingerprint: {keys.fingerprint(public)}")
            except HYMotionError as exc:
                box.label(text=exc.message, icon="ERROR")
        layout.prop(self, "connect_timeout_s")
        layout.prop(self, "job_timeout_s")
        layout.prop(self, "export_dir")
        # The model's license limits where its output may be used; artists should see it here.
        notice = layout.box()
        notice.label(
            text="HY-Motion 1.0 is under the Tencent HY-Motion 1.0 Community License:", icon="INFO"
        )
        notice.label(text="not for use in the EU, the UK or South Korea; over 1M monthly users")
        notice.label(text="need a separate license from Tencent.")


def get(context: bpy.types.Context) -> HYMOTION_AP_preferences | None:
    """The preferences, or None when the add-on runs without being enabled."""
    addon = context.preferences.addons.get(ADDON_ID) if context.preferences else None
    if addon is None or not isinstance(addon.preferences, HYMOTION_AP_preferences):
        return None
    return addon.preferences


def connection_settings(context: bpy.types.Context) -> ConnectionSettings:
    prefs = get(context)
    if prefs is None:
        return ConnectionSettings(address=os.environ.get(ADDRESS_ENV, DEFAULT_ADDRESS))
    return ConnectionSettings(
        address=prefs.address,
        server_key=prefs.server_key,
        client_secret_file=bpy.path.abspath(prefs.client_secret_file)
        if prefs.client_secret_file
        else "",
        connect_timeout_s=prefs.connect_timeout_s,
        artist=prefs.artist,
    )


def job_timeout_s(context: bpy.types.Context) -> float:
    prefs = get(context)
    return prefs.job_timeout_s if prefs is not None else DEFAULT_JOB_TIMEOUT_S


def export_dir(context: bpy.types.Context) -> Path:
    prefs = get(context)
    folder = prefs.export_dir if prefs is not None else DEFAULT_EXPORT_DIR
    if folder.startswith("//") and not bpy.data.filepath:
        # An unsaved file has no folder to be relative to: use the home folder instead.
        return Path.home() / folder[2:]
    return Path(bpy.path.abspath(folder))


def use_key_pair(context: bpy.types.Context, secret_file: Path) -> None:
    """Point the preferences at ``secret_file`` (when the add-on is enabled)."""
    prefs = get(context)
    if prefs is not None:
        prefs.client_secret_file = str(secret_file)


def keys_dir() -> Path:
    """Where generated key pairs go: the extension's user folder, or ~/.hy_motion/keys."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="keys", create=True))
    except (ValueError, KeyError):
        path = Path.home() / ".hy_motion" / "keys"
        path.mkdir(parents=True, exist_ok=True)
        return path


classes = (HYMOTION_AP_preferences,)


register, unregister = class_registrar(classes)
