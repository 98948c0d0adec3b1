"""Engine subcommands of ``python -m daemon``: ``check``, ``convert`` and ``bench``."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from daemon.cluster.config import ClusterConfig
from daemon.config import load_config
from shared_protocol import HYMotionError, InvalidArgument

from .bench import Case, model_bench, parse_cases, random_bench
from .checkpoint import (
    CONFIG_FILE,
    check_state_dict,
    convert,
    parse_config,
    read_state_dict,
    weights_file,
)
from .device_probe import footprints, probe_devices
from .errors import TextEncoderError
from .factory import PRECISIONS, TINY, EncoderKey, EngineOptions, ModelLoader
from .grounding import MeshGrounding, rest_mesh_floor
from .memory import GIB, activation_bytes, plan, replica_needs
from .pipeline import MotionPipeline
from .prompt import resolve_system_prompt
from .solvers import SOLVERS, check_solver
from .text import PLACEMENTS, QUANTIZATIONS, TEXT_SLOTS, check_encoder_source, find_crop_start

EXPECTED_CROP_START = 101  # spec §3.2, for the real Qwen3 tokenizer and the official prompt
LITE_TARGET_GIB = 12.0
OFFICIAL_STEPS = 50  # validation_steps of both official configs
ALL = "all"
#: ``bench --solvers`` clips: 4 x 5 s on a loaded model; 1 x 2 s at official sizes on the CPU
SOLVER_CASE = Case(4, 5.0)
SOLVER_CASE_RANDOM = Case(1, 2.0)


def register(subparsers: Any) -> None:
    """Add ``check``, ``convert`` and ``bench`` to the daemon's argparse subparsers."""
    check = subparsers.add_parser("check", help="validate model and text-encoder directories")
    _engine_flags(check)
    check.add_argument(
        "--load-encoders",
        action="store_true",
        help="also load the text-encoder weights (needs their memory)",
    )
    check.add_argument(
        "--vram-gb", type=float, help="device memory to plan for (default: the GPU's free memory)"
    )
    check.add_argument(
        "--devices",
        help="devices to check, e.g. cuda:0,cuda:1 (default: the config's devices, else cpu)",
    )
    check.set_defaults(func=check_command)

    conv = subparsers.add_parser("convert", help="latest.ckpt -> model.safetensors")
    conv.add_argument("model_dir", type=Path)
    conv.add_argument("--out", type=Path, help="output file (default MODEL_DIR/model.safetensors)")
    conv.set_defaults(func=convert_command)

    bench = subparsers.add_parser("bench", help="engine speed against its reference mode")
    _engine_flags(bench)
    bench.add_argument(
        "--model",
        default=TINY,
        help="tiny | lite-random | standard-random | a model name from --models",
    )
    bench.add_argument("--steps", type=int, help="sampler steps (default 50; 2 for *-random)")
    bench.add_argument("--candidates", default="1,4,8")
    bench.add_argument("--seconds", default="2,5,12")
    bench.add_argument("--no-reference", action="store_true", help="skip the reference mode")
    bench.add_argument("--quick", action="store_true", help="small grid, few steps (smoke run)")
    bench.add_argument(
        "--solvers",
        nargs="?",
        const=ALL,
        metavar="NAMES",
        help=f"instead of the grid: solvers ({', '.join(SOLVERS)}; default all available) at "
        "--solver-steps against Euler at --steps",
    )
    bench.add_argument("--solver-steps", default="10,15,25", help="step counts for --solvers")
    bench.add_argument("--device", default="cpu")
    bench.set_defaults(func=bench_command)


def _engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="daemon TOML config (its [engine] table)")
    parser.add_argument(
        "--model-dir",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="model directory (repeatable); 'tiny' for the built-in model",
    )
    parser.add_argument("--clip", help="CLIP directory or hub id")
    parser.add_argument("--qwen", help="Qwen3 directory or hub id")
    parser.add_argument("--system-prompt-file", help="file with the official system prompt")
    parser.add_argument("--mesh-dir", help="directory of the wooden mesh .bin files")
    parser.add_argument("--precision", choices=tuple(PRECISIONS))
    parser.add_argument("--text-encoders", choices=PLACEMENTS)
    parser.add_argument("--qwen-quantization", choices=QUANTIZATIONS)
    parser.add_argument("--tiny-dir", help="where the tiny model lives / is created")


