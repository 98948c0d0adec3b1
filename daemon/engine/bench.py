"""``python -m daemon bench``: per-stage times and throughput of the fast mode against the
reference mode of the same engine, in the same run, with the ratio and the largest difference;
with ``--solvers``, the speed/difference trade-off of every solver against the official Euler.

Models: ``tiny`` (the built-in model, text encoders included), ``lite-random`` /
``standard-random`` (official sizes with seeded random weights and random precomputed text
features, so no text-encoder time), or a model directory (with the configured encoders).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import torch
from torch import Tensor

from daemon.engine_api import JobSpec

from .checkpoint import ModelConfig
from .grounding import JointGrounding
from .mmdit import CONFIGS, HYMotionWeights
from .pipeline import COMPUTED, ExplicitInputs, Generated, MotionPipeline
from .sampling import integrate
from .solvers import make_stepper
from .text import TEXT_SLOTS, TextFeatures
from .tiny import plausible_stats

PROMPTS = (
    "A person walks forward, turns around and walks back.",
    "A man jumps twice and then waves with his right hand.",
    "Someone kicks with the left leg and punches with the right fist.",
)
RANDOM_TEXT_TOKENS = 12  # a typical short prompt: ~10 words + <|im_end|> + "\n"


@dataclass(frozen=True)
class Case:
    candidates: int
    seconds: float

    @property
    def frames(self) -> int:
        return round(self.seconds * 30)


def _ignore(job_id: str, stage: str, step: int, total: int) -> None:
    return None


def _never(_: str) -> bool:
    return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_weights(size: str, seed: int = 0) -> tuple[HYMotionWeights, ModelConfig]:
    """Official-size network with seeded random weights and plausible stats."""
    network = CONFIGS[size]
    torch.manual_seed(seed)
    weights = HYMotionWeights(network)
    with torch.no_grad():
        weights.null_vtxt_feat.normal_()
        weights.null_ctxt_input.normal_()
        mean, std = plausible_stats()
        weights.mean.copy_(mean)
        weights.std.copy_(std)
    config = ModelConfig(
        network=network,
        steps=50,
        guidance=5.0,
        generator_on_device=size == "lite",  # as the official configs say (§1.3)
        enable_ctxt_null_feat=True,
        text_slots=TEXT_SLOTS,
        fps=30,
    )
    return weights.eval().requires_grad_(False), config


def random_features(config: ModelConfig, seed: int) -> TextFeatures:
    gen = torch.Generator().manual_seed(seed)
    net = config.network
    ctxt = torch.zeros(1, TEXT_SLOTS, net.ctxt_input_dim)
    ctxt[:, :RANDOM_TEXT_TOKENS] = torch.randn(
        1, RANDOM_TEXT_TOKENS, net.ctxt_input_dim, generator=gen
    )
    vtxt = torch.randn(1, 1, net.vtxt_input_dim, generator=gen)
    return TextFeatures(vtxt, ctxt, torch.tensor([RANDOM_TEXT_TOKENS]), (False,))


@dataclass(frozen=True)
class GaussianFlow:
    """The exact flow-matching velocity when every latent element's data is N(μ, s²) and its
    noise N(0, 1), on the linear path x_t = (1 − t)·ε + t·d:

        v(x, t) = μ + (t·s² − (1 − t)) / ((1 − t)² + t²·s²) · (x − t·μ)

    Its ODE carries ε to μ + s·ε exactly: a smooth stand-in for a trained model's velocity,
    where solver errors can be measured against the true solution.
    """

    mean: Tensor  # μ, float64
    std: Tensor  # s > 0, float64

    @classmethod
    def random(cls, shape: tuple[int, ...], seed: int = 0) -> GaussianFlow:
        gen = torch.Generator().manual_seed(seed)
        mean = torch.randn(shape, generator=gen, dtype=torch.float64)
        return cls(mean, 0.2 + 0.5 * torch.rand(shape, generator=gen, dtype=torch.float64))

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """dx/dt (float32) at x (float32, the shape of ``mean``) and the flow time t."""
        t = t.double()
        variance = (1 - t) ** 2 + t**2 * self.std**2
        slope = (t * self.std**2 - (1 - t)) / variance
        return (self.mean + slope * (x.double() - t * self.mean)).float()

    def solution(self, noise: Tensor) -> Tensor:
        """The exact x(1) from x(0) = noise."""
        return (self.mean + self.std * noise.double()).float()


def _timed(
    device: torch.device, run: Callable[[], list[Generated]]
) -> tuple[float, list[Generated]]:
    _sync(device)
    start = time.perf_counter()
    out = run()
    _sync(device)
    return time.perf_counter() - start, out


def _difference(a: Generated, b: Generated) -> tuple[float, float]:
    """Max |Δ| of the latents and of the world joint positions (metres)."""
    latent = _max_abs(a.latent - b.latent)
    joints = float(abs(a.motion.joint_positions - b.motion.joint_positions).max())
    return latent, joints


class Bench:
    def __init__(
        self,
        pipeline: MotionPipeline,
        out: TextIO,
        steps: int,
        features: Callable[[str], TextFeatures | None],
    ) -> None:
        self.pipeline = pipeline
        self.out = out
        self.steps = steps
        self.features = features  # prompt -> precomputed features, or None to encode it

    def job(
        self, case: Case, index: int = 0, seed: int = 0, job: str = "bench", steps: int = 0
    ) -> JobSpec:
        seeds = tuple(range(seed, seed + case.candidates))
        prompt = PROMPTS[index % len(PROMPTS)]
        return JobSpec(job, prompt, case.frames, seeds, 5.0, steps or self.steps, "bench")

    def _explicit(self, jobs: Sequence[JobSpec]) -> dict[str, ExplicitInputs]:
        given = {j.job_id: self.features(j.prompt) for j in jobs}
        return {job: ExplicitInputs(features=f) for job, f in given.items() if f is not None}

    def fast(
        self, jobs: Sequence[JobSpec], pipeline: MotionPipeline | None = None
    ) -> tuple[float, list[Generated]]:
        run_on = pipeline or self.pipeline
        explicit = self._explicit(jobs)

        def run() -> list[Generated]:
            out = run_on.generate(jobs, _ignore, _never, explicit)
            return [r for r in out if isinstance(r, Generated)]

        return _timed(run_on.device, run)

    def reference(self, jobs: Sequence[JobSpec]) -> tuple[float, list[Generated]]:
        ref = self.pipeline
        explicit = self._explicit(jobs)
        return _timed(
            ref.device,
            lambda: [ref.generate_reference(j, explicit.get(j.job_id, COMPUTED)) for j in jobs],
        )

    def grid(self, cases: Sequence[Case], reference: bool) -> None:
        self.out.write(
            "\ncandidates  clip   encode_s  sample_s  decode_s   total_s  cand/s"
            + ("   ref_total_s  speedup  max|Δlatent|  max|Δjoints| m" if reference else "")
            + "\n"
        )
        self.fast([self.job(Case(1, 1.0))])  # warm-up: first-call allocations and kernels
        for case in cases:
            total, (result,) = self.fast([self.job(case)])
            t = result.timings
            line = (
                f"{case.candidates:10d}  {case.seconds:4.1f}s  {t['encode']:8.3f}  "
                f"{t['sample']:8.3f}  {t['decode']:8.3f}  {total:8.3f}  "
                f"{case.candidates / total:6.2f}"
            )
            if reference:
                ref_total, (ref,) = self.reference([self.job(case)])
                d_latent, d_joints = _difference(result, ref)
                line += (
                    f"   {ref_total:11.3f}  {ref_total / total:6.2f}x  {d_latent:12.2e}  "
                    f"{d_joints:14.2e}"
                )
            self.out.write(line + "\n")
            self.out.flush()

    def batching(self) -> None:
        """Three jobs (different prompts, lengths, seeds) in one forward vs one after another."""
        jobs = [
            self.job(Case(2, s), index=i, seed=10 * i, job=f"job{i}")
            for i, s in enumerate((2.0, 3.5, 5.0))
        ]
        together, batch = self.fast(jobs)
        alone_s = 0.0
        diff = 0.0
        for job, joint in zip(jobs, batch, strict=True):
            seconds, (single,) = self.fast([job])
            alone_s += seconds
            diff = max(diff, _difference(single, joint)[0])
        self.out.write(
            f"\nbatching: 3 jobs x 2 candidates (2 / 3.5 / 5 s) in one batch {together:.3f} s, "
            f"one by one {alone_s:.3f} s ({alone_s / together:.2f}x), max|Δlatent| {diff:.2e}\n"
        )

    def precisions(self, case: Case, variants: dict[str, MotionPipeline]) -> None:
        """bf16 / TF32 copies of the model against this (fp32) pipeline's fast mode."""
        base_s, (base,) = self.fast([self.job(case)])
        self.out.write(
            f"\nprecision ({case.candidates} x {case.seconds:g} s, against fp32 {base_s:.3f} s):\n"
        )
        for name, pipeline in variants.items():
            tf32 = name == "tf32"  # a process-wide switch: on for this run only
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            seconds, (out,) = self.fast([self.job(case)], pipeline)
            d_latent, d_joints = _difference(out, base)
            self.out.write(
                f"  {name:6s} {seconds:8.3f} s  max|Δlatent| {d_latent:.2e}  "
                f"max|Δjoints| {d_joints:.2e} m\n"
            )
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def solvers(
        self, case: Case, names: Sequence[str], step_counts: Sequence[int], repeats: int = 1
    ) -> None:
        """Each solver at each step count against the official sampler (Euler, ``self.steps``):
        sampling time (the best of ``repeats`` runs) and the largest difference of the latents
        and of the joints."""
        self.fast([self.job(Case(1, 1.0))])  # warm-up
        official = self.pipeline.with_solver("euler")  # whatever the configured solver
        base, base_sample = self._best_sample(case, self.steps, official, repeats)
        self.out.write(
            f"\nsolvers ({case.candidates} x {case.seconds:g} s, guidance 5.0, best of {repeats}) "
            f"against Euler at {self.steps} steps (sampling {base_sample:.3f} s):\n"
            "  solver           steps  evals  sample_s  faster  max|Δlatent|  max|Δjoints| m\n"
        )
        for name in names:
            pipeline = self.pipeline.with_solver(name)
            for steps in step_counts:
                # built before timing: the diffusers import and the scheduler set-up
                evals = len(make_stepper(name, steps, pipeline.device).times)
                out, sample = self._best_sample(case, steps, pipeline, repeats)
                d_latent, d_joints = _difference(out, base)
                self.out.write(
                    f"  {name:15s}  {steps:5d}  {evals:5d}  {sample:8.3f}  "
                    f"{base_sample / sample:5.1f}x  {d_latent:12.2e}  {d_joints:14.2e}\n"
                )
                self.out.flush()
        self.analytic(names, step_counts)

    def _best_sample(
        self, case: Case, steps: int, pipeline: MotionPipeline, repeats: int
    ) -> tuple[Generated, float]:
        runs = [self.fast([self.job(case, steps=steps)], pipeline)[1][0] for _ in range(repeats)]
        return runs[0], min(r.timings["sample"] for r in runs)

    def analytic(self, names: Sequence[str], step_counts: Sequence[int]) -> None:
        """The same solvers on ``GaussianFlow``, where the exact solution is known."""
        flow = GaussianFlow.random((4, 150, 201))
        noise = torch.randn((4, 150, 201), generator=torch.Generator().manual_seed(1))
        exact = flow.solution(noise)
        cpu = torch.device("cpu")

        def solve(name: str, steps: int) -> Tensor:
            return integrate(make_stepper(name, steps, cpu), flow.velocity, noise)

        euler = solve("euler", self.steps)
        self.out.write(
            "\nsame solvers on an analytic flow (Gaussian data per latent value, exact solution "
            f"known): Euler at {self.steps} steps is {_max_abs(euler - exact):.2e} from it\n"
            f"  solver           steps  max|Δ| vs exact  vs Euler {self.steps}\n"
        )
        for name in names:
            for steps in step_counts:
                x = solve(name, steps)
                self.out.write(
                    f"  {name:15s}  {steps:5d}  {_max_abs(x - exact):15.2e}  "
                    f"{_max_abs(x - euler):11.2e}\n"
                )


