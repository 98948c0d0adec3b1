"""Text -> motion for a batch of jobs (spec §3–§5), in the fast mode or the reference mode.

Fast mode (the engine's): every prompt encoded once per job, all jobs of the batch in one
forward per velocity evaluation, only each job's own frames integrated (RoPE text positions stay
at 360+), text cropped to the longest prompt, and the text stream computed once per (prompt
branch, evaluation) and shared by the candidates. All of these are exact (§11.5): the outputs
equal the reference mode's up to float summation order (tests/engine/test_engine_shortcuts.py).

Reference mode does what the official pipeline does: each job alone, the prompt encoded once per
candidate, all 360 frames and 128 text slots through the concatenated-sequence forward.

Both take the daemon's ``JobSpec``; ``ExplicitInputs`` optionally replaces a job's seeds' noise
and its prompt's text features, so that the output can be compared with another implementation.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from daemon.engine_api import JobSpec, ProgressFn, ShouldStop
from shared_protocol import MIN_FRAMES, JobCancelled

from .checkpoint import ModelConfig
from .constraints import CanonicalTargets, Imposer, Targets, finish_directed, imposer_for
from .decode import DecodedMotion, decode
from .features import Placement
from .grounding import Grounding
from .mmdit import HYMotionWeights
from .sampling import Stepper, guide, initial_noise, integrate
from .solvers import make_stepper
from .text import TEXT_SLOTS, PromptEncoder, TextFeatures, language_warnings


@dataclass(frozen=True)
class ExplicitInputs:
    """Inputs of one job given by the caller instead of computed by the engine."""

    #: (C, ≥ frames, 201) initial noise instead of the seeds' (§4.2); rows past frames unused.
    noise: Tensor | None = None
    #: One row of text features instead of encoding the prompt.
    features: TextFeatures | None = None
    #: Per-candidate constraints instead of the request's (a timeline segment's).
    targets: Targets | None = None


COMPUTED = ExplicitInputs()


@dataclass
class Generated:
    job_id: str
    motion: DecodedMotion
    latent: Tensor  # (C, frames, 201) float32, before de-normalisation
    warnings: tuple[str, ...] = ()
    truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Directed:
    """A directed job's constraints: in its sampler, and where its canonical frame sits."""

    targets: Targets
    imposer: Imposer
    placement: Placement
    canonical: CanonicalTargets


@dataclass
class _Job:
    """A job being sampled: its noise-to-data state, solver and conditioning on the device."""

    spec: JobSpec
    x: Tensor  # (C, frames, 201) float32
    stepper: Stepper
    vtxt: Tensor  # (1, 1, V)
    ctxt: Tensor  # (1, 128, C_t)
    length: int  # valid text slots
    directed: _Directed | None = None

    @property
    def cfg(self) -> bool:  # §4.4: guidance only when s > 1
        return self.spec.guidance > 1.0


