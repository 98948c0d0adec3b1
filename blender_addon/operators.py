"""Operators: thin wrappers that build a core request, call one function, and report."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import history, prefs, runtime
from .core.describe import Explanation, explain
from .core.errors import SceneError, SettingsError
from .core.protocol import errors, keys
from .core.session import Failed, GenerationSession, JobView
from .core.settings import GenerateSettings, build_request, client_config
from .props import HYMOTION_PG_settings, HYMOTION_PG_take, scene_settings
from .registration import class_registrar
from .step_runner import StepsOperator
from .targets import RIG_TARGET

if TYPE_CHECKING:  # the stubs' name for {"FINISHED"}, {"CANCELLED"}, ...
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Status = set[OperatorReturnItems]

_FORMATS = {"FBX": ("FBX",), "BVH": ("BVH",), "BOTH": ("FBX", "BVH")}
Op = TypeVar("Op", bound=bpy.types.Operator)


def reports_errors(
    execute: Callable[[Op, bpy.types.Context], Status],
) -> Callable[[Op, bpy.types.Context], Status]:
    """Expected failures (typed ``HYMotionError``) become an ERROR report and CANCELLED."""

    @functools.wraps(execute)
    def wrapper(self: Op, context: bpy.types.Context) -> Status:
        try:
            return execute(self, context)
        except errors.HYMotionError as exc:
            self.report({"ERROR"}, str(explain(exc)))
            return {"CANCELLED"}

    return wrapper


def browse_for_file(operator: bpy.types.Operator, context: bpy.types.Context) -> Status:
    """Open the file browser for ``operator``; with no window (background, tests) run it now."""
    if context.window_manager is None:
        return operator.execute(context)
    context.window_manager.fileselect_add(operator)
    return {"RUNNING_MODAL"}


def ask_properties(operator: bpy.types.Operator, context: bpy.types.Context) -> Status:
    """Show ``operator``'s properties in a dialog; with no window run it with them as set."""
    if context.window_manager is None:
        return operator.execute(context)
    return context.window_manager.invoke_props_dialog(operator)


def _scene(context: bpy.types.Context) -> bpy.types.Scene:
    if context.scene is None:
        raise SceneError("there is no active scene")
    return context.scene


def _settings(context: bpy.types.Context) -> HYMOTION_PG_settings:
    return scene_settings(_scene(context))


def generate_settings(settings: HYMOTION_PG_settings) -> GenerateSettings:
    return GenerateSettings(
        prompt=settings.prompt, duration_s=settings.duration_s, candidates=settings.candidates,
        guidance=settings.guidance, steps=settings.steps,
        seed=settings.seed if settings.seed_mode == "FIXED" else None,
    )  # fmt: skip


def directed(scene: bpy.types.Scene, settings: GenerateSettings) -> GenerateSettings:
    """The panel's Direction options (issue #11) added to ``settings``."""
    from .directing_ui import directed_settings  # registered after this module

    return directed_settings(scene, settings)


def connect(context: bpy.types.Context) -> GenerationSession:
    online = bool(bpy.app.online_access)
    return runtime.session_for(client_config(prefs.connection_settings(context), online))


class HYMOTION_OT_generate(bpy.types.Operator):
    """Generate candidate takes for the prompt with the HY-Motion daemon"""

    bl_idname = "hy_motion.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        session = runtime.current()
        if session is not None and session.view.busy:
            cls.poll_message_set("A generation is running; cancel it first")
            return False
        if context.scene is None or not scene_settings(context.scene).prompt.strip():
            cls.poll_message_set("Type a prompt first")
            return False
        return True

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        scene = _scene(context)
        try:
            session = connect(context)
            request = build_request(directed(scene, generate_settings(scene_settings(scene))),
                                    session.limits)  # fmt: skip
        except errors.HYMotionError as exc:
            runtime.show_error(scene, exc)
            raise
        if not bpy.app.background:
            runtime.start_generation(scene, session, request)
            return {"FINISHED"}
        # Headless: timers never fire, so block on the same session.
        outcome = session.run_blocking(request, prefs.job_timeout_s(context), _print_view)
        runtime.handle_outcome(scene, session, outcome)
        runtime.write_status(scene, session.view, session.server)
        if isinstance(outcome, Failed) or session.view.state == "failed":
            self.report({"ERROR"}, str(Explanation(session.view.message, session.view.hint)))
            return {"CANCELLED"}
        return {"FINISHED"}


