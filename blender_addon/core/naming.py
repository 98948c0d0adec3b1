"""Names for takes, actions and files, from the prompt and the seed (no bpy)."""

from __future__ import annotations

import re
import unicodedata

_NOT_SAFE = re.compile(r"[^a-z0-9]+")
SLUG_CHARS = 40


def slug(prompt: str, max_chars: int = SLUG_CHARS) -> str:
    """'A person walks, then waves!' -> 'a_person_walks_then_waves' (ASCII, file-safe)."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    text = _NOT_SAFE.sub("_", ascii_text.lower()).strip("_")
    text = text[:max_chars].rstrip("_")
    return text or "take"


def take_name(prompt: str, seed: int) -> str:
    return f"{slug(prompt)}_s{seed}"


def action_name(take: str) -> str:
    """The Action a take plays (its finished motion once finished)."""
    return f"HYM {take}"


def raw_action_name(take: str) -> str:
    """The raw take kept by finishing, named so it sorts next to the take's own Action."""
    return f"HYM {take} (raw)"


def export_filename(prompt: str, seed: int, extension: str) -> str:
    return f"{take_name(prompt, seed)}.{extension.lstrip('.')}"
