"""Names for takes, actions and files, from the prompt and the seed (no bpy)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

_NOT_SAFE = re.compile(r"[^a-z0-9]+")
_NUMBERED = re.compile(r"(?P<base>.+)\.\d{3,}")
SLUG_CHARS = 40


def slug(prompt: str, max_chars: int = SLUG_CHARS) -> str:
    """'A person walks, then waves!' -> 'a_person_walks_then_waves' (ASCII, file-safe)."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    text = _NOT_SAFE.sub("_", ascii_text.lower()).strip("_")
    text = text[:max_chars].rstrip("_")
    return text or "take"


def take_name(prompt: str, seed: int) -> str:
    return f"{slug(prompt)}_s{seed}"


def unique_name(name: str, taken: Collection[str]) -> str:
    """``name``, or where another take has it, Blender's next free numbered name for it:
    'walk' -> 'walk.001', 'walk.001' -> 'walk.002' (the number replaced, not added)."""
    if name not in taken:
        return name
    numbered = _NUMBERED.fullmatch(name)
    base = numbered.group("base") if numbered else name
    number = 1
    while f"{base}.{number:03d}" in taken:
        number += 1
    return f"{base}.{number:03d}"


def action_name(take: str) -> str:
    """The Action a take plays (its finished motion once finished)."""
    return f"HYM {take}"


def raw_action_name(take: str) -> str:
    """The raw take kept by finishing, named so it sorts next to the take's own Action."""
    return f"HYM {take} (raw)"


def export_filename(prompt: str, seed: int, extension: str) -> str:
    return f"{take_name(prompt, seed)}.{extension.lstrip('.')}"
