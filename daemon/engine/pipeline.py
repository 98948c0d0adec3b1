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
        if compile_model:
            # dynamic shapes: frame and text lengths change between batches; on CUDA,
            # "reduce-overhead" also captures CUDA graphs (unverified on a GPU here)
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self._motion = torch.compile(self._motion, dynamic=True, mode=mode)  # type: ignore[assignment]
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
        ctxt, vtxt, text_valid = self._text_groups(jobs)
        rows = _row_layout(jobs, frames, self.device)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            # the text side once per (prompt branch, step), shared by that job's candidates
            stream = self.model.encode_text_stream(t.expand(len(ctxt)), ctxt, vtxt, text_valid)
            v = self._motion(torch.cat([x, x[rows.uncond]]), rows.valid, stream, rows.group)
            v_cond, v_uncond = v.float().split([x.shape[0], rows.uncond.shape[0]])
            guided = guide(v_uncond, v_cond[rows.uncond], rows.scales)
            return v_cond.index_copy(0, rows.uncond, guided)

        return velocity

    def _text_groups(self, jobs: list[_Job]) -> tuple[Tensor, Tensor, Tensor]:
        """Text group g: job g's conditional branch for g < J, then the unconditional branch of
        each guided job -> ctxt (G, T, C), vtxt (G, 1, V), valid (G, T)."""
        texts = max(j.length for j in jobs)  # text slots past every prompt are never keys
        ctxt = [j.ctxt[:, :texts] for j in jobs]
        vtxt = [j.vtxt for j in jobs]
        lengths = [j.length for j in jobs]
        for job in (j for j in jobs if j.cfg):
            null_v, null_c = self._null_features(job, texts)
            ctxt.append(null_c)
            vtxt.append(null_v)
            lengths.append(job.length)  # §3.3: the unconditional branch keeps the cond mask
        slots = torch.arange(texts, device=self.device)
        valid = slots[None] < torch.tensor(lengths, device=self.device)[:, None]
        return torch.cat(ctxt), torch.cat(vtxt), valid

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


@dataclass(frozen=True)
class _Rows:
    """Motion rows of one forward: every candidate (cond), then the guided ones again (uncond)."""

    group: Tensor  # (R + U,) text group of each row
    valid: Tensor  # (R + U, L) bool, the row's own frames
    uncond: Tensor  # (U,) candidate index of each unconditional row
    scales: Tensor  # (U, 1, 1) guidance of each unconditional row's job


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
            scales += [job.request.guidance] * count
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
