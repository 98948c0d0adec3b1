"""``python -m daemon``: serve, keygen, bench-protocol, plus the engine's commands.

Only ``main()`` turns errors into exit codes: 0 ok, 1 runtime failure, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from daemon import __version__
from daemon.config import OPTIONS, ConfigError, DaemonConfig, env_name, flag_name, load_config
from daemon.engine_api import Engine

if TYPE_CHECKING:
    from daemon.backend import EngineBackend
from shared_protocol import HYMotionError
from shared_protocol.keys import fingerprint, generate_keypair, load_public_key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m daemon", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the inference daemon")
    serve.add_argument("--config", type=Path, help="TOML config file (see docs/operations.md)")
    for option in OPTIONS:
        serve.add_argument(
            flag_name(option.name),
            dest=option.name,
            metavar=option.name.upper(),
            help=f"{option.help} [env {env_name(option.name)}]",
        )
    serve.set_defaults(func=_serve_command)

    keygen = sub.add_parser("keygen", help="create a CURVE key pair for the server or an artist")
    keygen.add_argument("role", choices=("server", "artist"))
    keygen.add_argument("name", nargs="?", help="artist name (server: default 'server')")
    keygen.add_argument("--dir", type=Path, required=True, help="where to write the key files")
    keygen.set_defaults(func=_keygen_command)

    from daemon.bench_protocol import PARTS

    bench = sub.add_parser("bench-protocol", help="print protocol and scheduler figures")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    bench.add_argument(
        "--only",
        choices=PARTS,
        help="run one part: round trips and overhead per job, or the scheduler's throughput "
        "and CPU per job",
    )
    bench.set_defaults(func=_bench_command)

    from daemon.engine import commands as engine_commands

    engine_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for line in exc.message.splitlines():  # several problems: one line each
            print(f"error: {line}", file=sys.stderr)
        return 2
    except HYMotionError as exc:
        print(f"error: {exc.message}" + (f"\n{exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1


# --- serve ------------------------------------------------------------------------------------


def _serve_command(args: argparse.Namespace) -> int:
    flags = {option.name: getattr(args, option.name) for option in OPTIONS}
    config = load_config(args.config, os.environ, flags)
    return serve(config)


def serve(config: DaemonConfig) -> int:
    """Check the devices, build one engine per device (or join the Ray cluster) and run until
    SIGTERM/SIGINT."""
    if config.cluster.backend == "ray":
        from daemon.cluster import connect_ray

        return asyncio.run(run_server(config, (), backend=connect_ray(config)))
    from daemon.engine.device_probe import probe_devices, problems
    from daemon.engine.factory import EngineOptions, create_engine

    # The engine writes (e.g. the tiny model) under the daemon's data directory, nowhere else.
    options = {"data_dir": str(config.data_dir), **config.engine}
    unusable = problems(probe_devices(config.devices, EngineOptions.from_mapping(options)))
    if unusable:
        raise ConfigError("\n".join(map(str, unusable)), field="devices")
    engines = [create_engine(options, device) for device in config.devices]
    return asyncio.run(run_server(config, engines))


async def run_server(
    config: DaemonConfig, engines: Sequence[Engine], backend: EngineBackend | None = None
) -> int:
    from daemon.server import Server

    server = Server(config, engines, backend=backend)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            # The operator insists: skip the drain. Nothing else may call exit (house rule).
            os._exit(130)
        stop.set()

    handlers: Mapping[signal.Signals, Callable[[], None]] = {
        signal.SIGTERM: stop.set,
        signal.SIGINT: on_interrupt,
        signal.SIGHUP: server.reload,
    }
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    try:
        await server.serve(stop)
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)
    return 0


# --- keygen -----------------------------------------------------------------------------------


def _keygen_command(args: argparse.Namespace) -> int:
    print(keygen(args.role, args.name, args.dir))
    return 0


def keygen(role: str, name: str | None, directory: Path) -> str:
    """Write a key pair; returns what to tell the operator."""
    if role == "artist" and not name:
        raise ConfigError("keygen artist needs the artist's NAME", field="name")
    name = name or "server"
    public_path, secret_path = generate_keypair(directory, name)
    key = load_public_key(public_path)
    lines = [
        f"public key : {public_path}",
        f"secret key : {secret_path} (mode 0600, keep it private)",
        f"public z85 : {key.decode()}",
        f"fingerprint: {fingerprint(key)}",
    ]
    if role == "server":
        lines.append("Give the public z85 key to artists (add-on preferences: server key); set")
        lines.append(f"server_secret_key = {secret_path} in the daemon config.")
    else:
        lines.append(f"Copy {public_path.name} into the daemon's allowed_keys_dir and send it")
        lines.append("SIGHUP; the file name is the artist's identity.")
    return "\n".join(lines)


# --- bench ------------------------------------------------------------------------------------


def _bench_command(args: argparse.Namespace) -> int:
    from daemon.bench_protocol import PARTS, run_benchmarks

    parts = PARTS if args.only is None else (args.only,)
    run_benchmarks(quick=args.quick, out=sys.stdout, parts=parts)
    return 0