def engine_options(
    args: argparse.Namespace, engine_table: Mapping[str, Any] | None = None
) -> EngineOptions:
    """The [engine] table (of --config unless given), overridden by the command-line flags."""
    table: dict[str, Any] = dict(engine_table or {})
    if engine_table is None and args.config:
        with args.config.open("rb") as f:
            table = dict(tomllib.load(f).get("engine", {}))
    if args.model_dir:
        table["models"] = dict(_named(spec) for spec in args.model_dir)
    for key in (
        "clip",
        "qwen",
        "system_prompt_file",
        "mesh_dir",
        "precision",
        "text_encoders",
        "qwen_quantization",
        "tiny_dir",
    ):
        if getattr(args, key) is not None:
            table[key] = getattr(args, key)
    return EngineOptions.from_mapping(table)


def _named(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep:
        return (TINY if spec == TINY else Path(spec).name), spec
    return name, path


# --- check ------------------------------------------------------------------------------------


def check_command(args: argparse.Namespace) -> int:
    """0: all good; 1: a model, encoder or mesh problem; 2: a device cannot be used (or, with
    the Ray backend, a replica does not fit ``--vram-gb``)."""
    config = load_config(args.config, os.environ, {"devices": args.devices})
    opts = engine_options(args, config.engine)
    device = torch.device("cpu")  # where models are tried
    vram_gb = args.vram_gb
    if config.cluster.backend == "ray":
        # the replicas run on the cluster's nodes: plan them, do not probe this machine
        device_failures = _print_cluster_plan(config.cluster, opts, args.vram_gb)
    else:
        verdicts = probe_devices(config.devices, opts)
        print("devices:")
        for verdict in verdicts:
            found = f"{verdict.device}: {verdict.facts}"
            print(f"  FAILED: {verdict.problem}" if verdict.problem else f"  {found}")
        usable = [v for v in verdicts if v.problem is None]
        if usable:
            device = torch.device(usable[0].device)
        if vram_gb is None and usable and usable[0].free_bytes is not None:
            vram_gb = round(usable[0].free_bytes / GIB, 1)  # which modes fit this GPU now
        device_failures = len(verdicts) - len(usable)
    failures = 0
    real = False
    for name, source in opts.models or ((TINY, TINY),):
        print(f"model {name} ({source}):")
        try:
            _check_model(opts, name, source, device, vram_gb, config.cluster.backend == "local")
            real = real or source != TINY
        except HYMotionError as exc:
            failures += 1
            print(f"  FAILED: {exc.message}")
    if real:
        try:
            _check_encoders(opts, args.load_encoders, device)
        except HYMotionError as exc:
            failures += 1
            print(f"  FAILED: {exc.message}")
    if opts.mesh_dir:
        try:
            mesh = MeshGrounding.load(Path(opts.mesh_dir))
            print(
                f"mesh {opts.mesh_dir}: official files, rest floor "
                f"{rest_mesh_floor(mesh):.3f} m (exact grounding)"
            )
        except HYMotionError as exc:
            failures += 1
            print(f"mesh FAILED: {exc.message}")
    else:
        print("mesh: not configured, grounding approximated from joints (see docs/engine.md)")
    failures += device_failures
    print("OK" if not failures else f"{failures} problem(s)")
    return 2 if device_failures else 1 if failures else 0


def _check_model(
    opts: EngineOptions,
    name: str,
    source: str,
    device: torch.device,
    vram_gb: float | None,
    device_plan: bool,
) -> None:
    if source == TINY:
        served = ModelLoader(opts, device).load(name, source)
        print(f"  {served.info.label}: loaded, {served.info.parameters:,} values")
        return
    model_dir = Path(source).expanduser()
    config = parse_config(model_dir / CONFIG_FILE)
    net = config.network
    print(
        f"  config.yml: D={net.feat_dim}, {net.num_layers} layers ({net.double_blocks} double "
        f"+ {net.single_blocks} single), {net.num_heads} heads, mask {net.mask_mode}, "
        f"{config.steps} steps, guidance {config.guidance:g}, noise generator "
        f"{'on the device' if config.generator_on_device else 'on the CPU'}"
    )
    path = weights_file(model_dir)
    state = read_state_dict(path)
    check_state_dict(state, net, path)
    values = sum(t.numel() for t in state.values())
    print(f"  {path.name}: {len(state)} tensors, {values:,} values, names and shapes OK")
    if device_plan:
        _print_plan(opts, values, device, net, vram_gb)


def _print_plan(
    opts: EngineOptions, values: int, device: torch.device, net: Any, vram_gb: float | None
) -> None:
    dtype = PRECISIONS[opts.precision]
    act = activation_bytes(net, 8, 360, TEXT_SLOTS, dtype)  # 4 candidates x CFG, 12 s
    chosen = plan(values, dtype, opts.text_encoders, opts.qwen_quantization, device)
    print(
        f"  memory plan on {device} ({opts.precision}, text encoders {opts.text_encoders}, "
        f"Qwen3 {opts.qwen_quantization}):"
    )
    for line in chosen.lines():
        print(f"    {line}")
    print(f"    peak with 4 candidates x 12 s  {chosen.peak_bytes(act) / GIB:7.2f} GiB")
    target = vram_gb or LITE_TARGET_GIB
    fits = [
        f"{p}/{q}"
        for p in PLACEMENTS
        for q in QUANTIZATIONS
        if plan(values, dtype, p, q, torch.device("cuda")).peak_bytes(act) <= target * GIB
    ]
    print(
        f"  modes (text_encoders/qwen_quantization) within {target:g} GiB of VRAM: "
        f"{', '.join(fits) or 'none'}"
    )


def _print_cluster_plan(cluster: ClusterConfig, opts: EngineOptions, vram_gb: float | None) -> int:
    """The Ray backend's memory plan per deployment; the number of replicas that do not fit
    ``vram_gb`` (0 when it is not given)."""
    print(
        f"cluster: Ray backend at {cluster.address}, app {cluster.app!r}; this machine's "
        "devices are not checked (the replicas run on the cluster's nodes)"
    )
    engine = (
        f"{cluster.min_replicas}-{cluster.max_replicas}"
        if cluster.autoscaling
        else str(cluster.replicas)
    )
    encoders = (str(cluster.encoder_replicas), cluster.encoder_gpus_per_replica)
    needs = replica_needs(
        footprints(opts),
        PRECISIONS[opts.precision],
        opts.text_encoders,
        opts.qwen_quantization,
        (engine, cluster.gpus_per_replica),
        encoders if cluster.shared_encoders else None,
    )
    print(
        f"memory plan per replica ({opts.precision}, text encoders {cluster.text_encoders}, "
        f"engine.text_encoders {opts.text_encoders}, Qwen3 {opts.qwen_quantization}):"
    )
    too_big = 0
    for need in needs:
        print(f"  {need.line()}")
        if vram_gb is not None and need.gpus and need.gpu_bytes > vram_gb * GIB:
            too_big += 1
            print(
                f"  FAILED: {need.deployment}: {need.gpu_bytes / GIB:.2f} GiB per GPU does not "
                f"fit --vram-gb {vram_gb:g}"
            )
    gpus = (cluster.slots * cluster.gpus_per_replica) + (
        cluster.encoder_replicas * cluster.encoder_gpus_per_replica
        if cluster.shared_encoders
        else 0.0
    )
    print(f"  GPUs reserved: {gpus:g}" + (" at most (autoscaling)" if cluster.autoscaling else ""))
    return too_big


def _check_encoders(opts: EngineOptions, load: bool, device: torch.device) -> None:
    from transformers import AutoConfig, AutoTokenizer

    prompt_file = Path(opts.system_prompt_file) if opts.system_prompt_file else None
    prompt = resolve_system_prompt(prompt_file, official=True)
    print("system prompt: official string, sha256 OK")
    for given, what, width in ((opts.clip, "CLIP", 768), (opts.qwen, "Qwen3", 4096)):
        source = check_encoder_source(given, what)
        try:
            config = AutoConfig.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise TextEncoderError(
                source, f"cannot read the {what} config/tokenizer: {exc}"
            ) from exc
        hidden = getattr(getattr(config, "text_config", config), "hidden_size", None)
        if hidden != width:
            raise TextEncoderError(source, f"{what} hidden size {hidden}, expected {width}")
        line = f"{what} {source}: hidden {hidden}, tokenizer OK"
        if what == "Qwen3":
            crop = find_crop_start(tokenizer, prompt)
            line += f", crop_start {crop} (spec: {EXPECTED_CROP_START})"
            if crop != EXPECTED_CROP_START:
                line += " -- differs, check the tokenizer and system prompt"
        print(line)
    if load:
        loader = ModelLoader(opts, device)
        encoders = loader.load_encoders(EncoderKey(opts.clip, opts.qwen, official=True))
        features = encoders.encode(["A person walks forward."])
        print(
            f"encoders loaded; 'A person walks forward.' -> {int(features.lengths[0])} text "
            "tokens (spec: 7)"
        )


# --- convert ----------------------------------------------------------------------------------


def convert_command(args: argparse.Namespace) -> int:
    target = convert(args.model_dir, args.out)
    count = len(read_state_dict(target))
    print(f"wrote {target} ({count} tensors, checked against {CONFIG_FILE})")
    return 0


# --- bench ------------------------------------------------------------------------------------


def bench_command(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    out = sys.stdout
    solvers = _solver_names(args.solvers) if args.solvers else []
    random = args.model.endswith("-random")
    if random:
        steps = args.steps or (OFFICIAL_STEPS if solvers else 2)
        cases = parse_cases("1", "2") if args.quick else parse_cases(args.candidates, args.seconds)
        bench = random_bench(args.model.removesuffix("-random"), device, steps, out)
    else:
        opts = engine_options(args)
        steps = args.steps or (10 if args.quick else OFFICIAL_STEPS)
        cases = (
            parse_cases("1,4", "2,5") if args.quick else parse_cases(args.candidates, args.seconds)
        )
        sources = dict(opts.models)
        if args.model == TINY:
            sources.setdefault(TINY, TINY)
        if args.model not in sources:
            print(f"error: model {args.model!r} is not in --model-dir/--config", file=sys.stderr)
            return 2
        base = ModelLoader(opts, device).load(args.model, sources[args.model]).pipeline
        assert base is not None
        bench = model_bench(base, args.model, steps, out)
    if solvers:
        step_counts = [int(n) for n in args.solver_steps.split(",")]
        case, repeats = (SOLVER_CASE_RANDOM, 1) if random else (SOLVER_CASE, 3)
        bench.solvers(case, solvers, step_counts, repeats)
        return 0
    bench.grid(cases, not args.no_reference)
    if not random:
        bench.batching()
        if not args.quick:
            bench.precisions(
                Case(4, 5.0), _precisions(opts, device, args.model, sources[args.model])
            )
    return 0


def _solver_names(spec: str) -> list[str]:
    """The named solvers (InvalidArgument if one is unknown or unavailable), or every solver
    whose package is installed."""
    if spec != ALL:
        names = spec.split(",")
        for name in names:
            check_solver(name)
        return names
    names = []
    for name in SOLVERS:
        try:
            check_solver(name)
            names.append(name)
        except InvalidArgument as exc:
            print(f"skipping solver {name}: {exc.message}")
    return names


def _precisions(
    opts: EngineOptions, device: torch.device, name: str, source: str
) -> dict[str, MotionPipeline]:
    """bf16 (and TF32 on CUDA) copies of the model."""
    out: dict[str, MotionPipeline] = {}
    for precision in ["bf16"] + (["tf32"] if device.type == "cuda" else []):
        loader = ModelLoader(EngineOptions(**{**opts.__dict__, "precision": precision}), device)
        pipeline = loader.load(name, source).pipeline
        assert pipeline is not None
        out[precision] = pipeline
    return out
