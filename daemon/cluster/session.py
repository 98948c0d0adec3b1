"""Leaving a Ray session cleanly: Serve's driver-side objects go before the session does.

Serve keeps state in the driver process that ``ray.shutdown()`` does not touch:

- a ``DeploymentHandle``'s router runs on one process-wide event loop thread; its tasks keep
  running after the session is gone: one records Ray metrics every 100 ms, one (with
  autoscaling) pushes the queue to the controller and checks the previous push's ObjectRef,
  and the long-poll clients (the router's own and the one all routers share per controller)
  keep a call open on the controller;
- the Serve client holding the controller's actor handle is cached in a module global keyed by
  the job id, and a restarted head hands its first driver the same job id again.

Left running into the next session (a rejoin) they use the old session's objects through the
new core worker ("An application is trying to access a Ray object whose owner is unknown",
every ``metrics_interval_s``), a stale cached client is taken for the new controller, and at
the process's exit they race Ray's teardown of its core worker. :func:`leave` stops them
first, then disconnects. Serve has no public call for all of this (``DeploymentHandle.shutdown``
covers the metrics tasks only), so the rest reaches into ``ray.serve._private`` (ray 2.60)
defensively: a name that is gone in another Ray version is skipped, never fatal.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any, NoReturn

import ray

log = logging.getLogger("hymotion.cluster")


def leave(handles: list[Any]) -> None:
    """Stop the routers of ``handles`` (DeploymentHandles of this session) and the session's
    shared Serve clients, then ``ray.shutdown()``. Blocking; the caller bounds it."""
    # The routers of one session share one long-poll client per event loop; once a session is
    # left (ray.shutdown() done) it was stopped with it, and asking Serve for it again would
    # start a new one, whose first poll starts a local Ray instance of its own.
    session_open = ray.is_initialized()
    for handle in handles:
        _stop_router(handle, session_open)
    _forget_serve_client()
    handles.clear()
    gc.collect()  # the routers' ObjectRefs are released while their core worker still exists
    ray.shutdown()


def _stop_router(handle: Any, session_open: bool) -> None:
    router = getattr(handle, "_router", None)
    if router is None:  # never called: no router was made
        return
    # A router on its caller's loop was shut down from that loop by its owner (EngineCalls):
    # from this thread it cannot be, Serve's shutdown then schedules a task on the loop
    separate = getattr(handle, "_is_router_running_in_separate_loop", lambda: True)
    try:
        if separate():
            handle.shutdown()  # the metrics pusher and the cached-metrics task
    except Exception as exc:  # a router on a lost cluster: its long polls still stop
        log.warning("stopping a Serve handle's metrics failed: %s", exc)
    inner = getattr(router, "_asyncio_router", None)
    shared = _shared_long_poll(inner) if session_open else None
    for long_poll in (getattr(inner, "long_poll_client", None), shared):
        if long_poll is not None:
            long_poll.stop()  # no new call after the one in flight


def _shared_long_poll(inner: Any) -> Any:
    """The long-poll client ``inner`` (an AsyncioRouter) registered with: cached per controller
    and loop, so asking again with the same two returns it (and starts nothing new)."""
    try:
        from ray.serve._private.router import SharedRouterLongPollClient

        shared = SharedRouterLongPollClient.get_or_create(
            inner._controller_handle, inner._event_loop
        )
    except (ImportError, AttributeError):
        return None
    return getattr(shared, "long_poll_client", None)


def _forget_serve_client() -> None:
    """Forget the stopped shared long-poll clients and the cached Serve client, so the next
    session finds its own controller."""
    try:
        from ray.serve import context
        from ray.serve._private.router import SharedRouterLongPollClient
    except ImportError:
        return
    cache_clear = getattr(SharedRouterLongPollClient.get_or_create, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()
    disconnect = getattr(context, "_disconnect", None)
    if disconnect is not None:
        disconnect()


def end_process(status: int) -> NoReturn:
    """End a process that was a Ray driver, with ``status``, skipping the interpreter's and the
    C runtime's clean-up.

    Called once everything is done: the daemon has drained, left its Ray session (:func:`leave`,
    ``ray.shutdown()``), closed its sockets and its log. What is left is Ray's native side:
    ``ray.shutdown()`` does not join every thread its core worker started (a session left while
    its head was down leaves more), and those threads can run into the C++ objects that
    ``exit()`` destroys after the interpreter has finalized: the daemon then died with SIGSEGV
    after its drain. Nothing of the daemon needs that clean-up, so the process ends here.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
