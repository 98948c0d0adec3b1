"""Errors the add-on raises itself (the daemon's own errors come from the shared protocol).

They extend the shared ``HYMotionError`` so the UI, the operators and the batch handle every
failure the same way: a message plus a ``hint`` saying what to do.
"""

from __future__ import annotations

from .protocol import errors

HYMotionError = errors.HYMotionError


class SettingsError(HYMotionError):
    """A preference, panel or operator value cannot be used (address, key, a take's name)."""

    code = "bad_settings"
    hint = "Change the value named above and try again."


class OnlineAccessRefused(SettingsError):
    """A non-loopback daemon while Blender's 'Allow Online Access' is off."""

    code = "online_access_refused"
    hint = (
        "Enable Edit > Preferences > System > Network > Allow Online Access, start Blender with "
        "--online-mode, or use a daemon on this machine (tcp://127.0.0.1:...)."
    )


class ServerKeyError(SettingsError):
    """The daemon's public key (preference "Server public key", batch ``--server-key``)."""

    code = "bad_server_key"
    hint = (
        "Paste the daemon's public key again (the 40 characters of the operator's server.key) "
        "in Edit > Preferences > Add-ons > HY-Motion, or pass it with --server-key."
    )


class KeyPairError(SettingsError):
    """The artist's key pair (preference "Your key pair", batch ``--key-file``)."""

    code = "bad_key_pair"
    hint = (
        "Use Generate Key Pair or Import Key Pair in Edit > Preferences > Add-ons > HY-Motion "
        "(batch: --key-file NAME.key_secret), and give your public NAME.key to the daemon's "
        "operator for its allow-list."
    )


class NoAnswerOverCurve(errors.DaemonUnreachable):
    """Silence from a CURVE daemon: down, or refusing the keys (CURVE does not say which)."""

    code = "no_answer_over_curve"
    hint = (
        "If the daemon is running, it refuses these keys: ask its operator to check that the "
        "server public key is the daemon's and that your public key is in its allow-list "
        "(the daemon's log names refused keys by fingerprint)."
    )


class JobTimeout(HYMotionError):
    """No result within the job timeout (headless); the job was cancelled on the daemon."""

    code = "job_timeout"
    hint = (
        "Raise the job timeout (Edit > Preferences > Add-ons > HY-Motion, or the batch's "
        "--timeout), or ask for fewer candidates, a shorter clip or fewer steps."
    )


class ExportError(HYMotionError):
    """An export could not be written; nothing was left behind."""

    code = "export_failed"
    hint = (
        "Pick a folder you can write to (Edit > Preferences > Add-ons > HY-Motion > Export "
        "folder; in the batch, --out)."
    )


class FileExists(ExportError):
    """The target file exists and overwriting was not confirmed."""

    code = "file_exists"
    hint = "Confirm the overwrite (in the batch: --overwrite), or choose another folder."


class SceneError(HYMotionError):
    """The scene does not hold what an operation needs (a missing action or armature)."""

    code = "scene"
    hint = "Generate again, or pick another take."


class BatchInputError(HYMotionError):
    """The batch's prompt file or arguments cannot be used."""

    code = "batch_input"
    hint = "Run the batch with --help for the file format and the options."


class BvhError(HYMotionError):
    """A BVH file cannot be read, or is not a humanoid the add-on can use as a take."""

    code = "bad_bvh"
    hint = (
        "Use a humanoid BVH (hips, two legs, spine, head, two arms) with named joints; "
        "CMU/cgspeed, Daz and Mixamo joint names are recognised."
    )


class FinishingError(HYMotionError):
    """A finishing option cannot apply to this take; the take was left unchanged."""

    code = "finishing"
    hint = "Change or turn off that finishing option; the take itself is unchanged."


class SkeletonError(HYMotionError):
    """A skeleton lacks a joint an operation needs (looked up by name)."""

    code = "skeleton"
    hint = "This needs the SMPL-H body joints the HY-Motion daemon sends (Pelvis, L_Hip, ...)."


# --- Retargeting onto the artist's rig (issue #9) ---


class RigError(HYMotionError):
    """The selected object cannot take a take: not an armature, no legs, edit mode, linked."""

    code = "rig"
    hint = "Select your character's armature in Object or Pose Mode and try again."


class CharacterFileError(RigError):
    """The batch's ``--target-rig`` file holds no usable character under the name given."""

    code = "character_file"
    hint = "Fix --target-rig: FILE.blend:OBJECT, FILE.fbx or FILE.fbx:ARMATURE (docs/addon.md)."


class MappingError(HYMotionError):
    """The bone mapping cannot be used (a bone missing, a bone mapped twice, no hips), also
    where the motion core calibrates two skeletons through it: one code for one meaning."""

    code = "bone_mapping"
    hint = "Fix the bone named above in the panel's Bone Mapping list, or load another preset."


class PresetError(HYMotionError):
    """A bone-mapping preset file cannot be read or is for another kind of rig."""

    code = "mapping_preset"
    hint = "Pick a preset saved for this kind of rig, or map the rig automatically."
