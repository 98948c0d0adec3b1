"""Directed-generation benchmark (prints figures; not a test).

    .venv/bin/python tests/engine/bench_directed.py [--model tiny|lite-random|standard-random]
        [--steps N] [--device cpu|cuda] [--model-dir NAME=DIR --clip DIR --qwen DIR]

Figures, all measured in the same run:
- feature round trip (pose -> normalised features -> pose) on the model's own output and on the
  bundled CMU clips (examples/mocap, on the model skeleton by the add-on's BVH import);
- constrained-frame error (joints mm, rotations degrees) with and without the clean-up
  (`--case TEXT` runs only the cases whose name holds TEXT);
- transition smoothness: at every boundary between constrained and free frames, the joint
  velocity jump |v_b − v_{b−1}| and acceleration jump |a_b − a_{b−1}| (largest over joints)
  divided by the clip's own median of the same quantity (1.0 = as smooth as the clip);
- loop seam: the last -> first frame step and its velocity jump against the clip's medians;
- a timeline of 4 prompts x 7.5 s: seams against the clip's median step, and its cost against
  the four segments generated alone;
- the overhead of imposing constraints on the sampling time (best of --repeats).

With real weights (a GPU box with the official checkpoints) the same command judges motion
quality; on untrained weights (tiny, *-random) the free frames are noise and only the mechanics
(exact hits, seams as ordinary frames, cost) mean anything.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from blender_addon.core.directing import inbetween_takes  # noqa: E402
from blender_addon.core.motion import bvh_import  # noqa: E402
from daemon.engine.bench import PROMPTS, cpu_name, random_features, random_weights  # noqa: E402
from daemon.engine.commands import engine_options  # noqa: E402
from daemon.engine.constraints import Targets, imposer_for  # noqa: E402
from daemon.engine.factory import TINY, EngineOptions, ModelLoader  # noqa: E402
from daemon.engine.features import (  # noqa: E402
    Placement,
    denormalize,
    feature_poses,
    heading,
    normalize,
    pose_features,
)
from daemon.engine.grounding import JointGrounding  # noqa: E402
from daemon.engine.pipeline import Generated, MotionPipeline  # noqa: E402
from daemon.engine.skeleton import BODY_SKELETON  # noqa: E402
from daemon.engine.text import TextFeatures  # noqa: E402
from daemon.engine.timeline import generate_timeline  # noqa: E402
from daemon.engine_api import JobSpec  # noqa: E402
from shared_protocol import Constraints, TimelineRow, forward_kinematics  # noqa: E402

MOCAP = ROOT / "examples" / "mocap"
CLIPS = sorted(MOCAP.glob("*.bvh"))
TIMELINE = (
    "a person walks forward",
    "a person jumps twice",
    "a person sits down on a chair",
    "a person stands up and waves",
)


class RandomText:
    """Random per-prompt text features (the *-random models have no encoders)."""

    def __init__(self, config: object) -> None:
        self._config = config
        self._seen: list[str] = []

    def encode(self, prompts: list[str]) -> TextFeatures:
        rows = []
        for prompt in prompts:
            if prompt not in self._seen:
                self._seen.append(prompt)
            rows.append(random_features(self._config, self._seen.index(prompt)))  # type: ignore[arg-type]
        return TextFeatures(
            torch.cat([r.vtxt for r in rows]),
            torch.cat([r.ctxt for r in rows]),
            torch.cat([r.lengths for r in rows]),
            tuple(t for r in rows for t in r.truncated),
        )


def _ignore(*_: object) -> None:
    return None


def _never(_: str) -> bool:
    return False


def load(args: argparse.Namespace) -> tuple[MotionPipeline, str]:
    device = torch.device(args.device)
    if args.model.endswith("-random"):
        weights, config = random_weights(args.model.removesuffix("-random"))
        pipeline = MotionPipeline(weights, config, None, JointGrounding(), device)
        pipeline.text = RandomText(config)  # type: ignore[assignment]
        return pipeline, f"{args.model} (seeded random weights, random text features)"
    opts = engine_options(args) if args.model != TINY else EngineOptions()
    sources = dict(opts.models) or {TINY: TINY}
    served = ModelLoader(opts, device).load(args.model, sources[args.model])
    if served.pipeline is None:
        raise SystemExit(f"model {args.model} is unavailable: {served.info.error}")
    return served.pipeline, served.info.label


def run(pipeline: MotionPipeline, job: JobSpec) -> Generated:
    (out,) = pipeline.generate([job], _ignore, _never)
    assert isinstance(out, Generated)
    return out


# --- measures ----------------------------------------------------------------------------------


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    dot = np.abs((a * b).sum(-1))
    cross = np.linalg.norm(
        a[..., :1] * b[..., 1:] - b[..., :1] * a[..., 1:] + np.cross(a[..., 1:], b[..., 1:]),
        axis=-1,
    )
    return np.degrees(2 * np.arctan2(cross, dot))


def local_joints(out: Generated) -> np.ndarray:
    """(C, F, 22, 3) joints with the pelvis's ground travel removed (a cycle may advance)."""
    joints = out.motion.joint_positions.astype(np.float64)
    return joints - joints[:, :, :1] * np.array([1.0, 0.0, 1.0])