def _max_abs(x: Tensor) -> float:
    return float(x.abs().max())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(out: TextIO, device: torch.device, model: str, steps: int) -> None:
    cpu = cpu_name()
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    out.write(
        f"HY-Motion engine benchmark: model {model}, device {device} (GPU: {gpu}), CPU {cpu} "
        f"with {threads} torch threads, torch {torch.__version__}, {steps} steps, guidance 5.0\n"
    )


def parse_cases(candidates: str, seconds: str) -> list[Case]:
    return [Case(int(c), float(s)) for c in candidates.split(",") for s in seconds.split(",")]


def random_bench(size: str, device: torch.device, steps: int, out: TextIO) -> Bench:
    """Official-size random weights with precomputed random text features."""
    weights, config = random_weights(size)
    header(
        out,
        device,
        f"{size}-random (seeded random weights, random text features, no text-encoder time)",
        steps,
    )
    pipeline = MotionPipeline(weights, config, None, JointGrounding(), device)
    return Bench(
        pipeline, out, steps, lambda prompt: random_features(config, PROMPTS.index(prompt))
    )


def model_bench(pipeline: MotionPipeline, name: str, steps: int, out: TextIO) -> Bench:
    """A loaded model with its own text encoders (their time included)."""
    header(out, pipeline.device, name, steps)
    return Bench(pipeline, out, steps, lambda prompt: None)
