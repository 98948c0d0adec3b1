"""``python -m daemon bench``: per-stage times and throughput of the fast mode against the
reference mode of the same engine, in the same run, with the ratio and the largest difference.

Models: ``tiny`` (the built-in model, text encoders included), ``lite-random`` /
``standard-random`` (official sizes with seeded random weights and random precomputed text
features, so no text-encoder time), or a model directory (with the configured encoders).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TextIO

import torch

from .checkpoint import ModelConfig
from .grounding import JointGrounding
from .mmdit import CONFIGS, HYMotionWeights
from .pipeline import Generated, MotionPipeline, Request
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


def _ignore(*_: object) -> None:
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
    config = ModelConfig(network, 50, 5.0, size == "lite", True, TEXT_SLOTS, 30)
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
    latent = float((a.latent - b.latent).abs().max())
    joints = float(abs(a.motion.joint_positions - b.motion.joint_positions).max())
    return latent, joints


class Bench:
    def __init__(
        self,
        pipeline: MotionPipeline,
        out: TextIO,
        steps: int,
        features: Callable[[int], TextFeatures | None],
    ) -> None:
        self.pipeline = pipeline
        self.out = out
        self.steps = steps
        self.features = features  # prompt index -> precomputed features or None (encode)

    def request(self, case: Case, index: int = 0, seed: int = 0, job: str = "bench") -> Request:
        seeds = tuple(range(seed, seed + case.candidates))
        return Request(
            job,
            PROMPTS[index % len(PROMPTS)],
            case.frames,
            seeds,
            5.0,
            self.steps,
            features=self.features(index),
        )

    def fast(self, requests: Sequence[Request]) -> tuple[float, list[Generated]]:
        def run() -> list[Generated]:
            out = self.pipeline.generate(requests, _ignore, _never)
            return [r for r in out if isinstance(r, Generated)]

        return _timed(self.pipeline.device, run)

    def reference(
        self, requests: Sequence[Request], pipeline: MotionPipeline | None = None
    ) -> tuple[float, list[Generated]]:
        ref = pipeline or self.pipeline
        return _timed(ref.device, lambda: [ref.generate_reference(r) for r in requests])

    def grid(self, cases: Sequence[Case], reference: bool) -> None:
        self.out.write(
            "\ncandidates  clip   encode_s  sample_s  decode_s   total_s  cand/s"
            + ("   ref_total_s  speedup  max|Δlatent|  max|Δjoints| m" if reference else "")
            + "\n"
        )
        self.fast([self.request(Case(1, 1.0))])  # warm-up: first-call allocations and kernels
        for case in cases:
            total, (result,) = self.fast([self.request(case)])
            t = result.timings
            line = (
                f"{case.candidates:10d}  {case.seconds:4.1f}s  {t['encode']:8.3f}  "
                f"{t['sample']:8.3f}  {t['decode']:8.3f}  {total:8.3f}  "
                f"{case.candidates / total:6.2f}"
            )
            if reference:
                ref_total, (ref,) = self.reference([self.request(case)])
                d_latent, d_joints = _difference(result, ref)
                line += (
                    f"   {ref_total:11.3f}  {ref_total / total:6.2f}x  {d_latent:12.2e}  "
                    f"{d_joints:14.2e}"
                )
            self.out.write(line + "\n")
            self.out.flush()

    def batching(self) -> None:
        """Three jobs (different prompts, lengths, seeds) in one forward vs one after another."""
        requests = [
            self.request(Case(2, s), index=i, seed=10 * i, job=f"job{i}")
            for i, s in enumerate((2.0, 3.5, 5.0))
        ]
        together, batch = self.fast(requests)
        alone_s = 0.0
        diff = 0.0
        for request, joint in zip(requests, batch, strict=True):
            seconds, (single,) = self.fast([request])
            alone_s += seconds
            diff = max(diff, _difference(single, joint)[0])
        self.out.write(
            f"\nbatching: 3 jobs x 2 candidates (2 / 3.5 / 5 s) in one batch {together:.3f} s, "
            f"one by one {alone_s:.3f} s ({alone_s / together:.2f}x), max|Δlatent| {diff:.2e}\n"
        )

    def variants(self, case: Case, variants: dict[str, MotionPipeline]) -> None:
        """Precision / solver variants against this (fp32 Euler) pipeline's fast mode."""
        base_s, (base,) = self.fast([self.request(case)])
        self.out.write(
            f"\nvariants ({case.candidates} x {case.seconds:g} s, against fp32 Euler "
            f"{base_s:.3f} s):\n"
        )
        for name, pipeline in variants.items():
            tf32 = name.startswith("tf32")  # a process-wide switch: on for this run only
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            steps = self.steps // 2 if name.startswith("heun") else self.steps
            request = replace(self.request(case), steps=max(steps, 1))

            def run(p: MotionPipeline = pipeline, r: Request = request) -> list[Generated]:
                return [x for x in p.generate([r], _ignore, _never) if isinstance(x, Generated)]

            seconds, (out,) = _timed(pipeline.device, run)
            d_latent, d_joints = _difference(out, base)
            self.out.write(
                f"  {name:28s} {seconds:8.3f} s  max|Δlatent| {d_latent:.2e}  "
                f"max|Δjoints| {d_joints:.2e} m\n"
            )


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


def run_random(
    size: str, device: torch.device, steps: int, cases: Sequence[Case], out: TextIO, reference: bool
) -> None:
    """Official-size random weights with precomputed random text features."""
    weights, config = random_weights(size)
    header(
        out,
        device,
        f"{size}-random (seeded random weights, random text features, no text-encoder time)",
        steps,
    )
    pipeline = MotionPipeline(weights, config, None, JointGrounding(), device)
    bench = Bench(pipeline, out, steps, lambda i: random_features(config, i))
    bench.grid(cases, reference)


def run_pipeline(
    pipeline: MotionPipeline,
    name: str,
    steps: int,
    cases: Sequence[Case],
    out: TextIO,
    reference: bool,
    variants: dict[str, MotionPipeline],
) -> None:
    header(out, pipeline.device, name, steps)
    bench = Bench(pipeline, out, steps, lambda i: None)
    bench.grid(cases, reference)
    bench.batching()
    if variants:
        bench.variants(Case(4, 5.0), variants)