def jumps(joints: np.ndarray, order: int) -> np.ndarray:
    """|Δ^order x| per frame (largest over joints): (C, F − order)."""
    return np.linalg.norm(np.diff(joints, n=order, axis=1), axis=-1).max(-1)


def smoothness(out: Generated, boundaries: list[int]) -> tuple[float, float]:
    """Worst velocity jump and acceleration jump at the boundaries over the clip's medians."""
    joints = out.motion.joint_positions.astype(np.float64)
    accel, jerk = jumps(joints, 2), jumps(joints, 3)  # Δv at f+1, Δa at f+1…
    worst_v = max(float((accel[:, b - 1] / np.median(accel, axis=1)).max()) for b in boundaries)
    worst_a = max(float((jerk[:, b - 2] / np.median(jerk, axis=1)).max()) for b in boundaries)
    return worst_v, worst_a


def pose_error(out: Generated, c: Constraints) -> tuple[float, float]:
    target = forward_kinematics(BODY_SKELETON, c.pose_rotations, c.pose_root_positions)
    mm = 1000 * float(np.abs(out.motion.joint_positions[:, c.pose_frames] - target[None]).max())
    deg = float(angle_deg(out.motion.rotations[:, c.pose_frames], c.pose_rotations[None]).max())
    return mm, deg


# --- sections ----------------------------------------------------------------------------------


def round_trips(pipeline: MotionPipeline, steps: int) -> None:
    mean, std = pipeline.weights.mean, pipeline.weights.std
    print("\nfeature round trip (pose -> normalised float32 latent -> pose), largest error:")
    own = run(pipeline, job("rt", 150, None, steps)).motion
    rows = [(f"model output, {len(SEEDS)} x 150 frames", own.rotations, own.root_positions)]
    for clip in CLIPS:
        take = bvh_import.load_bvh_take(clip)
        rows.append((f"{clip.stem} ({take.rotations.shape[0]} frames)",
                     take.rotations[None], take.root_positions[None]))  # fmt: skip
    for name, rotations, roots in rows:
        rotations, roots = rotations.astype(np.float64), roots.astype(np.float64)
        placement = Placement.at(roots[:, 0], heading(rotations[:, 0]))
        rotations, roots = placement.to_canonical(rotations, roots)
        latent = normalize(pose_features(rotations, roots), mean, std).float()
        back_rot, back_root = feature_poses(denormalize(latent, mean, std))
        joints = forward_kinematics(BODY_SKELETON, rotations, roots).astype(np.float64)
        back = forward_kinematics(BODY_SKELETON, back_rot, back_root).astype(np.float64)
        print(
            f"  {name:42s} rotations {angle_deg(back_rot, rotations).max():.1e} deg, "
            f"quaternion {np.abs(np.abs((back_rot * rotations).sum(-1)) - 1).max():.1e}, "
            f"joints {1000 * np.abs(back - joints).max():.1e} mm"
        )


SEEDS = (0, 1)
#: ``--case``: the directed cases run (those whose name holds it; all by default).
CASE = ""


def job(name: str, frames: int, c: Constraints | None, steps: int, prompt: int = 0) -> JobSpec:
    return JobSpec(name, PROMPTS[prompt % len(PROMPTS)], frames, SEEDS, 5.0, steps, "bench", c)


def clip_poses(clip: Path) -> tuple[np.ndarray, np.ndarray]:
    take = bvh_import.load_bvh_take(clip)
    return take.rotations, take.root_positions


