"""The engine app's handle for batches, with Serve's router on the daemon's own event loop.

Serve's default handle runs its router on a thread of its own: each batch's call, and each
report streamed back, then hops from the daemon's loop to that thread's loop and back. On the
2-vCPU test box those hops were half of the daemon's Ray-specific CPU per job
(docs/benchmarks.md, "Issue 12, session 5: per-job overhead"). Serve can run a handle's router on
the caller's loop instead (``_init(_run_router_in_separate_loop=False)``, the mode its proxies
and replicas take under ``RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0``); such a handle is usable
from that loop only. So the daemon makes it there at the first batch, and shuts it down there
when the cluster is lost or the daemon stops; leaving the Ray session (``session.leave``, from
another thread) then stops its long polls like every other handle's. Connecting, describing the
engine and health checks block, and keep Serve's default handle (``RayBackend``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray.serve.handle import DeploymentHandle

from .app import DEPLOYMENT

#: Shutting the router down on a lost cluster must not hold the daemon's loop longer than this.
_SHUTDOWN_TIMEOUT_S = 5.0

log = logging.getLogger("hymotion.cluster")


class EngineCalls:
    def __init__(self, app: str, session_handles: list[Any]) -> None:
        """``session_handles``: every handle of the Ray session, for ``session.leave``."""
        self._app = app
        self._session_handles = session_handles
        self._handle: DeploymentHandle | None = None

    def streaming(self) -> DeploymentHandle:
        """The streaming handle of the engine deployment; call from the daemon's loop only."""
        if self._handle is None:
            handle: DeploymentHandle = DeploymentHandle(DEPLOYMENT, self._app)
            handle._init(_run_router_in_separate_loop=False)
            self._session_handles.append(handle)
            self._handle = handle.options(stream=True)
        return self._handle

    async def close(self) -> None:
        """Shut the router's tasks down (on the daemon's loop); the next batch makes a new one,
        in whatever Ray session the daemon is in by then."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            await asyncio.wait_for(handle.shutdown_async(), _SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "shutting down the batch handle's Serve router took over %g s",
                _SHUTDOWN_TIMEOUT_S,
            )