class MotionPipeline:
    """One loaded model on one device: text encoders, network, solver and decoder."""

    def __init__(
        self,
        weights: HYMotionWeights,
        config: ModelConfig,
        text: PromptEncoder | None,
        grounding: Grounding,
        device: torch.device,
        solver: str = "euler",
        compile_model: bool = False,
    ) -> None:
        self.weights = weights.to(device)
        self.model = weights.motion_transformer
        self.config = config
        self.text = text
        self.grounding = grounding
        self.device = device
        self.solver = solver
        self._motion = self.model.forward_motion
        if compile_model:
            # dynamic shapes: frame and text lengths change between batches; on CUDA,
            # "reduce-overhead" also captures CUDA graphs (unverified on a GPU here)
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self._motion = torch.compile(self._motion, dynamic=True, mode=mode)
        self.generator_device = device if config.generator_on_device else torch.device("cpu")

    def with_solver(self, solver: str) -> MotionPipeline:
        """The same model, encoders and compiled forward, sampled with another solver."""
        other = copy.copy(self)
        other.solver = solver
        return other

    # --- 1. inputs ----------------------------------------------------------------------------

    def check_inputs(self, jobs: Sequence[JobSpec], explicit: Mapping[str, ExplicitInputs]) -> None:
        """ValueError for a batch this pipeline cannot run (the service validated the ranges)."""
        ids = [j.job_id for j in jobs]
        if not jobs or len(set(ids)) != len(ids):
            raise ValueError(f"a batch needs one or more distinct job ids, got {ids}")
        if set(explicit) - set(ids):
            raise ValueError(
                f"explicit inputs for jobs not in the batch: {set(explicit) - set(ids)}"
            )
        steps = {j.steps for j in jobs}
        if len(steps) > 1:
            raise ValueError(f"one batch must share its step count, got {sorted(steps)}")
        limit = self.config.network.train_frames
        for j in jobs:
            given = explicit.get(j.job_id, COMPUTED)
            if not MIN_FRAMES <= j.frames <= limit:  # §4.1 clamps lengths to [20, 360]
                raise ValueError(f"{j.job_id}: frames {j.frames} outside {MIN_FRAMES}-{limit}")
            if given.noise is not None and (
                given.noise.shape[0] != len(j.seeds) or given.noise.shape[1] < j.frames
            ):
                raise ValueError(
                    f"{j.job_id}: noise {tuple(given.noise.shape)} does not hold "
                    f"{len(j.seeds)} candidates of {j.frames} frames"
                )
            if given.features is not None and given.features.vtxt.shape[0] != 1:
                raise ValueError(f"{j.job_id}: explicit features must hold one prompt's row")
            if given.features is None and self.text is None:
                raise ValueError(f"{j.job_id}: no text encoders loaded and no features given")
            if j.constraints is not None and j.constraints.timeline:
                raise ValueError(f"{j.job_id}: a timeline runs through daemon.engine.timeline")
            if given.targets is not None and (
                given.targets.frames != j.frames
                or given.targets.pose_roots.shape[0] != len(j.seeds)
            ):
                raise ValueError(f"{j.job_id}: targets do not fit {len(j.seeds)} x {j.frames}")

    def encode(self, prompts: Sequence[str]) -> TextFeatures:
        if self.text is None:
            raise ValueError("this pipeline has no text encoders")
        return self.text.encode(prompts)

    def noise(self, job: JobSpec, given: ExplicitInputs, frames: int) -> Tensor:
        """(C, frames, 201) float32 on the device: explicit, or the seeds' official noise."""
        if given.noise is not None:
            return _pad_frames(given.noise[:, :frames].float().to(self.device), frames)
        full = initial_noise(
            job.seeds,
            self.config.network.train_frames,
            self.config.network.input_dim,
            self.generator_device,
        )
        return full[:, :frames].to(self.device)

    # --- 2. the fast mode ---------------------------------------------------------------------

    def generate(
        self,
        jobs: Sequence[JobSpec],
        progress: ProgressFn,
        should_stop: ShouldStop,
        explicit: Mapping[str, ExplicitInputs] | None = None,
    ) -> list[Generated | JobCancelled]:
        """Run the jobs together; one entry per job, in order."""
        explicit = explicit or {}
        # 1. check inputs
        self.check_inputs(jobs, explicit)
        # 2. text features: each distinct prompt encoded once
        for j in jobs:
            progress(j.job_id, "encoding", 0, 1)
        start = time.perf_counter()
        features = self._features(jobs, explicit)
        encode_s = time.perf_counter() - start
        # 3. noise and solver state per job
        active = [
            self._job(j, features.take([i]), explicit.get(j.job_id, COMPUTED))
            for i, j in enumerate(jobs)
        ]
        # 4. the ODE from noise to data, every job in one forward per evaluation
        start = time.perf_counter()
        cancelled = self._sample(active, progress, should_stop)
        sample_s = time.perf_counter() - start
        # 5. decoding
        results: list[Generated | JobCancelled] = []
        for i, job in enumerate(active):
            if job.spec.job_id in cancelled:
                results.append(JobCancelled(f"job {job.spec.job_id} was cancelled"))
                continue
            progress(job.spec.job_id, "decoding", 0, 1)
            out = self._finish(job.spec, job.x, features.truncated[i], job.directed)
            out.timings.update(encode=encode_s, sample=sample_s)
            results.append(out)
        return results

    def _features(
        self, jobs: Sequence[JobSpec], explicit: Mapping[str, ExplicitInputs]
    ) -> TextFeatures:
        """One row per job; each distinct prompt without explicit features is encoded once."""
        given = {j.job_id: explicit.get(j.job_id, COMPUTED).features for j in jobs}
        todo = sorted({j.prompt for j in jobs if given[j.job_id] is None})
        encoded = self.encode(todo) if todo else None
        rows = []
        for j in jobs:
            row = given[j.job_id]
            if row is None:
                assert encoded is not None
                row = encoded.take([todo.index(j.prompt)])
            rows.append(row)
        return TextFeatures(
            torch.cat([f.vtxt for f in rows]),
            torch.cat([f.ctxt for f in rows]),
            torch.cat([f.lengths for f in rows]),
            tuple(t for f in rows for t in f.truncated),
        )

    def _job(self, spec: JobSpec, features: TextFeatures, given: ExplicitInputs) -> _Job:
        return _Job(
            spec,
            self.noise(spec, given, spec.frames),
            make_stepper(self.solver, spec.steps, self.device),
            features.vtxt.float().to(self.device),
            features.ctxt.float().to(self.device),
            max(int(features.lengths[0]), 1),
            self._directed(spec, given),
        )

    def _directed(self, spec: JobSpec, given: ExplicitInputs) -> _Directed | None:
        """The job's constraints on this model's latent, or None for an undirected job."""
        targets = given.targets
        if targets is None and spec.constraints is not None:
            targets = Targets.from_wire(spec.constraints, len(spec.seeds), spec.frames)
        if targets is None:
            return None
        imposer, placement, canonical = imposer_for(
            targets, self.weights.mean, self.weights.std, self.device
        )
        return _Directed(targets, imposer, placement, canonical)

    def _sample(self, jobs: list[_Job], progress: ProgressFn, should_stop: ShouldStop) -> set[str]:
        """The solver over the shared grid; cancelled jobs leave before the next evaluation."""
        steps = jobs[0].spec.steps
        per_step = jobs[0].stepper.per_step
        cancelled: set[str] = set()
        batch: _Batch | None = None
        for k, t in enumerate(jobs[0].stepper.times):
            cancelled |= {j.spec.job_id for j in jobs if should_stop(j.spec.job_id)}
            active = [j for j in jobs if j.spec.job_id not in cancelled]
            if not active:
                break
            if batch is None or len(batch.jobs) != len(active):  # built again after a cancel
                batch = self._batch(active)
            x = torch.cat([_pad_frames(j.x, batch.frames) for j in active])  # (R, L, 201)
            v = self._velocity(batch, x, t)  # (R, L, 201) float32
            for job, rows in zip(active, v.split([j.x.shape[0] for j in active]), strict=True):
                velocity = rows[:, : job.x.shape[1]]
                if job.directed is not None:
                    velocity = job.directed.imposer.velocity(job.x, velocity, t)
                job.x = job.stepper.update(job.x, velocity)
            step, within = divmod(k + 1, per_step)
            for job in active if not within else ():
                progress(job.spec.job_id, "sampling", step, steps)
        for job in jobs:
            if job.directed is not None and job.spec.job_id not in cancelled:
                job.x = job.directed.imposer.finish(job.x)
        return cancelled

    def _batch(self, jobs: list[_Job]) -> _Batch:
        frames = max(j.x.shape[1] for j in jobs)
        ctxt, vtxt, text_valid = self._text_groups(jobs)
        return _Batch(jobs, frames, ctxt, vtxt, text_valid, _row_layout(jobs, frames, self.device))

    def _velocity(self, batch: _Batch, x: Tensor, t: Tensor) -> Tensor:
        """Guided velocity (R, L, 201) float32 of the stacked candidates x (R, L, 201) of the
        batch's jobs at the flow time t (a scalar tensor)."""
        rows = batch.rows
        # the text side once per (prompt branch, evaluation), shared by that job's candidates
        stream = self.model.encode_text_stream(
            t.expand(len(batch.ctxt)), batch.ctxt, batch.vtxt, batch.text_valid
        )
        v = self._motion(torch.cat([x, x[rows.uncond]]), rows.valid, stream, rows.group)
        v_cond, v_uncond = v.float().split([x.shape[0], rows.uncond.shape[0]])
        guided = guide(v_uncond, v_cond[rows.uncond], rows.scales)
        return v_cond.index_copy(0, rows.uncond, guided)

    def _text_groups(self, jobs: list[_Job]) -> tuple[Tensor, Tensor, Tensor]:
        """Text group g: job g's conditional branch for g < J, then the unconditional branch of
        each guided job -> ctxt (G, T, C), vtxt (G, 1, V), valid (G, T)."""
        texts = max(j.length for j in jobs)  # text slots past every prompt are never keys
        ctxt = [j.ctxt[:, :texts] for j in jobs]
        vtxt = [j.vtxt for j in jobs]
        lengths = [j.length for j in jobs]
        for job in (j for j in jobs if j.cfg):
            ctxt.append(self._null_ctxt(job.ctxt[:, :texts]))
            vtxt.append(self.weights.null_vtxt_feat.float())
            lengths.append(job.length)  # §3.3: the unconditional branch keeps the cond mask
        slots = torch.arange(texts, device=self.device)
        valid = slots[None] < torch.tensor(lengths, device=self.device)[:, None]
        return torch.cat(ctxt), torch.cat(vtxt), valid

    def _null_ctxt(self, ctxt: Tensor) -> Tensor:
        """§3.3 unconditional token features (B, T, C): the null feature repeated over the T
        slots, or the conditional ones when the config disables it."""
        if not self.config.enable_ctxt_null_feat:
            return ctxt
        return self.weights.null_ctxt_input.float().expand(ctxt.shape[0], ctxt.shape[1], -1)

    def _finish(
        self, spec: JobSpec, latent: Tensor, truncated: bool, directed: _Directed | None = None
    ) -> Generated:
        """Decode one job's latent (C, frames, 201) and attach its warnings."""
        start = time.perf_counter()
        # clips held to given poses keep those poses' heights instead of being grounded
        ground = directed is None or not directed.targets.has_poses
        motion = decode(latent, self.weights.mean, self.weights.std, self.grounding, ground)
        if directed is not None:
            motion = finish_directed(
                motion, directed.targets, directed.placement, directed.canonical
            )
        warnings = language_warnings(spec.prompt)
        if truncated:
            warnings += (
                "the prompt was longer than the text window (77 CLIP tokens / 128 Qwen3 "
                "tokens) and was truncated; keep prompts under about 60 words",
            )
        return Generated(
            spec.job_id,
            motion,
            latent.detach().cpu(),
            warnings,
            truncated,
            {"decode": time.perf_counter() - start},
        )

    # --- 3. the reference mode ----------------------------------------------------------------

    def generate_reference(self, job: JobSpec, explicit: ExplicitInputs = COMPUTED) -> Generated:
        """One job the official way (fp32 when the weights are fp32): 360 frames, 128 slots,
        the prompt encoded once per candidate, concatenated-sequence forward."""
        # 1. check inputs
        self.check_inputs([job], {job.job_id: explicit})
        count = len(job.seeds)
        # 2. text features: the prompt encoded once per candidate, as upstream does
        start = time.perf_counter()
        if explicit.features is not None:
            features = explicit.features.take([0] * count)
        else:
            features = self.encode([job.prompt] * count)
        encode_s = time.perf_counter() - start
        # 3. noise for all 360 frames; frames past the job's are masked keys, dropped at the end
        start = time.perf_counter()
        frames_all = self.config.network.train_frames
        x = self.noise(job, explicit, frames_all)  # (C, 360, 201)
        vtxt = features.vtxt.float().to(self.device)  # (C, 1, V)
        ctxt = features.ctxt.float().to(self.device)  # (C, 128, C_t)
        x_valid = (torch.arange(frames_all)[None] < job.frames).expand(count, -1)
        ctxt_valid = torch.arange(TEXT_SLOTS)[None] < features.lengths.clamp_min(1)[:, None]
        x_valid, ctxt_valid = x_valid.to(self.device), ctxt_valid.to(self.device)
        guided = job.guidance > 1.0
        if guided:  # §4.4 batch layout [uncond (B); cond (B)]
            vtxt = torch.cat([self.weights.null_vtxt_feat.float().expand(count, 1, -1), vtxt])
            ctxt = torch.cat([self._null_ctxt(ctxt), ctxt])
            x_valid, ctxt_valid = x_valid.repeat(2, 1), ctxt_valid.repeat(2, 1)

        directed = self._directed(job, explicit)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            rows = torch.cat([x, x]) if guided else x
            v = self.model(rows, t.expand(rows.shape[0]), ctxt, vtxt, x_valid, ctxt_valid).float()
            v = guide(v[:count], v[count:], job.guidance) if guided else v
            if directed is None:
                return v
            # constraints see the job's own frames; frames past them are never keys
            own = directed.imposer.velocity(x[:, : job.frames], v[:, : job.frames], t)
            return torch.cat([own, v[:, job.frames :]], dim=1)

        # 4. the ODE from noise to data
        x = integrate(make_stepper(self.solver, job.steps, self.device), velocity, x)
        x = x[:, : job.frames]
        if directed is not None:
            x = directed.imposer.finish(x)
        sample_s = time.perf_counter() - start
        # 5. decoding
        out = self._finish(job, x, features.truncated[0], directed)
        out.timings.update(encode=encode_s, sample=sample_s)
        return out


