"""A deterministic engine that implements ``daemon.engine_api.Engine`` exactly, for tests.

Costs ``step_s`` seconds per sampler step (a sleep: no CPU burnt), honours ``steps``, reports
progress every step, stops at the next step when ``should_stop`` says so, and can be made to
fail: a prompt containing ``FAIL_MARKER`` gets a typed error for that job only, one containing
``CRASH_MARKER`` makes the whole ``run_batch`` raise, and ``device_fault_at_step`` makes the
device fail (``DeviceFailure``) at that sampler step of its first batch and stay broken. Motion
is a function of the seed alone and ``joint_positions`` come from
``shared_protocol.motion.forward_kinematics``, so results are self-consistent and identical
across runs and batch neighbours.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from daemon.engine_api import DeviceFailure, JobOutput, JobSpec, ProgressFn, ShouldStop
from shared_protocol import (
    HYMotionError,
    InternalError,
    JobCancelled,
    ModelInfo,
    ModelUnavailable,
    ResourceExhausted,
    Skeleton,
)
from shared_protocol.motion import forward_kinematics

from .markers import BROKEN_MODEL, CRASH_MARKER, FAIL_MARKER, MODEL

# SMPL-H body layout (names and parents); the rest positions are made up but plausible.
_JOINTS = (
    ("Pelvis", -1, (0.0, 0.95, 0.0)), ("L_Hip", 0, (0.09, 0.87, 0.0)),
    ("R_Hip", 0, (-0.09, 0.87, 0.0)), ("Spine1", 0, (0.0, 1.06, -0.02)),
    ("L_Knee", 1, (0.1, 0.5, 0.0)), ("R_Knee", 2, (-0.1, 0.5, 0.0)),
    ("Spine2", 3, (0.0, 1.19, -0.02)), ("L_Ankle", 4, (0.1, 0.08, -0.03)),
    ("R_Ankle", 5, (-0.1, 0.08, -0.03)), ("Spine3", 6, (0.0, 1.25, -0.01)),
    ("L_Foot", 7, (0.11, 0.02, 0.1)), ("R_Foot", 8, (-0.11, 0.02, 0.1)),
    ("Neck", 9, (0.0, 1.47, -0.03)), ("L_Collar", 9, (0.07, 1.38, -0.02)),
    ("R_Collar", 9, (-0.07, 1.38, -0.02)), ("Head", 12, (0.0, 1.6, 0.02)),
    ("L_Shoulder", 13, (0.18, 1.41, -0.03)), ("R_Shoulder", 14, (-0.18, 1.41, -0.03)),
    ("L_Elbow", 16, (0.44, 1.4, -0.05)), ("R_Elbow", 17, (-0.44, 1.4, -0.05)),
    ("L_Wrist", 18, (0.69, 1.41, -0.05)), ("R_Wrist", 19, (-0.69, 1.41, -0.05)),
)  # fmt: skip

SKELETON = Skeleton(
    joint_names=tuple(name for name, _, _ in _JOINTS),
    parents=np.array([parent for _, parent, _ in _JOINTS], dtype=np.int32),
    rest_positions=np.array([rest for _, _, rest in _JOINTS], dtype=np.float32),
)


def motion_for_seed(seed: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rotations (F,J,4), root positions (F,3), joint positions (F,J,3)), grounded at y = 0."""
    rng = np.random.default_rng(seed)
    joints = SKELETON.joint_count
    axes = rng.normal(size=(joints, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    phase = rng.uniform(0, 2 * np.pi, size=joints)
    t = np.arange(frames)[:, None] / 30.0
    angle = 0.4 * np.sin(2 * np.pi * 0.8 * t + phase)  # (F, J), well below pi: sign-continuous
    rotations = np.concatenate(
        [np.cos(angle / 2)[..., None], np.sin(angle / 2)[..., None] * axes], axis=-1
    ).astype(np.float32)
    root = np.tile(SKELETON.rest_positions[0], (frames, 1)).astype(np.float64)
    root[:, 2] += 0.04 * np.arange(frames)  # walks forward, +Z
    positions = forward_kinematics(SKELETON, rotations, root)
    lift = positions[..., 1].min()
    root[:, 1] -= lift
    positions = forward_kinematics(SKELETON, rotations, root)
    return rotations, root.astype(np.float32), positions


class TestEngine:
    """See the module docstring. ``calls`` and ``run_counts`` let tests see what really ran."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        step_s: float = 0.0,
        max_batch_candidates: int = 8,
        device: str = "cpu",
        max_candidate_frames: int = 8 * 360,
        device_fault_at_step: int | None = None,
    ) -> None:
        self.step_s = step_s
        self._max_batch = max_batch_candidates
        self._device = device
        self._max_candidate_frames = max_candidate_frames
        self._device_fault_at_step = device_fault_at_step
        self.device_broken = False
        self._lock = threading.Lock()
        self.calls: list[tuple[str, ...]] = []
        self.run_counts: Counter[str] = Counter()
        self.cancelled: list[str] = []
        self.closed = False

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                MODEL,
                "Test engine (untrained)",
                True,
                untrained=True,
                device=self._device,
                dtype="float32",
            ),
            ModelInfo(
                BROKEN_MODEL,
                "Broken model",
                False,
                device=self._device,
                error="weights missing (test fixture)",
            ),
        ]

    def default_model(self) -> str:
        return MODEL

    def skeleton(self) -> Skeleton:
        return SKELETON

    def batch_key(self, job: JobSpec) -> Hashable:
        return (job.model, job.steps, job.guidance)

    def max_batch_candidates(self, model: str) -> int:
        return self._max_batch

    def check_admissible(self, job: JobSpec) -> None:
        if job.model != MODEL:
            raise ModelUnavailable(f"model {job.model!r} is not loaded", field="model")
        if len(job.seeds) * job.frames > self._max_candidate_frames:
            raise ResourceExhausted(
                f"{len(job.seeds)} x {job.frames} frames do not fit", field="candidates"
            )

    def run_batch(
        self, jobs: Sequence[JobSpec], progress: ProgressFn, should_stop: ShouldStop
    ) -> list[JobOutput | HYMotionError]:
        with self._lock:
            self.calls.append(tuple(j.job_id for j in jobs))
            self.run_counts.update(j.job_id for j in jobs)
        if any(CRASH_MARKER in j.prompt for j in jobs):
            raise RuntimeError("injected engine crash")
        if self.device_broken:
            raise DeviceFailure(self._device, "injected device fault (still broken)")
        live = {j.job_id for j in jobs}
        for job in jobs:
            progress(job.job_id, "encoding", 0, 1)
        steps = max(j.steps for j in jobs)
        for step in range(1, steps + 1):
            for job_id in [i for i in live if should_stop(i)]:
                live.discard(job_id)
                with self._lock:
                    self.cancelled.append(job_id)
            if not live:
                break
            if step == self._device_fault_at_step:
                self.device_broken = True
                raise DeviceFailure(self._device, "injected device fault")
            if self.step_s:
                time.sleep(self.step_s)
            for job in jobs:
                if job.job_id in live:
                    progress(job.job_id, "sampling", step, steps)
        return [self._output(j, progress) if j.job_id in live else self._cancelled(j) for j in jobs]

    def _output(self, job: JobSpec, progress: ProgressFn) -> JobOutput | HYMotionError:
        if FAIL_MARKER in job.prompt:
            return InternalError("injected job failure", job_id=job.job_id)
        progress(job.job_id, "decoding", 0, 1)
        started = time.perf_counter()
        takes = [motion_for_seed(seed, job.frames) for seed in job.seeds]
        return JobOutput(
            rotations=np.stack([t[0] for t in takes]),
            root_positions=np.stack([t[1] for t in takes]),
            joint_positions=np.stack([t[2] for t in takes]),
            # Real seconds, so a benchmark can subtract engine time from end-to-end latency.
            timings={
                "encode": 0.0,
                "sample": self.step_s * job.steps,
                "decode": time.perf_counter() - started,
            },
        )

    @staticmethod
    def _cancelled(job: JobSpec) -> HYMotionError:
        return JobCancelled(f"job {job.job_id} was cancelled", job_id=job.job_id)

    def close(self) -> None:
        self.closed = True


def stepping_engine(
    options: Mapping[str, Any], device: str, text_source: object = None
) -> TestEngine:
    """An engine factory for Ray replicas: a TestEngine taking ``options["step_s"]`` per step
    (it encodes no text, so it ignores ``text_source``)."""
    return TestEngine(step_s=float(options.get("step_s", 0.05)), device=device)
