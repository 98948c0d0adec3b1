"""CURVE: allowed artists get in under their key's name; strangers get nothing, and are logged."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from daemon.cli import keygen
from daemon.config import ConfigError, check_config
from shared_protocol import Hello, Ping, Welcome, encode
from shared_protocol.keys import fingerprint, load_keypair, load_public_key
from tests.support import DaemonProcess, make_config, read_log, run_daemon
from tests.support.runner import REPO_ROOT
from tests.support.wire import Peer

SILENCE_S = 1.5


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    server_dir, artist_dir, allowed = tmp_path / "server", tmp_path / "artists", tmp_path / "allow"
    keygen("server", None, server_dir)
    keygen("server", "impostor", server_dir)
    for name in ("alice", "mallory"):
        keygen("artist", name, artist_dir)
    allowed.mkdir()
    shutil.copy(artist_dir / "alice.key", allowed / "alice.key")
    return {
        "server": server_dir / "server.key_secret",
        "impostor": server_dir / "impostor.key_secret",
        "alice": artist_dir / "alice.key_secret",
        "mallory": artist_dir / "mallory.key_secret",
        "allowed": allowed,
        "mallory_public": artist_dir / "mallory.key",
    }


def _curve(keys: dict[str, Path], artist: str, server: str = "server") -> dict[str, bytes]:
    mine = load_keypair(keys[artist])
    return {
        "curve_serverkey": load_public_key(keys[server]),
        "curve_publickey": mine.public,
        "curve_secretkey": mine.secret,
    }


def _try_ping(peer: Peer) -> None:
    # A refused DEALER has no pipe to queue on, so a send may be refused locally too.
    with contextlib.suppress(zmq.Again):
        peer.socket.send_multipart(encode(Ping().envelope()), zmq.NOBLOCK)


def _silent(peer: Peer) -> bool:
    _try_ping(peer)
    return not peer.socket.poll(int(SILENCE_S * 1000), zmq.POLLIN)


@pytest.mark.slow
def test_allowed_key_is_the_identity_and_strangers_are_refused(
    tmp_path: Path, keys: dict[str, Path], peers: Callable[..., Peer]
) -> None:
    config = make_config(
        tmp_path / "data", server_secret_key=keys["server"], allowed_keys_dir=keys["allowed"]
    )
    with run_daemon(config) as daemon:
        alice = peers(daemon.address, **_curve(keys, "alice"))
        hello_id = alice.send(Hello(artist="someone-else"))
        _, welcome = alice.recv_until(Welcome, re=hello_id)
        assert welcome.artist == "alice"  # the key decides, not the claim
        unlisted = peers(daemon.address, **_curve(keys, "mallory"))
        wrong_server = peers(daemon.address, **_curve(keys, "alice", server="impostor"))
        plaintext = peers(daemon.address)
        for stranger in (unlisted, wrong_server, plaintext):
            assert _silent(stranger)
        requests = daemon.server.metrics.value("hymotion_requests_total", type="ping")
        assert requests == 0  # nothing from them was delivered to the service
        events = daemon.log_events()
    refusals = [e for e in events if e["event"] == "auth_refused"]
    mallory = fingerprint(load_public_key(keys["mallory_public"]))
    assert any(e.get("fingerprint") == mallory for e in refusals)
    # The wrong server key and the plaintext client fail in the handshake, before ZAP.
    assert any("fingerprint" not in e for e in refusals)
    assert all(load_public_key(keys["mallory_public"]).decode() not in str(e) for e in events)


@pytest.mark.slow
def test_sighup_reloads_the_allow_list(
    tmp_path: Path, keys: dict[str, Path], peers: Callable[..., Peer]
) -> None:
    args = ["--server-secret-key", str(keys["server"]), "--allowed-keys-dir",
            str(keys["allowed"])]  # fmt: skip
    with DaemonProcess(tmp_path / "data", args) as daemon:
        mallory = peers(daemon.address, **_curve(keys, "mallory"))
        assert _silent(mallory)
        shutil.copy(keys["mallory_public"], keys["allowed"] / "mallory.key")
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while _reloads(daemon.log_path) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the signal is handled asynchronously; its log line says when
        assert _reloads(daemon.log_path) == 2
        # A refused connection is not retried by libzmq; a new one (as the add-on makes) is.
        again = peers(daemon.address, **_curve(keys, "mallory"))
        assert again.hello("whoever").artist == "mallory"  # type: ignore[attr-defined]


def _reloads(log_path: Path) -> int:
    return sum(e["event"] == "allow_list_loaded" for e in read_log(log_path))


def test_non_loopback_bind_without_curve_refuses_to_start(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    for bind in ("tcp://0.0.0.0:7878", "tcp://*:7878", "tcp://192.168.1.10:7878"):
        with pytest.raises(ConfigError) as caught:
            make_config(tmp_path, bind=bind)
        assert caught.value.details["field"] == "bind" and "CURVE" in caught.value.message
    secure = make_config(
        tmp_path,
        bind="tcp://0.0.0.0:7878",
        server_secret_key=keys["server"],
        allowed_keys_dir=keys["allowed"],
    )
    check_config(secure)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.daemon_main", "--bind", "tcp://0.0.0.0:7878",
         "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert b"refusing to bind tcp://0.0.0.0:7878 without CURVE" in proc.stderr
