"""Where a batch writes, decided before anything is generated (no bpy).

Every prompt's seeds are fixed up front (a random first seed is drawn here when none is given;
candidate k uses seed + k), so every output path is known before the first request: the batch
refuses to start when one of them exists, unless ``--overwrite``, instead of generating and
then failing to write. All paths are absolute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import naming
from .batch_input import BatchItem
from .settings import random_seed

SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class PlannedItem:
    """One prompt of the batch with its seeds fixed and the files it will write."""

    item: BatchItem
    folder: Path
    blend: Path | None  # the .blend holding every candidate as a take; None without "blend"
    exports: tuple[tuple[int, str, Path], ...]  # (seed, "fbx"/"bvh", path) per candidate

    @property
    def first_seed(self) -> int:
        first = self.item.settings.seed
        assert first is not None  # fixed by plan()
        return first

    @property
    def seeds(self) -> list[int]:
        """Every candidate's seed; none for a candidate count below 1 (refused when sent)."""
        return [self.first_seed + k for k in range(self.item.settings.candidates)]

    @property
    def paths(self) -> list[Path]:
        return ([self.blend] if self.blend else []) + [path for _, _, path in self.exports]

    def describe_seeds(self) -> str:
        return describe_seeds(self.seeds or [self.first_seed])


def describe_seeds(seeds: Sequence[int]) -> str:
    """'seed 7' or 'seeds 7-9', for log lines and the summary."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


def plan(items: Sequence[BatchItem], out: Path, formats: Sequence[str]) -> list[PlannedItem]:
    """Fix each item's seed and name its files under ``out`` (made absolute)."""
    out = out.expanduser().resolve()
    planned = []
    for item in items:
        settings = item.settings
        if settings.seed is None:
            settings = replace(settings, seed=random_seed(settings.candidates))
        item = replace(item, settings=settings)
        prompt = settings.prompt.strip()
        name = f"{item.index:03d}_{naming.slug(prompt)}"
        folder = out / name
        blend = folder / f"{name}.blend" if "blend" in formats else None
        planned_item = PlannedItem(item, folder, blend, ())
        exports = tuple(
            (seed, fmt, folder / naming.export_filename(prompt, seed, fmt))
            for seed in planned_item.seeds
            for fmt in formats
            if fmt != "blend"
        )
        planned.append(replace(planned_item, exports=exports))
    return planned


def summary_path(out: Path) -> Path:
    return out.expanduser().resolve() / SUMMARY_NAME


def existing_outputs(planned: Sequence[PlannedItem], out: Path) -> list[Path]:
    """The files this batch would replace: its outputs and an earlier summary."""
    candidates = [path for p in planned for path in p.paths] + [summary_path(out)]
    return [path for path in candidates if path.exists()]
