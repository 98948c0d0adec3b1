"""The Qwen3 system prompt (spec §3.2): the exact official string, verified by its sha256.

The official 449-character string lives in the upstream file
``hymotion/network/text_encoders/model_constants.py`` and is part of the conditioning; it is not
in our reference notes. Until it is pasted into ``OFFICIAL_SYSTEM_PROMPT`` below (one constant,
checked by ``tests/engine/test_prompt.py``), real models need ``system_prompt_file``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import TextEncoderError

OFFICIAL_SYSTEM_PROMPT_SHA256 = "b9c55290b778c01739a337a36315c2065ef6ccfbfa0a1898b727377ed4965283"
OFFICIAL_SYSTEM_PROMPT_CHARS = 449
#: Paste the official string here (it begins with "\n" + 4 spaces and ends with "\n").
OFFICIAL_SYSTEM_PROMPT: str | None = None

#: For the untrained tiny model only: clearly not the official prompt.
TINY_SYSTEM_PROMPT = (
    "[PLACEHOLDER system prompt of the untrained tiny test model; real models use the "
    "official HY-Motion prompt] Summarise the human motion in the user text."
)


def prompt_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_system_prompt(text: str, source: object, expected_sha256: str) -> str:
    """Return ``text`` if its UTF-8 sha256 is ``expected_sha256``, else raise TextEncoderError."""
    digest = prompt_sha256(text)
    if digest != expected_sha256:
        raise TextEncoderError(
            source,
            f"system prompt has sha256 {digest} ({len(text)} characters); expected the official "
            f"{OFFICIAL_SYSTEM_PROMPT_CHARS}-character string with sha256 {expected_sha256} "
            "(copy it byte for byte from hymotion/network/text_encoders/model_constants.py, "
            "keeping the leading newline and spaces and the final newline)",
        )
    return text


def resolve_system_prompt(prompt_file: Path | None, *, official: bool) -> str:
    """The system prompt a model uses: the verified official string, or the tiny placeholder."""
    if not official:
        return TINY_SYSTEM_PROMPT
    if prompt_file is not None:
        try:
            text = prompt_file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TextEncoderError(
                prompt_file, f"cannot read the system prompt file: {exc}"
            ) from exc
        return check_system_prompt(text, prompt_file, OFFICIAL_SYSTEM_PROMPT_SHA256)
    if OFFICIAL_SYSTEM_PROMPT is not None:
        return check_system_prompt(
            OFFICIAL_SYSTEM_PROMPT, "OFFICIAL_SYSTEM_PROMPT", OFFICIAL_SYSTEM_PROMPT_SHA256
        )
    raise TextEncoderError(
        "engine.system_prompt_file",
        "no official Qwen3 system prompt is configured: set engine.system_prompt_file to a file "
        f"holding the exact {OFFICIAL_SYSTEM_PROMPT_CHARS}-character string "
        f"(sha256 {OFFICIAL_SYSTEM_PROMPT_SHA256})",
    )