def scenarios(steps: int) -> list[tuple[str, int, Constraints, list[int]]]:
    """(name, frames, constraints, boundaries) of each directed case."""
    out = []
    walk_rot, walk_root = clip_poses(MOCAP / "walk_forward_cmu_35_01.bvh")
    kick_rot, kick_root = clip_poses(MOCAP / "kick_cmu_10_02_daz.bvh")
    for clip in CLIPS:
        rot, root = clip_poses(clip)
        c = Constraints(
            pose_frames=np.arange(15, dtype=np.int32),
            pose_rotations=rot[-15:],
            pose_root_positions=root[-15:],
        )
        out.append((f"continue {clip.stem}", 150, c, [15]))
    key = Constraints(
        pose_frames=np.array([*range(15), 120], dtype=np.int32),
        pose_rotations=np.concatenate([walk_rot[-15:], kick_rot[60:61]]),
        pose_root_positions=np.concatenate(
            [walk_root[-15:], kick_root[60:61] + np.array([1.0, 0, 2.0])]
        ),
    )
    out.append(("walk end -> kick pose at frame 120", 150, key, [15, 120, 121]))
    between = Constraints(
        pose_frames=np.array([0, 89], dtype=np.int32),
        pose_rotations=np.stack([walk_rot[10], kick_rot[60]]),
        pose_root_positions=np.stack([walk_root[10], walk_root[10] + [0.5, 0.0, 1.5]]),
    )
    out.append(("in-between two keys (0, 89)", 90, between, [2, 88]))
    # the panel's In-between "Into Take": the walk's last 15 frames, the kick's first 15
    into, _ = inbetween_takes((walk_rot, walk_root), (kick_rot, kick_root), 90)
    out.append(("walk end -> kick start (15 + 15 held)", 90, into, [15, 75]))
    path = Constraints(
        path_frames=np.array([0, 50, 100, 149], dtype=np.int32),
        path_points=np.array(
            [[0, 0, 0], [0.3, 1.5, 0.4], [1.2, 2.8, 1.0], [2.5, 3.2, 1.5]], np.float32
        ),
    )
    out.append(("path, 4 points with headings", 150, path, [2, 50, 51, 100, 101, 147]))
    return out


def directed(pipeline: MotionPipeline, steps: int) -> None:
    print(
        "\nconstrained frames and transitions (error = largest over candidates, "
        "constrained frames and joints; jumps = worst boundary / the clip's median):\n"
        f"  {'case':40s} {'clean-up':>8s} {'joints mm':>10s} {'rot deg':>8s} "
        f"{'vel jump':>9s} {'acc jump':>9s}"
    )
    for name, frames, c, boundaries in scenarios(steps):
        if CASE not in name:
            continue
        for exact in (False, True):
            out = run(pipeline, job(name, frames, Constraints(**{**_fields(c), "exact": exact}),
                                    steps))  # fmt: skip
            if c.has_poses:
                mm, deg = pose_error(out, c)
            else:
                assert c.path_points is not None and c.path_frames is not None
                ground = out.motion.root_positions[:, c.path_frames][..., [0, 2]]
                mm = 1000 * float(np.abs(ground - c.path_points[None, :, :2]).max())
                deg = float("nan")
            v, a = smoothness(out, [b for b in boundaries if 2 <= b < frames - 1])
            print(
                f"  {name:40s} {'on' if exact else 'off':>8s} {mm:10.3g} {deg:8.3g} "
                f"{v:9.2f} {a:9.2f}"
            )


def _fields(c: Constraints) -> dict[str, object]:
    return {k: getattr(c, k) for k in c.__dataclass_fields__}


def loops(pipeline: MotionPipeline, steps: int) -> None:
    print(
        f"\nloop ({len(SEEDS)} candidates x 4 s): seam against the clip's medians "
        "(<= 1.0 is the target)"
    )
    for exact in (False, True):
        out = run(pipeline, job("loop", 120, Constraints(loop=True, exact=exact), steps))
        free = run(pipeline, job("free", 120, None, steps))
        for label, clip in (("loop", out), ("no loop (same seeds)", free)):
            joints = local_joints(clip)
            step = jumps(joints, 1)
            seam = np.linalg.norm(joints[:, 0] - joints[:, -1], axis=-1).max(-1)
            seam_v = np.linalg.norm(
                (joints[:, 0] - joints[:, -1]) - (joints[:, -1] - joints[:, -2]), axis=-1
            ).max(-1)
            accel = jumps(joints, 2)
            if label == "loop" or exact:
                print(
                    f"  {label:22s} clean-up {'on ' if exact else 'off'}  seam step "
                    f"{(seam / np.median(step, axis=1)).max():.2f} x median step, velocity jump "
                    f"{(seam_v / np.median(accel, axis=1)).max():.2f} x median velocity change"
                )


