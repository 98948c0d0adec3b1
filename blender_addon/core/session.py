"""One generation at a time over a MotionClient, as state the panel can draw (no bpy).

The same object serves both drivers: the UI timer calls ``tick(0)`` (never blocks), and
``run_blocking`` loops ``tick(100)`` when ``bpy.app.background`` (timers never fire there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .describe import explain
from .errors import JobTimeout
from .protocol import client, errors, messages
from .settings import no_answer

#: Share of the progress bar per stage; sampling fills the middle by step.
_STAGE_SPAN = {"queued": (0.0, 0.0), "encoding": (0.0, 0.05), "sampling": (0.05, 0.95),
               "decoding": (0.95, 1.0)}  # fmt: skip


@dataclass(frozen=True)
class ServerInfo:
    """What the connection status line shows."""

    version: str = ""
    model: str = ""
    model_label: str = ""
    device: str = ""
    untrained: bool = False
    queue_depth: int | None = None


@dataclass(frozen=True)
class JobView:
    """What the progress area shows."""

    state: str = "idle"  # idle, connecting, queued, running, done, failed, cancelled
    stage: str = ""
    fraction: float = 0.0
    eta_s: float | None = None
    queue_position: int | None = None
    message: str = ""
    hint: str = ""

    @property
    def busy(self) -> bool:
        return self.state in ("connecting", "queued", "running")


@dataclass(frozen=True)
class Finished:
    result: messages.Result


@dataclass(frozen=True)
class Failed:
    error: errors.HYMotionError


Outcome = Finished | Failed


def failed_view(error: errors.HYMotionError) -> JobView:
    """The progress area after ``error``: what happened and what to do, in plain words."""
    info = explain(error)
    state = "cancelled" if isinstance(error, errors.JobCancelled) else "failed"
    return JobView(state=state, message=info.message, hint=info.hint)


def server_info(welcome: messages.Welcome, queue_depth: int | None = None) -> ServerInfo:
    model = next((m for m in welcome.models if m.name == welcome.default_model), None)
    return ServerInfo(
        version=welcome.server_version,
        model=welcome.default_model,
        model_label=model.label if model else welcome.default_model,
        device=model.device if model else "",
        untrained=bool(model and model.untrained),
        queue_depth=queue_depth,
    )


class GenerationSession:
    """Tracks one job at a time; ``tick`` turns client events into view state and outcomes."""

    def __init__(self, motion_client: client.MotionClient) -> None:
        self.client = motion_client
        self.view = JobView()
        self.server = ServerInfo()
        self.request: messages.Generate | None = None
        self._request_id: str | None = None
        #: The daemon's id of the current job, once accepted (what its log names).
        self.job_id: str | None = None
        self._status_id: str | None = None
        self.changed = True  # the panel needs a redraw

    @property
    def limits(self) -> messages.Limits:
        welcome = self.client.welcome
        return welcome.limits if welcome is not None else messages.DEFAULT_LIMITS

    def start(self, request: messages.Generate) -> str:
        if self.view.busy:
            raise errors.Busy("a generation is already running here", retry_after_s=1.0,
                              reason="one_job_per_panel")  # fmt: skip
        self.request = request
        self._request_id = self.client.submit(request)
        state = "queued" if self.client.connected else "connecting"
        self._set(JobView(state=state, stage="queued", message="Sending the request..."))
        return self._request_id

    def cancel(self) -> None:
        if self._request_id is not None and self.view.busy:
            self.client.cancel(self._request_id)
            self._set(replace(self.view, message="Cancelling..."))

    def refresh_status(self) -> None:
        """Ask for queue length and health; the answer lands in ``server`` on a later tick."""
        self._status_id = self.client.request_status()

    def tick(self, timeout_ms: int = 0) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for event in self.client.poll(timeout_ms):
            outcome = self._on_event(event)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def run_blocking(
        self,
        request: messages.Generate,
        timeout_s: float,
        on_change: Callable[[JobView], None] | None = None,
    ) -> Outcome:
        """Submit and wait (headless); the outcome of this request, never an exception."""
        deadline = time.monotonic() + timeout_s
        try:
            self.start(request)
            while time.monotonic() < deadline:
                outcomes = self.tick(100)
                if self.changed and on_change is not None:
                    on_change(self.view)
                    self.changed = False
                if outcomes:
                    return outcomes[0]
            self.cancel()
            raise JobTimeout(f"no result within {timeout_s:g} s; the job was cancelled")
        except errors.HYMotionError as exc:
            self._set(failed_view(exc))
            return Failed(exc)

    # --- events ---------------------------------------------------------------------------------

    def _on_event(self, event: client.Event) -> Outcome | None:
        message = event.message
        if isinstance(message, client.Connected):
            self.server = server_info(message.welcome, self.server.queue_depth)
            self.changed = True
            return None
        if isinstance(message, client.Disconnected):
            if self.view.busy:
                self._set(replace(self.view, message=f"Connection lost: {message.reason}"))
            return None
        if isinstance(message, messages.Status):
            self.server = replace(self.server, queue_depth=message.queue_depth)
            self.changed = True
            return None
        if event.request_id is None or event.request_id != self._request_id:
            if isinstance(message, messages.Error) and event.request_id == self._status_id:
                self._set(replace(self.view, message=explain(message.to_exception()).message))
            return None
        return self._on_job_event(message)

    def _on_job_event(self, message: messages.Message) -> Outcome | None:
        if isinstance(message, messages.Accepted):
            self.job_id = message.job_id
            where = f"queue position {message.queue_position}" if message.queue_position else ""
            self._set(JobView(state="queued", stage="queued", queue_position=message.queue_position,
                              message=f"Accepted {where}".strip()))  # fmt: skip
        elif isinstance(message, messages.Progress):
            self._set(_progress_view(message))
        elif isinstance(message, messages.Result):
            self._request_id = None
            self._set(JobView(state="done", fraction=1.0, message=_result_line(message)))
            return Finished(message)
        elif isinstance(message, messages.Error | messages.Cancelled):
            self._request_id = None
            error = (
                message.to_exception()
                if isinstance(message, messages.Error)
                else errors.JobCancelled(f"the job was cancelled ({message.reason})")
            )
            if isinstance(error, errors.DaemonUnreachable) and not self.server.version:
                error = no_answer(self.client.config)  # never connected: name the keys
            self._set(failed_view(error))
            return Failed(error)
        return None

    def _set(self, view: JobView) -> None:
        self.view = view
        self.changed = True


def _progress_view(progress: messages.Progress) -> JobView:
    low, high = _STAGE_SPAN.get(progress.stage, (0.0, 1.0))
    share = progress.step / progress.total if progress.total else 0.0
    if progress.stage == "queued":
        where = f" (position {progress.queue_position})" if progress.queue_position else ""
        text = f"Waiting in the daemon's queue{where}"
    elif progress.total:
        text = f"{progress.stage.capitalize()} {progress.step}/{progress.total}"
    else:
        text = progress.stage.capitalize()
    return JobView(
        state="queued" if progress.stage == "queued" else "running",
        stage=progress.stage,
        fraction=low + (high - low) * share,
        eta_s=progress.eta_s,
        queue_position=progress.queue_position,
        message=text,
    )


def _result_line(result: messages.Result) -> str:
    label = result.model_label
    if result.untrained and "untrained" not in label.lower():
        label += " (untrained)"
    return f"{len(result.seeds)} take(s) of {result.frames} frames from {label}"
