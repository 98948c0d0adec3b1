"""Text -> motion for a batch of jobs (spec §3–§5), in the fast mode or the reference mode.

Fast mode (the engine's): every prompt encoded once per job, all jobs of the batch in one
forward per step, only each job's own frames integrated (RoPE text positions stay at 360+),
text cropped to the longest prompt, and the text stream computed once per (prompt branch, step)
and shared by the candidates. All of these are exact (§11.5): the outputs equal the reference
mode's up to float summation order (tests/engine/test_shortcuts.py).

Reference mode does what the official pipeline does: each job alone, the prompt encoded once per
candidate, all 360 frames and 128 text slots through the concatenated-sequence forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from shared_protocol import JobCancelled

from .checkpoint import ModelConfig
from .decode import DecodedMotion, decode
from .grounding import Grounding
from .mmdit import HYMotionWeights
from .sampling import guide, initial_noise, ode_step, time_grid
from .text import TEXT_SLOTS, TextEncoders, TextFeatures, language_warnings

Progress = Callable[[str, str, int, int], None]  # (job_id, stage, step, total)
StopCheck = Callable[[str], bool]


@dataclass(frozen=True)
class Request:
    """One job: ``len(seeds)`` candidates of one prompt."""

    job_id: str
    prompt: str
    frames: int
    seeds: tuple[int, ...]
    guidance: float
    steps: int
    #: Explicit initial noise (C, ≥ frames, 201) instead of the seeds' noise.
    noise: Tensor | None = None
    #: Precomputed text features (one row) instead of running the encoders.
    features: TextFeatures | None = None


@dataclass
class Generated:
    job_id: str
    motion: DecodedMotion
    latent: Tensor  # (C, frames, 201) float32, before de-normalisation
    warnings: tuple[str, ...] = ()
    truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Job:
    """A request being sampled: its noise-to-data state and conditioning on the device."""

    request: Request
    x: Tensor  # (C, frames, 201) float32
    vtxt: Tensor  # (1, 1, V)
    ctxt: Tensor  # (1, 128, C_t)
    length: int  # valid text slots

    @property
    def cfg(self) -> bool:  # §4.4: guidance only when s > 1
        return self.request.guidance > 1.0


class MotionPipeline:
    def __init__(
        self,
        weights: HYMotionWeights,
        config: ModelConfig,
        text: TextEncoders | None,
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
        if compile_model:  # dynamic shapes: frame and text lengths change between batches
            self._motion = torch.compile(self._motion, dynamic=True)  # type: ignore[assignment]
        self.generator_device = device if config.generator_on_device else torch.device("cpu")

    # --- 1. inputs ----------------------------------------------------------------------------

    def check_inputs(self, requests: Sequence[Request]) -> None:
        steps = {r.steps for r in requests}
        if len(steps) > 1:
            raise ValueError(f"one batch must share its step count, got {sorted(steps)}")
        for r in requests:
            if not 1 <= r.frames <= self.config.network.train_frames:
                raise ValueError(f"{r.job_id}: frames {r.frames} outside 1-360")
            if r.noise is not None and (
                r.noise.shape[0] != len(r.seeds) or r.noise.shape[1] < r.frames
            ):
                raise ValueError(f"{r.job_id}: noise shape {tuple(r.noise.shape)} does not fit")
            if r.features is None and self.text is None:
                raise ValueError(f"{r.job_id}: no text encoders loaded and no features given")

    def encode(self, prompts: Sequence[str]) -> TextFeatures:
        if self.text is None:
            raise ValueError("this pipeline has no text encoders")
        return self.text.encode(prompts)

    def noise(self, request: Request, frames: int) -> Tensor:
        """(C, frames, 201) float32 on the device: explicit, or the seeds' official noise."""
        if request.noise is not None:
            return request.noise[:, :frames].float().to(self.device)
        full = initial_noise(
            request.seeds,
            self.config.network.train_frames,
            self.config.network.input_dim,
            self.generator_device,
        )
        return full[:, :frames].to(self.device)

    # --- 2. the fast mode ---------------------------------------------------------------------

    def generate(
        self, requests: Sequence[Request], progress: Progress, should_stop: StopCheck
    ) -> list[Generated | JobCancelled]:
        """Run the jobs together; one entry per request, in order."""
        self.check_inputs(requests)
        for r in requests:
            progress(r.job_id, "encoding", 0, 1)
        start = time.perf_counter()
        features = self._features(requests)
        encode_s = time.perf_counter() - start
        jobs = [
            self._job(r, features.take([i]), self.noise(r, r.frames))
            for i, r in enumerate(requests)
        ]
        start = time.perf_counter()
        cancelled = self._sample(jobs, progress, should_stop)
        sample_s = time.perf_counter() - start
        results: list[Generated | JobCancelled] = []
        for i, job in enumerate(jobs):
            if job.request.job_id in cancelled:
                results.append(JobCancelled(f"job {job.request.job_id} was cancelled"))
                continue
            out = self._finish(job, features.truncated[i], progress)
            out.timings.update(encode=encode_s, sample=sample_s)
            results.append(out)
        return results

    def _features(self, requests: Sequence[Request]) -> TextFeatures:
        """One row per request; each distinct prompt without given features is encoded once."""
        todo = sorted({r.prompt for r in requests if r.features is None})
        encoded = self.encode(todo) if todo else None
        rows = []
        for r in requests:
            if r.features is not None:
                rows.append(r.features)
            else:
                assert encoded is not None
                rows.append(encoded.take([todo.index(r.prompt)]))
        return TextFeatures(
            torch.cat([f.vtxt for f in rows]),
            torch.cat([f.ctxt for f in rows]),
            torch.cat([f.lengths for f in rows]),
            tuple(t for f in rows for t in f.truncated),
        )

    def _job(self, request: Request, features: TextFeatures, x: Tensor) -> _Job:
        return _Job(
            request,
            x,
            features.vtxt.float().to(self.device),
            features.ctxt.float().to(self.device),
            max(int(features.lengths[0]), 1),
        )

    def _sample(self, jobs: list[_Job], progress: Progress, should_stop: StopCheck) -> set[str]:
        """Euler (or Heun) over the shared grid; cancelled jobs leave the batch between steps."""
        steps = jobs[0].request.steps
        grid = time_grid(steps, self.device)
        cancelled: set[str] = set()
        for n in range(steps):
            cancelled |= {j.request.job_id for j in jobs if should_stop(j.request.job_id)}
            active = [j for j in jobs if j.request.job_id not in cancelled]
            if not active:
                break
            frames = max(j.x.shape[1] for j in active)
            x = torch.cat([_pad_frames(j.x, frames) for j in active])  # (R, L, 201)
            velocity = self._velocity_fn(active, frames)
            x = ode_step(velocity, x, grid[n], grid[n + 1], self.solver)
            for job, rows in zip(active, x.split([j.x.shape[0] for j in active]), strict=True):
                job.x = rows[:, : job.x.shape[1]]
                progress(job.request.job_id, "sampling", n + 1, steps)
        return cancelled

    def _velocity_fn(self, jobs: list[_Job], frames: int) -> Callable[[Tensor, Tensor], Tensor]:
        """Guided velocity of the stacked candidates of ``jobs`` (R, L, 201) at time t."""
        texts = max(j.length for j in jobs)  # text slots past every prompt are never keys
        # text groups: each job's conditional branch, then its unconditional one when guided
        vtxt, ctxt, lengths = [], [], []
        for job in jobs:
            vtxt.append(job.vtxt)
            ctxt.append(job.ctxt[:, :texts])
            lengths.append(job.length)
        for job in (j for j in jobs if j.cfg):
            uncond_v, uncond_c = self._null_features(job, texts)
            vtxt.append(uncond_v)
            ctxt.append(uncond_c)
            lengths.append(job.length)  # §3.3: the unconditional branch keeps the cond mask
        slot = torch.arange(texts, device=self.device)
        text_valid = slot[None] < torch.tensor(lengths, device=self.device)[:, None]
        counts = [j.x.shape[0] for j in jobs]
        cond_group = torch.repeat_interleave(torch.arange(len(jobs)), torch.tensor(counts))
        guided = [i for i, j in enumerate(jobs) if j.cfg]
        uncond_group = torch.cat(
            [torch.full((counts[i],), len(jobs) + k) for k, i in enumerate(guided)]
            or [torch.zeros(0, dtype=torch.long)]
        )
        uncond_rows = torch.cat(
            [torch.arange(sum(counts[:i]), sum(counts[: i + 1])) for i in guided]
            or [torch.zeros(0, dtype=torch.long)]
        )
        group = torch.cat([cond_group, uncond_group]).to(self.device)
        frame_valid = (
            torch.arange(frames)[None]
            < torch.tensor([j.x.shape[1] for j in jobs for _ in range(j.x.shape[0])])[:, None]
        )
        frame_valid = torch.cat([frame_valid, frame_valid[uncond_rows]]).to(self.device)
        scales = torch.tensor(
            [j.request.guidance for j in jobs for _ in range(j.x.shape[0])], device=self.device
        )[uncond_rows.to(self.device), None, None]
        vtxt_all, ctxt_all = torch.cat(vtxt), torch.cat(ctxt)
        uncond_rows = uncond_rows.to(self.device)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            stream = self.model.encode_text_stream(
                t.expand(len(lengths)), ctxt_all, vtxt_all, text_valid
            )
            rows = torch.cat([x, x[uncond_rows]])
            v = self._motion(rows, frame_valid, stream, group).float()
            v_cond, v_uncond = v[: x.shape[0]], v[x.shape[0] :]
            return v_cond.index_copy(0, uncond_rows, guide(v_uncond, v_cond[uncond_rows], scales))

        return velocity

    def _null_features(self, job: _Job, texts: int) -> tuple[Tensor, Tensor]:
        """§3.3 unconditional branch: null vtxt; null ctxt repeated (or the real ctxt)."""
        null_v = self.weights.null_vtxt_feat.float()
        if self.config.enable_ctxt_null_feat:
            null_c = self.weights.null_ctxt_input.float().expand(1, texts, -1)
        else:
            null_c = job.ctxt[:, :texts]
        return null_v, null_c

    def _finish(self, job: _Job, truncated: bool, progress: Progress) -> Generated:
        request = job.request
        progress(request.job_id, "decoding", 0, 1)
        start = time.perf_counter()
        motion = decode(job.x, self.weights.mean, self.weights.std, self.grounding)
        warnings = language_warnings(request.prompt)
        if truncated:
            warnings += (
                "the prompt was longer than the text window (77 CLIP tokens / 128 Qwen3 "
                "tokens) and was truncated; keep prompts under about 60 words",
            )
        return Generated(
            request.job_id,
            motion,
            job.x.detach().cpu(),
            warnings,
            truncated,
            {"decode": time.perf_counter() - start},
        )

    # --- 3. the reference mode ----------------------------------------------------------------

    def generate_reference(self, request: Request) -> Generated:
        """One job the official way (fp32 when the weights are fp32): 360 frames, 128 slots,
        the prompt encoded once per candidate, concatenated-sequence forward."""
        self.check_inputs([request])
        count = len(request.seeds)
        start = time.perf_counter()
        if request.features is not None:
            features = request.features.take([0] * count)
        else:
            features = self.encode([request.prompt] * count)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        frames_all = self.config.network.train_frames
        if request.noise is not None:  # rows past ``frames`` are masked queries only
            x = _pad_frames(request.noise[:, :frames_all].float().to(self.device), frames_all)
        else:
            x = initial_noise(
                request.seeds, frames_all, self.config.network.input_dim, self.generator_device
            ).to(self.device)
        vtxt = features.vtxt.float().to(self.device)
        ctxt = features.ctxt.float().to(self.device)
        x_valid = (torch.arange(frames_all)[None] < request.frames).expand(count, -1)
        ctxt_valid = torch.arange(TEXT_SLOTS)[None] < features.lengths.clamp_min(1)[:, None]
        x_valid, ctxt_valid = x_valid.to(self.device), ctxt_valid.to(self.device)
        guided = request.guidance > 1.0
        if guided:  # §4.4 batch layout [uncond (B); cond (B)]
            null_c = (
                self.weights.null_ctxt_input.float().expand(count, TEXT_SLOTS, -1)
                if self.config.enable_ctxt_null_feat
                else ctxt
            )
            vtxt = torch.cat([self.weights.null_vtxt_feat.float().expand(count, 1, -1), vtxt])
            ctxt = torch.cat([null_c, ctxt])
            x_valid, ctxt_valid = x_valid.repeat(2, 1), ctxt_valid.repeat(2, 1)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            rows = torch.cat([x, x]) if guided else x
            v = self.model(rows, t.expand(rows.shape[0]), ctxt, vtxt, x_valid, ctxt_valid).float()
            return guide(v[:count], v[count:], request.guidance) if guided else v

        grid = time_grid(request.steps, self.device)
        for n in range(request.steps):
            x = ode_step(velocity, x, grid[n], grid[n + 1], self.solver)
        sample_s = time.perf_counter() - start
        job = _Job(request, x[:, : request.frames], vtxt, ctxt, 0)
        out = self._finish(job, features.truncated[0], lambda *a: None)
        out.timings.update(encode=encode_s, sample=sample_s)
        return out


def _pad_frames(x: Tensor, frames: int) -> Tensor:
    """Zero rows appended to reach ``frames`` (padding frames are masked as keys)."""
    if x.shape[1] == frames:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], frames - x.shape[1], x.shape[2])], dim=1)