@dataclass(frozen=True)
class _Rows:
    """Motion rows of one forward: every candidate (cond), then the guided ones again (uncond)."""

    group: Tensor  # (R + U,) text group of each row
    valid: Tensor  # (R + U, L) bool, the row's own frames
    uncond: Tensor  # (U,) candidate index of each unconditional row
    scales: Tensor  # (U, 1, 1) guidance of each unconditional row's job


@dataclass(frozen=True)
class _Batch:
    """The conditioning of one forward, fixed while the same jobs stay in the batch."""

    jobs: list[_Job]
    frames: int  # L, the longest clip
    ctxt: Tensor  # (G, T, C_t) text groups, see ``_text_groups``
    vtxt: Tensor  # (G, 1, V)
    text_valid: Tensor  # (G, T) bool
    rows: _Rows


def _row_layout(jobs: list[_Job], frames: int, device: torch.device) -> _Rows:
    group: list[int] = []
    lengths: list[int] = []
    uncond: list[int] = []
    uncond_group: list[int] = []
    scales: list[float] = []
    row = 0
    guided_index = len(jobs)  # unconditional groups follow the J conditional ones
    for index, job in enumerate(jobs):
        count = job.x.shape[0]
        group += [index] * count
        lengths += [job.x.shape[1]] * count
        if job.cfg:
            uncond += range(row, row + count)
            uncond_group += [guided_index] * count
            scales += [job.spec.guidance] * count
            guided_index += 1
        row += count
    frame_lengths = torch.tensor(lengths + [lengths[i] for i in uncond])
    return _Rows(
        group=torch.tensor(group + uncond_group, device=device),
        valid=(torch.arange(frames)[None] < frame_lengths[:, None]).to(device),
        uncond=torch.tensor(uncond, dtype=torch.long, device=device),
        scales=torch.tensor(scales, dtype=torch.float32, device=device).view(-1, 1, 1),
    )


def _pad_frames(x: Tensor, frames: int) -> Tensor:
    """Zero rows appended to reach ``frames`` (padding frames are masked as keys)."""
    if x.shape[1] == frames:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], frames - x.shape[1], x.shape[2])], dim=1)
