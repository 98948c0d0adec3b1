"""A timeline: several prompts generated as one continuous motion, longer than one 12-s window.

The request's own prompt and duration are segment 0; each timeline row is a further segment.
Segment i > 0 is sampled as TIMELINE_OVERLAP_FRAMES + its own frames, the first of them held to
the last TIMELINE_OVERLAP_FRAMES frames already generated (a prefix per candidate, met exactly),
and only its new frames are appended, so every seam lies inside one sampled window. Candidate k
of segment i uses seed (seed_k + SEGMENT_SEED_STRIDE·i) mod 2³². The request's other
constraints count frames over the joined clip; each segment takes those inside its window.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from daemon.engine_api import JobSpec, ProgressFn, ShouldStop
from shared_protocol import TIMELINE_OVERLAP_FRAMES, JobCancelled, frames_for_duration

from .constraints import Targets
from .decode import DecodedMotion, sign_continuous
from .pipeline import ExplicitInputs, Generated, MotionPipeline

SEGMENT_SEED_STRIDE = 7919


def segments(job: JobSpec) -> list[tuple[str, int]]:
    """(prompt, new frames) of each segment, the request's own first."""
    assert job.constraints is not None
    rows = [(r.prompt.strip(), frames_for_duration(r.duration_s)) for r in job.constraints.timeline]
    return [(job.prompt, job.frames), *rows]


def largest_window(job: JobSpec) -> int:
    """Frames of the longest sampled window (for memory admission)."""
    if job.constraints is None or not job.constraints.timeline:
        return job.frames
    return max(f + (TIMELINE_OVERLAP_FRAMES if i else 0) for i, (_, f) in enumerate(segments(job)))


def generate_timeline(
    pipeline: MotionPipeline, job: JobSpec, progress: ProgressFn, should_stop: ShouldStop
) -> Generated | JobCancelled:
    """Sample the segments one after another; one Generated for the joined clip."""
    assert job.constraints is not None
    parts = segments(job)
    total = sum(frames for _, frames in parts)
    wanted = Targets.from_wire(
        dataclasses.replace(job.constraints, timeline=()), len(job.seeds), total
    )
    motion: DecodedMotion | None = None
    latents: list[torch.Tensor] = []
    warnings: list[str] = []
    timings = {"encode": 0.0, "sample": 0.0, "decode": 0.0}
    truncated = False
    start = 0  # joined-clip frame of the segment's first new frame
    for i, (prompt, frames) in enumerate(parts):
        overlap = TIMELINE_OVERLAP_FRAMES if i else 0
        spec = JobSpec(
            job_id=f"{job.job_id}.{i}",
            prompt=prompt,
            frames=frames + overlap,
            seeds=tuple((s + SEGMENT_SEED_STRIDE * i) % 2**32 for s in job.seeds),
            guidance=job.guidance,
            steps=job.steps,
            model=job.model,
        )
        targets = _window(wanted, start - overlap, spec.frames, overlap, motion)

        def report(job_id: str, stage: str, step: int, total: int, segment: int = i) -> None:
            # job_id is the segment's; the client knows only the whole job
            if stage == "sampling":
                progress(job.job_id, stage, segment * job.steps + step, len(parts) * job.steps)
            elif stage == "encoding" and segment == 0:
                progress(job.job_id, stage, step, total)

        (out,) = pipeline.generate(
            [spec],
            report,
            lambda _: should_stop(job.job_id),
            {spec.job_id: ExplicitInputs(targets=targets)} if targets is not None else None,
        )
        if isinstance(out, JobCancelled):
            return JobCancelled(f"job {job.job_id} was cancelled")
        motion = out.motion if motion is None else _append(motion, out.motion, overlap)
        latents.append(out.latent[:, overlap:])
        warnings += [w for w in out.warnings if w not in warnings]
        truncated |= out.truncated
        for stage in timings:
            timings[stage] += out.timings.get(stage, 0.0)
        start += frames
    progress(job.job_id, "decoding", 0, 1)
    assert motion is not None
    return Generated(
        job.job_id, motion, torch.cat(latents, dim=1), tuple(warnings), truncated, timings
    )


def _window(
    wanted: Targets, first: int, frames: int, overlap: int, done: DecodedMotion | None
) -> Targets | None:
    """The constraints of the window of joined-clip frames [first, first + frames): the
    request's inside it past the overlap, and the overlap held to what was generated."""
    own_poses = (wanted.pose_frames >= first + overlap) & (wanted.pose_frames < first + frames)
    own_path = (wanted.path_frames >= first + overlap) & (wanted.path_frames < first + frames)
    pose_frames = wanted.pose_frames[own_poses] - first
    rotations = wanted.pose_rotations[:, own_poses]
    roots = wanted.pose_roots[:, own_poses]
    if overlap:
        assert done is not None
        pose_frames = np.concatenate([np.arange(overlap), pose_frames])
        rotations = np.concatenate([done.rotations[:, -overlap:], rotations], axis=1)
        roots = np.concatenate([done.root_positions[:, -overlap:], roots], axis=1)
    if not len(pose_frames) and not own_path.any():
        return None
    return Targets(
        frames=frames,
        pose_frames=pose_frames,
        pose_rotations=rotations.astype(np.float64),
        pose_roots=roots.astype(np.float64),
        path_frames=wanted.path_frames[own_path] - first,
        path_ground=wanted.path_ground[:, own_path],
        path_yaw=None if wanted.path_yaw is None else wanted.path_yaw[:, own_path],
        # the overlap is met exactly so that the seam is inside one sampled window
        exact=wanted.exact or bool(overlap),
        until=wanted.until,
    )


def _append(done: DecodedMotion, segment: DecodedMotion, overlap: int) -> DecodedMotion:
    rotations = np.concatenate([done.rotations, segment.rotations[:, overlap:]], axis=1)
    return DecodedMotion(
        np.stack([sign_continuous(q) for q in rotations]).astype(np.float32),
        np.concatenate([done.root_positions, segment.root_positions[:, overlap:]], axis=1),
        np.concatenate([done.joint_positions, segment.joint_positions[:, overlap:]], axis=1),
    )
