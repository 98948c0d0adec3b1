"""The shared text-encoder deployment: one set of encoders serves every engine replica.

With ``[cluster] text_encoders = "shared"`` the engine replicas load no text encoders (Qwen3-8B
alone is ~16 GB): they send each batch's distinct prompts to this deployment and get the
features back as CPU tensors. The features come from the same code on the same prompts as in
an engine's own encoders, so results are the same bit for bit (same device type and, on the
CPU, the same thread count). Prompts are encoded one request at a time, never merged with
another replica's: padding to another batch's longest prompt could change the last bits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
import torch
from ray import serve
from ray.serve.handle import DeploymentHandle

from daemon.engine.errors import TextEncoderError
from daemon.engine.factory import TINY, EncoderKey, EngineOptions, ModelLoader
from daemon.engine.text import PromptEncoder, TextEncoders, TextFeatures
from shared_protocol import ModelUnavailable

from .config import ENCODE_ATTEMPTS

log = logging.getLogger("hymotion.text_replica")


class TextEncoderReplica:
    def __init__(self, engine_options: Mapping[str, Any]) -> None:
        opts = EngineOptions.from_mapping(engine_options)
        # Ray hides every GPU but this replica's: "cuda" is its own device.
        device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
        started = time.monotonic()
        loader = ModelLoader(opts, device)
        #: Every encoder set the configured models use, or why it could not be loaded.
        self._sets: dict[EncoderKey, TextEncoders | str] = {}
        for _, source in opts.models or ((TINY, TINY),):
            try:
                key = loader.sources(source)[1]
            except (ModelUnavailable, OSError) as exc:  # the engine replicas report it too
                log.error("model source %s: %s", source, exc)
                continue
            if key not in self._sets:
                self._sets[key] = _load(loader, key)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="encode")
        log.info(
            "text-encoder replica %s on node %s (pid %d, %s) loaded %d set(s) in %.1f s",
            serve.get_replica_context().replica_id.unique_id,
            ray.util.get_node_ip_address(),
            os.getpid(),
            device,
            len(self._sets),
            time.monotonic() - started,
        )

    def problem(self, key: EncoderKey) -> str | None:
        """Why ``key``'s encoders cannot encode here, or None when they can."""
        loaded = self._sets.get(key)
        if loaded is None:
            return "no model in this deployment's [engine] table uses these encoders"
        return loaded if isinstance(loaded, str) else None

    async def encode(self, key: EncoderKey, prompts: Sequence[str]) -> TextFeatures:
        loaded = self._sets.get(key)
        if not isinstance(loaded, TextEncoders):
            raise TextEncoderError(key.qwen, self.problem(key) or "not loaded")
        loop = asyncio.get_running_loop()
        # one encoding at a time, off the event loop (health checks keep being answered)
        return await loop.run_in_executor(self._executor, loaded.encode, list(prompts))


def _load(loader: ModelLoader, key: EncoderKey) -> TextEncoders | str:
    """The encoders of ``key``, or why they cannot be loaded (its models become unavailable)."""
    try:
        return loader.load_encoders(key)
    except ModelUnavailable as exc:
        problem = exc.message
    except (OSError, RuntimeError, ValueError) as exc:  # torch/transformers failures
        problem = f"{type(exc).__name__}: {exc}"
    log.error("text encoders %s / %s cannot be loaded: %s", key.clip, key.qwen, problem)
    return problem


class SharedEncoders:
    """An engine replica's text source: encoders that live in the encoder deployment.

    Called in the replica's constructor (once per encoder set) and in its engine thread (every
    encoding), never on its event loop: a handle's ``result()`` blocks.
    """

    def __init__(self, handle: DeploymentHandle, ready_timeout_s: float, call_timeout_s: float):
        self._handle = handle
        # A router of its own for calls sent again after a timeout (see RemoteEncoders).
        self._after_timeout = serve.get_deployment_handle(handle.deployment_name, handle.app_name)
        self._ready_timeout_s = ready_timeout_s
        self._call_timeout_s = call_timeout_s

    def __call__(self, key: EncoderKey) -> PromptEncoder:
        """The remote encoders for ``key``; TextEncoderError (the model is then unavailable)
        when the deployment cannot serve them."""
        try:
            problem = self._handle.problem.remote(key).result(timeout_s=self._ready_timeout_s)
        except Exception as exc:  # timeout, dead deployment: Ray's errors are many
            problem = f"the text-encoder deployment did not answer: {type(exc).__name__}: {exc}"
        if problem is not None:
            raise TextEncoderError(key.qwen, f"shared text encoders: {problem}")
        return RemoteEncoders(self._handle, key, self._call_timeout_s, self._after_timeout)


class RemoteEncoders:
    """``PromptEncoder`` over the encoder deployment (one Serve call per encoding).

    An encoding is sent at most ``ENCODE_ATTEMPTS`` times. A call fails when its encoder
    replica dies (process killed, node lost) or when no answer comes within ``timeout_s``
    (a hung replica, or none free or started in time); it is then sent once more:

    - after a loss, through the same handle: its router has dropped the dead replica, so the
      call goes to a live one (or waits for the one Serve starts in its place);
    - after a timeout, the call is cancelled and sent through ``after_timeout``, a handle with
      a router of its own. A router prefers replicas whose queue length it has cached, and the
      first router's cache still lists the hung replica; the other one knows only replicas
      that answered its queue probes, which a hung replica cannot, so the call goes to another
      live replica when there is one.

    The attempts are counted here, on what this client observes: a call that Serve's router
    re-sent on its own (a replica that died before it accepted the call) is one attempt. When
    the last attempt fails too, the encoding fails with ``model_unavailable``, reason
    ``encoder_lost`` or ``encoder_timeout`` after the last failure; the engine replica's batch
    then answers each of its jobs with it.
    """

    def __init__(
        self,
        handle: DeploymentHandle,
        key: EncoderKey,
        timeout_s: float,
        after_timeout: DeploymentHandle | None = None,
    ) -> None:
        self._handle, self._key, self._timeout_s = handle, key, timeout_s
        self._after_timeout = after_timeout or handle

    def encode(self, prompts: Sequence[str]) -> TextFeatures:
        handle = self._handle
        for attempt in range(1, ENCODE_ATTEMPTS + 1):
            response = handle.encode.remote(self._key, list(prompts))
            try:
                features: TextFeatures = response.result(timeout_s=self._timeout_s)
                return features
            except ray.exceptions.RayActorError as exc:  # the replica, not the encoding
                timed_out, failure = False, f"lost its replica ({type(exc).__name__})"
            except TimeoutError:  # the builtin, and Ray's GetTimeoutError
                response.cancel()  # a hung replica drops it once it runs again
                handle, timed_out = self._after_timeout, True
                failure = f"had no answer within cluster.encode_timeout_s = {self._timeout_s:g} s"
            log.warning(
                "text-encoder call %s (attempt %d of %d)", failure, attempt, ENCODE_ATTEMPTS
            )
        raise ModelUnavailable(
            f"the text-encoder deployment {self._handle.deployment_name!r} failed to encode this "
            f"batch's prompts {ENCODE_ATTEMPTS} times; the last attempt {failure}. Resubmit the "
            "job, or ask the operator to check the Ray cluster's text-encoder replicas",
            reason="encoder_timeout" if timed_out else "encoder_lost",
            timeout_s=self._timeout_s if timed_out else None,
        )
