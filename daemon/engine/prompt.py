"""The Qwen3 system prompt (spec §3.2): the exact official string, verified by its sha256.

The string is part of the model's conditioning, so it must match byte for byte; it is checked
against the sha256 in the spec (``tests/engine/test_engine_text.py``). ``system_prompt_file`` can
override it (also sha256-checked), e.g. after an upstream change.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import TextEncoderError

OFFICIAL_SYSTEM_PROMPT_SHA256 = "b9c55290b778c01739a337a36315c2065ef6ccfbfa0a1898b727377ed4965283"
OFFICIAL_SYSTEM_PROMPT_CHARS = 449
#: Data, not code: the conditioning text of the released checkpoints, from
#: https://github.com/Tencent-Hunyuan/HY-Motion-1.0/blob/9993ccd8aeba1f2d34c1061cc2282d14d5193055/hymotion/network/text_encoders/model_constants.py
OFFICIAL_SYSTEM_PROMPT = (
    "\n"
    "    "
    "Summarize human motion only from the user text for representation: action "
    "categories, key body-part movements, order/transitions, trajectory/direction, "
    "posture; include style/emotion/speed only if present. Explicitly capture laterality "
    "(left/right) when mentioned; do not guess. If multiple actions are described, "
    "indicate the count of distinct actions (e.g., actions=3) and their order. Do not "
    "invent missing info. Keep one concise paragraph."
    "\n"
)

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
    return check_system_prompt(
        OFFICIAL_SYSTEM_PROMPT, "OFFICIAL_SYSTEM_PROMPT", OFFICIAL_SYSTEM_PROMPT_SHA256
    )
