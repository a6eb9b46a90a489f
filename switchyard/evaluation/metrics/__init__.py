"""Metric families, one module each; ``score(names, items, options)`` runs the ones a job asked for.

Every family module has ``score(names, items, options) -> dict[name, Scored]``. A family gets all the
items at once because some metrics are defined on the whole set (corpus BLEU and chrF, CIDEr-D's
document frequencies); it reports per-item scores beside the aggregate, and the items it could not
score (with the reason), without letting one bad item spoil the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from switchyard.evaluation.schemas import Item, metric_family


@dataclass
class Scored:
    """One metric's outcome: the aggregate, each scored item's value, and the items it failed."""

    aggregate: float | None = None
    per_item: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unavailable: str | None = None  # why the metric could not run at all (never a silent zero)
    # Per-item sufficient statistics for metrics whose aggregate is not a mean (corpus BLEU, chrF):
    # the comparison resamples these, so its interval is on the corpus score itself.
    stats: dict[str, list[float]] = field(default_factory=dict)
    # Set-level metrics (fid, inception_score) have no per-item score: how many items went in.
    count: int | None = None


@dataclass
class Options:
    """What some metrics need besides the items: models, resolved within the job's tenant."""

    tenant: str = "default"
    clip_model: str | None = None
    lm_base: str | None = None
    lm_adapter: str | None = None
    seed: int = 0
    reference_images: str | None = None  # fid: a directory of reference images under the file roots
    judge: Any = None  # citation_support_judge: the job's JudgeSpec (None: the configured default model)
    progress: Callable[[str, int, int], None] | None = None


def usable(items: Sequence[Item], name: str, check: Callable[[Item], str | None]) -> tuple[list[Item], dict[str, str]]:
    """Split items into those ``check`` accepts and ``{id: reason}`` for the others (``name`` prefixes reasons)."""
    good: list[Item] = []
    failed: dict[str, str] = {}
    for item in items:
        reason = check(item)
        if reason is None:
            good.append(item)
        else:
            failed[item.id] = f"{name}: {reason}"
    return good, failed


def needs_prediction_and_references(item: Item) -> str | None:
    if item.prediction is None:
        return "missing prediction"
    if not item.references:
        return "missing references (need at least one)"
    if any(not isinstance(r, str) for r in item.references):
        return "references must be strings"
    return None


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    """Score ``items`` with every metric in ``names`` (family by family, in the order first named)."""
    families: dict[str, list[str]] = {}
    for name in names:
        families.setdefault(metric_family(name) or "", []).append(name)
    out: dict[str, Scored] = {}
    for done, (family, members) in enumerate(families.items(), 1):
        module: Any = importlib.import_module(f"switchyard.evaluation.metrics.{family}")
        out.update(module.score(members, list(items), options))
        if options.progress is not None:
            options.progress(family, done, len(families))
    return {name: out[name] for name in names}
