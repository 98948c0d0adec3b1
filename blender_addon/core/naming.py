"""Names for takes and actions (from the prompt and the seed) and export files (from the take's
name) (no bpy)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence

_NOT_SAFE = re.compile(r"[^a-z0-9]+")
_NOT_FILE_SAFE = re.compile(r"[^a-z0-9._-]+")
_NUMBERED = re.compile(r"(?P<base>.+)\.\d{3,}")
SLUG_CHARS = 40
FILE_STEM_CHARS = 80


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


def file_stem(take: str) -> str:
    """A take's name as a file name stem: lower-case ASCII letters, digits, ``.``, ``-`` and
    ``_`` ('a_person_walks_s7' and 'walk.001' stay as they are, 'Hero Run/2' -> 'hero_run_2'),
    no leading or trailing dot, at most ``FILE_STEM_CHARS`` characters; 'take' if nothing is
    left. Lower case: file systems that ignore case would see 'Walk' and 'walk' as one file."""
    ascii_text = unicodedata.normalize("NFKD", take).encode("ascii", "ignore").decode()
    text = _NOT_FILE_SAFE.sub("_", ascii_text.lower()).strip("._")
    return text[:FILE_STEM_CHARS].rstrip("._") or "take"


def export_stems(takes: Sequence[str]) -> list[str]:
    """The export file stems of takes named ``takes`` (in the history's order): each take's
    :func:`file_stem`, numbered as Blender numbers names ('walk.001') where an earlier take
    already has that stem, so every take of a file writes its own files."""
    stems: list[str] = []
    for name in takes:
        stems.append(unique_name(file_stem(name), stems))
    return stems
