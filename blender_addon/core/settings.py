"""Panel and preference values -> protocol requests and client configuration (no bpy).

Everything is checked here, before anything is sent: the UI and the batch show the same typed
errors (empty prompt, out-of-range values, a remote daemon while online access is off, keys).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import (
    KeyPairError,
    NoAnswerOverCurve,
    OnlineAccessRefused,
    ServerKeyError,
    SettingsError,
)
from .protocol import addresses, client, errors, keys, messages
from .protocol import constraints as wire

_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d{1,5})$")
#: A daemon on this machine, on ``python -m daemon serve``'s default port.
DEFAULT_ADDRESS = "tcp://127.0.0.1:7878"
#: Seconds a headless generation may take before it is cancelled.
DEFAULT_JOB_TIMEOUT_S = 900.0
#: The largest seed any candidate may use (the protocol's; a Blender integer field's maximum).
MAX_SEED = messages.MAX_SEED


class AddressError(SettingsError):
    """The daemon address (preference *Daemon address*, batch ``--address``) is malformed."""

    hint = (
        "Fix the Daemon address in Edit > Preferences > Add-ons > HY-Motion (batch: --address), "
        "e.g. tcp://127.0.0.1:7878."
    )


@dataclass(frozen=True)
class GenerateSettings:
    """The panel's generation fields, as the artist set them."""

    prompt: str
    duration_s: float
    candidates: int
    guidance: float
    steps: int
    #: None: a random seed is drawn per request (and shown on the takes).
    seed: int | None = None
    model: str | None = None
    #: Directed generation (the batch's "direct" jobs); None generates undirected.
    constraints: wire.Constraints | None = None


def random_seed(candidates: int = 1) -> int:
    """A first seed that leaves every candidate's seed (seed + k) within 0..MAX_SEED."""
    return random.randint(0, MAX_SEED - max(candidates, 1) + 1)


def build_request(
    settings: GenerateSettings, limits: messages.Limits | None = None
) -> messages.Generate:
    """A validated Generate request; raises InvalidArgument naming the field."""
    seed = settings.seed if settings.seed is not None else random_seed(settings.candidates)
    request = messages.Generate(
        prompt=settings.prompt.strip(),
        duration_s=settings.duration_s,
        candidates=settings.candidates,
        seed=seed,
        guidance=settings.guidance,
        steps=settings.steps,
        model=settings.model or None,
        constraints=settings.constraints,
    )
    request.validate(limits or messages.DEFAULT_LIMITS)
    return request


@dataclass(frozen=True)
class ConnectionSettings:
    """The preferences' connection fields."""

    address: str
    #: Daemon's CURVE public key (40 Z85 characters); empty for a loopback daemon.
    server_key: str = ""
    #: The artist's ``NAME.key_secret`` file; empty for a loopback daemon.
    client_secret_file: str = ""
    connect_timeout_s: float = 1.0
    heartbeat_s: float = 2.0
    artist: str = ""


def check_address(address: str, online_access: bool) -> None:
    """Refuse malformed addresses, and remote ones when Blender's online access is off."""
    if not (_TCP.match(address) or address.startswith(("ipc://", "inproc://"))):
        raise AddressError(
            f"{address!r} is not a daemon address (tcp://HOST:PORT, ipc://PATH)", field="address"
        )
    if not addresses.is_loopback(address) and not online_access:
        raise OnlineAccessRefused(
            f"{address} is another machine and Blender's online access is off, so the add-on "
            "does not connect to it",
            field="address",
        )


def client_config(settings: ConnectionSettings, online_access: bool) -> client.ClientConfig:
    """A ClientConfig with keys loaded; says which key is wrong or missing and how to fix it."""
    address = settings.address.strip()
    check_address(address, online_access)
    server_key = None
    key_pair = None
    if settings.server_key.strip():
        server_key = _server_key(settings.server_key)
        key_pair = _key_pair(settings.client_secret_file.strip())
    elif not addresses.is_loopback(address):
        raise ServerKeyError(
            f"a daemon on another machine ({address}) needs CURVE keys: paste its public key "
            "(the operator's server.key) and generate or import your key pair",
            field="server_key",
        )
    config = client.ClientConfig(
        address=address,
        server_key=server_key,
        client_keys=key_pair,
        connect_timeout_s=settings.connect_timeout_s,
        heartbeat_s=settings.heartbeat_s,
        client_name="hy-motion-blender",
    )
    if settings.artist:
        config = replace(config, artist=settings.artist)
    if server_key is None and not keys.is_artist_name(config.artist):
        # Without CURVE the daemon takes the name the client claims and refuses the hello of
        # one it cannot use, never welcoming it: refused here, named, instead of "no daemon
        # answered" once the connect timeout has passed. (Under CURVE the key names the artist.)
        whose = (
            "the artist name" if settings.artist else "your login name, the default artist name,"
        )
        raise SettingsError(
            f"{whose} {config.artist!r} is not usable: 1-64 ASCII letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (set Artist name in the preferences; batch: "
            "--artist)",
            field="artist",
        )
    return config


def _server_key(text: str) -> bytes:
    try:
        return keys.parse_public_key(text)
    except keys.KeyFileError as exc:
        raise ServerKeyError(f"the server public key is not usable: {exc.message}",
                             field="server_key") from exc  # fmt: skip


def _key_pair(secret_file: str) -> keys.KeyPair:
    if not secret_file:
        raise KeyPairError("the daemon has a server key but you have no key pair",
                           field="client_secret_file")  # fmt: skip
    try:
        return keys.load_keypair(Path(secret_file).expanduser())
    except keys.KeyFileError as exc:
        raise KeyPairError(f"your key pair is not usable: {exc.message}",
                           field="client_secret_file") from exc  # fmt: skip


def no_answer(config: client.ClientConfig) -> errors.DaemonUnreachable:
    """The error for "nothing answered within the connect timeout". A CURVE daemon that refuses
    a key stays as silent as one that is down, so then both keys are named (by fingerprint)."""
    where = f"at {config.address} within {config.connect_timeout_s:g} s"
    if config.server_key is None or config.client_keys is None:
        return errors.DaemonUnreachable(f"no HY-Motion daemon answered {where}",
                                        address=config.address)  # fmt: skip
    server = keys.fingerprint(config.server_key)
    yours = keys.fingerprint(config.client_keys.public)
    return NoAnswerOverCurve(
        f"no HY-Motion daemon answered over CURVE {where} (server key {server}, your key {yours})",
        address=config.address,
    )
