"""CURVE key files: create, read, fingerprint, and the daemon's allow-list of artists.

Keys use ZeroMQ's certificate files (``NAME.key`` public, ``NAME.key_secret`` secret, as
written by ``zmq.auth``), so they interoperate with other ZeroMQ tools. The allow-list is a
directory of artists' public ``.key`` files, the file name being the artist's name: the SSH
``authorized_keys`` model.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from .errors import HYMotionError

ARTIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_artist_name(name: str) -> bool:
    """Whether ``name`` is ARTIST_NAME over the whole string (``match`` lets a final newline in)."""
    return ARTIST_NAME.fullmatch(name) is not None


class KeyFileError(HYMotionError):
    """A key file is missing, unreadable or not a CURVE key."""

    code = "bad_key"
    hint = "Create keys with `python -m daemon keygen` or in the add-on preferences."


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # z85, 40 bytes
    secret: bytes  # z85, 40 bytes


def curve_available() -> bool:
    return bool(zmq.has("curve"))


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret (mode 0600) in ``directory``; refuse to overwrite."""
    if not is_artist_name(name):
        raise KeyFileError(
            f"{name!r} is not a valid key name", field="name", allowed=ARTIST_NAME.pattern
        )
    directory.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public_path, secret_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; delete it first to replace the key")
    public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)


def load_public_key(path: Path) -> bytes:
    """The z85 public key from a ``.key`` or ``.key_secret`` file."""
    public, _ = _load(path)
    return public


def load_keypair(path: Path) -> KeyPair:
    """Both keys from a ``.key_secret`` file."""
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key; use the .key_secret file")
    return KeyPair(public, secret)


def parse_public_key(text: str) -> bytes:
    """A z85 public key typed or pasted by a person (40 characters)."""
    key = text.strip().encode()
    if len(key) != 40:
        raise KeyFileError("a CURVE public key is 40 characters of Z85 text", field="server_key")
    try:
        zmq.utils.z85.decode(key)
    except (ValueError, KeyError) as exc:
        raise KeyFileError(f"not a Z85 key: {exc}", field="server_key") from exc
    return key


def fingerprint(public_key: bytes) -> str:
    """Short stable name of a public key for logs (never the key itself)."""
    raw = zmq.utils.z85.decode(public_key) if len(public_key) == 40 else public_key
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:16]


def load_allow_list(directory: Path) -> dict[bytes, str]:
    """Map public key -> artist name from ``directory/*.key``; bad files are reported by name."""
    if not directory.is_dir():
        raise KeyFileError(f"allow-list directory {directory} does not exist")
    allowed: dict[bytes, str] = {}
    for path in sorted(directory.glob("*.key")):
        artist = path.stem
        if not is_artist_name(artist):
            raise KeyFileError(f"{path.name}: {artist!r} is not a valid artist name")
        key = load_public_key(path)
        if key in allowed:
            raise KeyFileError(f"{path.name} repeats the key of {allowed[key]!r}")
        allowed[key] = artist
    return allowed


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise KeyFileError(f"key file {path} does not exist")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path} is not a ZeroMQ certificate file: {exc}") from exc
    if public is None or len(public) != 40:
        raise KeyFileError(f"{path} has no valid public key")
    return public, secret