def timeline(pipeline: MotionPipeline, steps: int, repeats: int) -> None:
    rows = tuple(TimelineRow(p, 7.5) for p in TIMELINE[1:])
    spec = JobSpec("timeline", TIMELINE[0], 225, SEEDS, 5.0, steps, "bench",
                   Constraints(timeline=rows))  # fmt: skip
    best, out = float("inf"), None
    alone = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate_timeline(pipeline, spec, _ignore, _never)
        best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        for i, prompt in enumerate(TIMELINE):
            run(pipeline, JobSpec(f"alone{i}", prompt, 225, SEEDS, 5.0, steps, "bench"))
        alone = min(alone, time.perf_counter() - start)
    assert isinstance(out, Generated)
    joints = local_joints(out)
    step = jumps(joints, 1)
    seams = step[:, [224, 449, 674]] / np.median(step, axis=1)[:, None]
    rank = (step[:, None, :] < step[:, [224, 449, 674], None]).mean(-1)
    print(
        f"\ntimeline: 4 prompts x 7.5 s = {out.motion.rotations.shape[1] / 30:g} s, "
        f"{len(SEEDS)} candidates; "
        f"{best:.2f} s vs the 4 segments alone {alone:.2f} s ({best / alone:.2f}x, best of "
        f"{repeats});\n  seams / median step: {np.array2string(seams.ravel(), precision=2)}; "
        f"percentile of the seams among the clip's steps: "
        f"{np.array2string(100 * rank.ravel(), precision=0)}"
    )


def overhead(pipeline: MotionPipeline, steps: int, repeats: int) -> None:
    rot, root = clip_poses(MOCAP / "walk_forward_cmu_35_01.bvh")
    every = Constraints(
        pose_frames=np.array([*range(15), 149], dtype=np.int32),
        pose_rotations=np.concatenate([rot[-15:], rot[:1]]),
        pose_root_positions=np.concatenate([root[-15:], root[:1] + np.array([0, 0, 2.0])]),
        path_frames=np.array([60, 100], dtype=np.int32),
        path_points=np.array([[0.2, 1.0, 0.1], [0.4, 1.6, 0.2]], np.float32),
        loop=False,
    )
    cases = {"none": None, "poses + path": every, "loop": Constraints(loop=True)}
    times: dict[str, float] = {}
    for name, c in cases.items():
        runs = [run(pipeline, job(name, 150, c, steps)) for _ in range(repeats)]
        times[name] = min(r.timings["sample"] for r in runs)
    base = times["none"]
    print(
        f"\nconstraint overhead on sampling ({len(SEEDS)} x 5 s, best of {repeats}): "
        f"none {base:.3f} s"
    )
    for name, c in list(cases.items())[1:]:
        assert c is not None
        # the imposition alone, timed directly: robust to a loaded machine
        imposer, _, _ = imposer_for(
            Targets.from_wire(c, len(SEEDS), 150),
            pipeline.weights.mean,
            pipeline.weights.std,
            pipeline.device,
        )
        x = torch.randn(len(SEEDS), 150, 201, device=pipeline.device)
        v = torch.randn_like(x)
        calls = 200
        start = time.perf_counter()
        for k in range(calls):
            imposer.velocity(x, v, torch.tensor(k / calls))
        per_step = (time.perf_counter() - start) / calls
        print(
            f"  {name:14s} {times[name]:.3f} s ({100 * (times[name] / base - 1):+.1f} % end to "
            f"end); the imposition alone {1000 * per_step:.3f} ms per step = "
            f"{100 * per_step * steps / base:.2f} % of the undirected sampling"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=TINY)
    parser.add_argument("--steps", type=int, default=None, help="default 50; 2 for *-random")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--model-dir", action="append", default=[])
    for flag in ("clip", "qwen", "system-prompt-file", "mesh-dir", "precision", "text-encoders",
                 "qwen-quantization", "tiny-dir"):  # fmt: skip
        parser.add_argument(f"--{flag}")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections to run ({', '.join(SECTIONS)})"
    )
    parser.add_argument("--case", default="", help="directed: only the cases naming this text")
    args = parser.parse_args()
    steps = args.steps or (2 if args.model.endswith("-random") else 50)
    global SEEDS, CASE
    SEEDS, CASE = tuple(range(args.candidates)), args.case
    pipeline, label = load(args)
    print(
        f"directed-generation benchmark: {label}, device {args.device}, CPU {cpu_name()} "
        f"({torch.get_num_threads()} threads), torch {torch.__version__}, {steps} steps"
    )
    run(pipeline, job("warm-up", 30, None, 2))
    wanted = args.only.split(",")
    for name in wanted:
        if name not in SECTIONS:
            parser.error(f"--only: unknown section {name!r}")
    for name, section in SECTIONS.items():
        if name in wanted:
            section(pipeline, steps, args.repeats)
    return 0


SECTIONS: dict[str, Callable[[MotionPipeline, int, int], None]] = {
    "round-trip": lambda p, steps, _: round_trips(p, steps),
    "directed": lambda p, steps, _: directed(p, steps),
    "loop": lambda p, steps, _: loops(p, steps),
    "overhead": overhead,
    "timeline": timeline,
}


if __name__ == "__main__":
    sys.exit(main())
