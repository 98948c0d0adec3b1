"""The batch's prompt file and its per-prompt overrides (no bpy).

Text file: one prompt per line; blank lines and lines starting with ``#`` are skipped; an
optional ``| key=value ...`` tail overrides options for that line, e.g.
``a person jumps twice | duration=3 seed=7 candidates=2``.
JSON file: a list of strings or of objects ``{"prompt": ..., "duration_s": ..., "seed": ...,
"candidates": ..., "guidance": ..., "steps": ..., "direct": {...}}`` ("direct": directing.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .directing import constraints_from_json
from .errors import BatchInputError
from .settings import GenerateSettings

#: Accepted override keys and the settings field each one sets.
_KEYS = {"duration": "duration_s", "duration_s": "duration_s", "seed": "seed",
         "candidates": "candidates", "guidance": "guidance", "steps": "steps"}  # fmt: skip
_TYPES: dict[str, type] = {"duration_s": float, "seed": int, "candidates": int,
                           "guidance": float, "steps": int}  # fmt: skip


@dataclass(frozen=True)
class BatchItem:
    index: int  # 1-based position in the file
    where: str  # "prompts.txt:12" for messages
    settings: GenerateSettings


def load_prompts(
    path: Path, defaults: GenerateSettings, direct: dict[str, Any] | None = None
) -> list[BatchItem]:
    """The prompts of ``path``; ``direct`` (the command line's direction flags as a "direct"
    object, absolute paths) directs every prompt, and then no prompt may carry its own."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchInputError(f"cannot read the prompt file {path}: {exc}") from exc
    if path.suffix.lower() == ".json":
        entries = _json_entries(text, path)
    else:
        entries = _text_entries(text, path)
    if not entries:
        raise BatchInputError(f"{path} holds no prompts")
    items = []
    for i, (where, prompt, overrides) in enumerate(entries, start=1):
        own = overrides.pop("direct", None)
        if own is not None and direct is not None:
            raise BatchInputError(
                f"{where} has its own 'direct' object and the command line has direction flags: "
                "give the direction in one place (the job file, or the flags for every prompt)",
                field="direct",
            )
        settings = _apply(defaults, prompt, overrides, where)
        if own is not None or direct is not None:
            constraints = constraints_from_json(own or direct, where, path.parent,
                                                settings.duration_s)  # fmt: skip
            settings = replace(settings, constraints=constraints)
        items.append(BatchItem(i, where, settings))
    return items


def _text_entries(text: str, path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        prompt, _, tail = stripped.partition("|")
        where = f"{path.name}:{number}"
        overrides: dict[str, Any] = {}
        for word in tail.split():
            key, sep, value = word.partition("=")
            if not sep:
                raise BatchInputError(f"{where}: {word!r} is not key=value", field=key)
            if key == "direct":  # an object: a text line has no way to write one
                raise BatchInputError(
                    f"{where}: direct= is not read from a text prompt file: give the direction "
                    'in a JSON job file (a .json list of {"prompt": ..., "direct": {...}} '
                    "objects) or as direction flags for every prompt (--start-from, --end-pose, "
                    "--path, --direct-loop, --segment, --timeline)",
                    field="direct",
                )
            overrides[key] = value
        entries.append((where, prompt.strip(), overrides))
    return entries


def _json_entries(text: str, path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchInputError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise BatchInputError(f"{path} must hold a JSON list of prompts")
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for number, entry in enumerate(data, start=1):
        where = f"{path.name}[{number}]"
        if isinstance(entry, str):
            entries.append((where, entry, {}))
        elif isinstance(entry, dict) and isinstance(entry.get("prompt"), str):
            overrides = {k: v for k, v in entry.items() if k != "prompt"}
            entries.append((where, entry["prompt"], overrides))
        else:
            raise BatchInputError(f"{where}: expected a string or an object with a 'prompt'")
    return entries


def _apply(
    defaults: GenerateSettings, prompt: str, overrides: dict[str, Any], where: str
) -> GenerateSettings:
    changes: dict[str, Any] = {"prompt": prompt}
    for key, value in overrides.items():
        field = _KEYS.get(key)
        if field is None:
            raise BatchInputError(
                f"{where}: unknown option {key!r}", field=key, allowed=", ".join(sorted(_KEYS))
            )
        whole = _TYPES[field] is int
        try:
            changes[field] = _number(value, whole)
        except (TypeError, ValueError) as exc:
            what = "a whole number" if whole else "a number"
            raise BatchInputError(f"{where}: {key}={value!r} is not {what}", field=key) from exc
    return replace(defaults, **changes)


def _number(value: Any, whole: bool) -> float | int:
    """A text or JSON value as a number; a JSON true/false or, for a count or seed, a fraction
    raises ValueError instead of being taken as 1/0 or cut to a whole number."""
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not whole:
        return number
    if not number.is_integer():
        raise ValueError(value)
    return int(number)
