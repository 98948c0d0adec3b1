"""The main job end to end: a daemon on this machine, then the headless Blender batch against it.

Starts ``python -m daemon serve`` on a free loopback port (the built-in, untrained ``tiny`` model
unless a config names real weights), waits for its welcome, runs the add-on's batch script under
the ``bpy`` module for the example prompts, then stops the daemon with SIGTERM (graceful drain).
Then writes a bundled motion-capture walk (examples/mocap) as a finished take (foot lock, loop,
in place) under ``out/demo/mocap``, since the tiny model's motion is noise, and retargets it
onto two characters (Rigify, UE5 naming) with FBX for Unreal and Unity under
``out/demo/characters`` (``tools/demo_characters.py``).
Exit code: the batches' (0 only if every prompt, candidate and clip produced its files).
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared_protocol.client import ClientConfig, MotionClient  # noqa: E402
from shared_protocol.errors import DaemonUnreachable  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo")
    parser.add_argument("--prompts", type=Path, default=REPO / "examples" / "prompts.txt")
    parser.add_argument("--config", type=Path, help="daemon config file (real weights, devices)")
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--startup-timeout-s", type=float, default=120.0)
    args = parser.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    address = f"tcp://127.0.0.1:{_free_port()}"
    daemon_cmd = [
        sys.executable, "-m", "daemon", "serve", "--bind", address,
        "--data-dir", str(out / "daemon"), "--log-stderr", "false",
    ]  # fmt: skip
    if args.config:
        daemon_cmd += ["--config", str(args.config)]
    print(f"demo: starting the daemon at {address} (logs in {out / 'daemon' / 'logs'})")
    daemon = subprocess.Popen(daemon_cmd, cwd=REPO)
    try:
        welcome = _wait_for_daemon(address, daemon, args.startup_timeout_s)
        for model in welcome.models:
            state = "ready" if model.available else f"unavailable: {model.error}"
            print(f"demo: model {model.name!r} ({model.label}) {state}")
        batch_cmd = [
            sys.executable, str(REPO / "blender_addon" / "batch.py"),
            "--address", address, "--prompts", str(args.prompts), "--out", str(out),
            "--candidates", str(args.candidates), "--formats", "blend,fbx,bvh",
            "--overwrite",  # the demo owns its output folder: running it again regenerates it
        ]  # fmt: skip
        print("demo: running the headless Blender batch:", " ".join(batch_cmd[1:]))
        code = subprocess.call(batch_cmd, cwd=REPO)
        # The tiny model's motion is noise: also a real capture (CMU) as a finished take.
        mocap_cmd = [
            sys.executable, str(REPO / "blender_addon" / "batch.py"),
            "--bvh", str(REPO / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"),
            "--out", str(out / "mocap"), "--formats", "blend,fbx,bvh", "--overwrite",
            "--foot-lock", "auto", "--loop", "--in-place",
        ]  # fmt: skip
        print("demo: a CMU walk as a finished take:", " ".join(mocap_cmd[1:]))
        code = code or subprocess.call(mocap_cmd, cwd=REPO)
        # ... and that finished walk on two characters, written for Unreal and Unity.
        characters_cmd = [sys.executable, str(REPO / "tools" / "demo_characters.py"),
                          "--out", str(out / "characters")]  # fmt: skip
        return code or subprocess.call(characters_cmd, cwd=REPO)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        print(f"demo: daemon stopped (exit code {daemon.returncode}); outputs in {out}")


def _wait_for_daemon(address: str, daemon: subprocess.Popen[bytes], timeout_s: float):
    deadline = time.monotonic() + timeout_s
    client = MotionClient(ClientConfig(address))
    try:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise SystemExit(f"demo: the daemon exited with code {daemon.returncode}")
            try:
                return client.wait_connected(timeout_s=1.0)
            except DaemonUnreachable:
                continue
        raise SystemExit(f"demo: the daemon did not answer within {timeout_s:g} s")
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