def _print_view(view: JobView) -> None:
    print(f"[hy_motion] {view.state}: {view.message} ({view.fraction:.0%})", flush=True)


class HYMOTION_OT_cancel(bpy.types.Operator):
    """Cancel the running generation"""

    bl_idname = "hy_motion.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        session = runtime.current()
        return session is not None and session.view.busy

    def execute(self, context: bpy.types.Context) -> Status:
        session = runtime.current()
        if session is not None:
            session.cancel()
        return {"FINISHED"}


class HYMOTION_OT_check_connection(bpy.types.Operator):
    """Connect to the daemon and show its version, model, device and queue length"""

    bl_idname = "hy_motion.check_connection"
    bl_label = "Check Connection"

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        runtime.check_connection(_scene(context), connect(context))
        return {"FINISHED"}


class _TakesOperator(bpy.types.Operator):
    """Base of the operators that work on the takes history."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.scene is None or not len(scene_settings(context.scene).takes):
            cls.poll_message_set("No takes yet: generate some first")
            return False
        return True


class _TakeOperator(_TakesOperator):
    """Base of the operators on one take: ``index``, or the active take."""

    index: IntProperty(name="Take", default=-1, description="Take index; -1 for the active take")  # type: ignore[valid-type]

    def take_index(self, context: bpy.types.Context) -> int:
        settings = _settings(context)
        index = self.index if self.index >= 0 else settings.active_take
        if not 0 <= index < len(settings.takes):
            raise SettingsError(f"there is no take {index}", field="index")
        return int(index)

    def take(self, context: bpy.types.Context) -> HYMOTION_PG_take:
        return _settings(context).takes[self.take_index(context)]


class HYMOTION_OT_apply_take(_TakeOperator):
    """Play this take on the target armature"""

    bl_idname = "hy_motion.apply_take"
    bl_label = "Apply Take"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        history.apply_take(_scene(context), self.take(context))
        return {"FINISHED"}


class HYMOTION_OT_compare_takes(_TakesOperator, StepsOperator):
    """Show takes side by side, one armature each (on your character: one take retargeted per
    step, Esc stops)"""

    bl_idname = "hy_motion.compare_takes"
    bl_label = "Compare Takes"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    scope: EnumProperty(  # type: ignore[valid-type]
        name="Takes",
        items=[
            ("JOB", "Same generation", "The active take and its sibling candidates"),
            ("ALL", "All", "Every take in the history"),
        ],
        default="JOB",
    )

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        settings = _settings(context)
        takes = list(settings.takes)
        if self.scope == "JOB" and 0 <= settings.active_take < len(takes):
            job = takes[settings.active_take].job_id
            takes = [t for t in takes if t.job_id == job]
        if settings.target == RIG_TARGET:  # the artist's rig: one take's write per step
            from . import rig_history

            return self.run_steps(context, rig_history.compare_job(_scene(context), takes))
        history.compare_takes(_scene(context), takes)
        return {"FINISHED"}


class HYMOTION_OT_rename_take(_TakeOperator):
    """Rename a take (its Action follows)"""

    bl_idname = "hy_motion.rename_take"
    bl_label = "Rename Take"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    name: StringProperty(name="Name")  # type: ignore[valid-type]

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        take = self.take(context)
        if not self.name.strip():
            raise SettingsError("a take needs a name", field="name")
        take.name = self.name.strip()  # its Actions follow (``history.name_actions``)
        return {"FINISHED"}


class HYMOTION_OT_delete_take(_TakeOperator):
    """Delete a take and its Action"""

    bl_idname = "hy_motion.delete_take"
    bl_label = "Delete Take"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        if context.window_manager is None:  # no UI to ask in
            return self.execute(context)
        return context.window_manager.invoke_confirm(self, event)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        history.delete_take(_scene(context), self.take_index(context))
        return {"FINISHED"}


class HYMOTION_OT_export_takes(_TakesOperator, StepsOperator):
    """Export the active take or all takes as FBX and/or BVH (file names from prompt + seed;
    one take per step, Esc stops)"""

    bl_idname = "hy_motion.export_takes"
    bl_label = "Export Takes"
    # One undo step for the Actions it makes on the character; no redo panel (it writes files).
    bl_options = {"UNDO"}  # noqa: RUF012 (Blender reads a set)

    scope: EnumProperty(  # type: ignore[valid-type]
        name="Takes",
        items=[("ACTIVE", "Active take", ""), ("ALL", "All takes", "")],
        default="ACTIVE",
    )
    directory: StringProperty(  # type: ignore[valid-type]
        name="Folder", subtype="DIR_PATH", description="Empty: the preferences' export folder"
    )
    overwrite: BoolProperty(name="Overwrite", default=False, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def _plan(
        self, context: bpy.types.Context
    ) -> tuple[list[HYMOTION_PG_take], Path, tuple[str, ...]]:
        settings = _settings(context)
        takes = list(settings.takes)
        if self.scope == "ACTIVE":
            takes = takes[settings.active_take : settings.active_take + 1]
        folder = (
            Path(bpy.path.abspath(self.directory)) if self.directory else prefs.export_dir(context)
        )
        return takes, folder, _FORMATS[settings.export_format]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        takes, folder, formats = self._plan(context)
        existing = [p for p in history.planned_files(takes, folder, formats) if p.exists()]
        if existing and not self.overwrite and context.window_manager is not None:
            self.overwrite = True  # confirmed by the dialog below
            return context.window_manager.invoke_confirm(
                self, event, title=f"Overwrite {len(existing)} file(s) in {folder}?"
            )
        return self.execute(context)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        takes, folder, formats = self._plan(context)
        job = history.export_job(_scene(context), takes, folder, formats, self.overwrite)
        return self.run_steps(context, job)


class HYMOTION_OT_generate_keys(bpy.types.Operator):
    """Create your CURVE key pair and use it; send the public .key file to the daemon's operator"""

    bl_idname = "hy_motion.generate_keys"
    bl_label = "Generate Key Pair"

    name: StringProperty(  # type: ignore[valid-type]
        name="Your name", description="Letters, digits, . _ -; names you on the daemon"
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        return ask_properties(self, context)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        public, secret = keys.generate_keypair(prefs.keys_dir(), self.name.strip())
        prefs.use_key_pair(context, secret)
        self.report({"INFO"}, f"Send {public} to the daemon's operator")
        return {"FINISHED"}


class HYMOTION_OT_import_keys(bpy.types.Operator):
    """Use an existing NAME.key_secret file (copied next to the add-on's settings)"""

    bl_idname = "hy_motion.import_keys"
    bl_label = "Import Key Pair"

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.key_secret", options={"HIDDEN"})  # type: ignore[valid-type]

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Status:
        return browse_for_file(self, context)

    @reports_errors
    def execute(self, context: bpy.types.Context) -> Status:
        source = Path(self.filepath)
        keys.load_keypair(source)  # refuse a file that is not a secret key before copying
        target = prefs.keys_dir() / source.name
        if target != source:
            try:
                shutil.copyfile(source, target)
                target.chmod(0o600)
            except OSError as exc:
                raise SettingsError(f"cannot copy {source}: {exc.strerror}") from exc
        prefs.use_key_pair(context, target)
        return {"FINISHED"}


classes = (
    HYMOTION_OT_generate, HYMOTION_OT_cancel, HYMOTION_OT_check_connection,
    HYMOTION_OT_apply_take, HYMOTION_OT_compare_takes, HYMOTION_OT_rename_take,
    HYMOTION_OT_delete_take, HYMOTION_OT_export_takes, HYMOTION_OT_generate_keys,
    HYMOTION_OT_import_keys,
)  # fmt: skip


register, unregister = class_registrar(classes)
