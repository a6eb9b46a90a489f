"""RAG metrics: ``citation_support`` and ``retrieval_recall@k``.

- ``citation_support``: the share of an answer's cited passages (``contexts``) that support it. A
  passage supports the answer when at least half of the answer's (Porter-stemmed) unigrams occur in it:
  rouge-score's ROUGE-1 precision of the answer against the passage, >= ``SUPPORT_THRESHOLD``. An
  answer that cites nothing scores 0. (Overlap only; an LLM judge is not offered yet.)
- ``retrieval_recall@k``: the share of the item's ``gold`` passage ids found in the first k ``retrieved``.
"""

from __future__ import annotations

from collections.abc import Sequence

from switchyard.evaluation.metrics import Options, Scored, usable
from switchyard.evaluation.schemas import RECALL_AT_K, Item

SUPPORT_THRESHOLD = 0.5


def _finish(result: Scored) -> Scored:
    if result.per_item:
        result.aggregate = sum(result.per_item.values()) / len(result.per_item)
    return result


def citation_support(items: Sequence[Item]) -> Scored:
    from rouge_score import rouge_scorer

    def check(item: Item) -> str | None:
        if item.prediction is None:
            return "missing prediction"
        return None if item.contexts is not None else "missing contexts (the cited passages)"

    good, failed = usable(items, "citation_support", check)
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    result = Scored(failed=failed)
    for item in good:
        if not item.contexts:
            result.per_item[item.id] = 0.0
            continue
        # score(target, prediction): precision = share of the answer's unigrams found in the passage.
        supported = [scorer.score(passage, item.prediction)["rouge1"].precision >= SUPPORT_THRESHOLD
                     for passage in item.contexts]
        result.per_item[item.id] = sum(supported) / len(supported)
    return _finish(result)


def recall_at_k(name: str, items: Sequence[Item]) -> Scored:
    k = int(RECALL_AT_K.match(name).group(1))

    def check(item: Item) -> str | None:
        if not item.gold:
            return "missing gold (the ids of the passages holding the answer)"
        return None if item.retrieved is not None else "missing retrieved (passage ids, best first)"

    good, failed = usable(items, name, check)
    result = Scored(failed=failed)
    for item in good:
        top = set(item.retrieved[:k])
        result.per_item[item.id] = sum(1 for g in set(item.gold) if g in top) / len(set(item.gold))
    return _finish(result)


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    out: dict[str, Scored] = {}
    for name in names:
        out[name] = citation_support(items) if name == "citation_support" else recall_at_k(name, items)
    return out
