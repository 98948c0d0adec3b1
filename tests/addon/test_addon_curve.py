"""A CURVE daemon (allowed keys only) driven through the add-on's preferences: the artist's key
pair made with the add-on's own operator, the server key pasted in, wrong and missing keys
named in the error with what to do. The daemon accepts CURVE on loopback too."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import pytest

from blender_addon import prefs
from shared_protocol.keys import fingerprint, generate_keypair, load_public_key
from tests.addon.conftest import StartDaemon
from tests.addon.test_addon_daemon import check_takes_match_result, set_panel


@pytest.fixture
def preferences(scene: Any) -> Iterator[Any]:
    """The add-on's preferences, as Blender provides them once the add-on is enabled."""
    entry = bpy.context.preferences.addons.new()
    entry.module = prefs.ADDON_ID
    yield prefs.get(bpy.context)
    bpy.context.preferences.addons.remove(entry)


def generate_error(scene: Any) -> str:
    """The report of a generation that must fail: what the artist reads."""
    with pytest.raises(RuntimeError) as info:
        bpy.ops.hy_motion.generate()
    assert scene.hy_motion.status_state == "failed"
    assert scene.hy_motion.status_message in str(info.value)
    return str(info.value)


@pytest.mark.slow
def test_keys_from_the_preferences(
    scene: Any,
    preferences: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_daemon: StartDaemon,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where the add-on keeps key pairs
    operator, allowed = tmp_path / "operator", tmp_path / "allowed"
    generate_keypair(operator, "server")
    generate_keypair(operator, "impostor")
    allowed.mkdir()
    # The artist makes a key pair in the preferences and gives the public half to the operator.
    assert bpy.ops.hy_motion.generate_keys(name="alice") == {"FINISHED"}
    alice = Path(preferences.client_secret_file)
    assert alice.name == "alice.key_secret" and alice.parent == prefs.keys_dir()
    # A name whose key files exist is refused (docs/addon.md): the key pair is never replaced.
    with pytest.raises(RuntimeError, match="already exists; delete it first"):
        bpy.ops.hy_motion.generate_keys(name="alice")
    shutil.copy(alice.with_name("alice.key"), allowed / "alice.key")
    server_key = load_public_key(operator / "server.key")
    daemon = start_daemon("--server-secret-key", str(operator / "server.key_secret"),
                          "--allowed-keys-dir", str(allowed))  # fmt: skip
    preferences.address = daemon.address
    set_panel(scene)
    # No server key: a plaintext client, which a CURVE daemon never answers.
    assert "no HY-Motion daemon answered at" in generate_error(scene)
    # Allowed: end to end, the key's name is the artist's identity on the daemon.
    preferences.server_key = server_key.decode()
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}
    result = check_takes_match_result(scene)
    queued = [e for e in daemon.log_events() if e["event"] == "job_queued"]
    assert [(e["job_id"], e["artist"]) for e in queued] == [(result.job_id, "alice")]
    # Wrong server key, or a key pair the daemon does not allow: both keys are named.
    alice_print = fingerprint(load_public_key(alice))
    preferences.server_key = load_public_key(operator / "impostor.key").decode()
    message = generate_error(scene)
    assert "over CURVE" in message and alice_print in message and "allow-list" in message
    assert fingerprint(load_public_key(operator / "impostor.key")) in message
    preferences.server_key = server_key.decode()
    assert bpy.ops.hy_motion.generate_keys(name="mallory") == {"FINISHED"}
    mallory_print = fingerprint(load_public_key(Path(preferences.client_secret_file)))
    message = generate_error(scene)
    assert mallory_print in message and fingerprint(server_key) in message
    refused = [e for e in daemon.log_events() if e["event"] == "auth_refused"]
    assert any(e.get("fingerprint") == mallory_print for e in refused)
    # Missing or broken keys are caught before connecting, naming the preference to fix.
    preferences.client_secret_file = ""
    message = generate_error(scene)
    assert "you have no key pair" in message and "Generate Key Pair" in message
    preferences.client_secret_file = str(tmp_path / "gone.key_secret")
    assert "your key pair is not usable" in generate_error(scene)
    preferences.server_key = "pasted-the-wrong-thing"
    message = generate_error(scene)
    assert "server public key is not usable" in message and "server.key" in message
