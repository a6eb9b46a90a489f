"""Text overlap: ``bleu`` and ``chrf`` (sacrebleu, 0–100, corpus level), ``rouge1/2/L`` (rouge-score
F-measure 0–1, Porter stemming, the best reference per item, averaged), ``exact_match`` (0/1).

sacrebleu computes a corpus score from the summed per-segment sufficient statistics. We extract those
statistics once and derive both the corpus score and each item's sentence score from them, exactly as
sacrebleu's own paired significance test does, so per-item scores cost no second tokenisation.
"""

from __future__ import annotations

from collections.abc import Sequence

from switchyard.evaluation.metrics import Options, Scored, needs_prediction_and_references, usable
from switchyard.evaluation.schemas import Item

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _reference_streams(items: Sequence[Item]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference position; items with fewer references get ``None``
    there, which sacrebleu skips (a variable number of references per segment)."""
    width = max(len(item.references or ()) for item in items)
    return [[(item.references[i] if i < len(item.references) else None) for item in items] for i in range(width)]


def sacrebleu_score(name: str, items: Sequence[Item]) -> Scored:
    from sacrebleu.metrics import BLEU, CHRF

    good, failed = usable(items, name, needs_prediction_and_references)
    result = Scored(failed=failed)
    if not good:
        return result
    corpus = BLEU() if name == "bleu" else CHRF()
    # Sentence BLEU uses effective order (as sacrebleu's sentence_bleu does); chrF needs nothing else.
    sentence = BLEU(effective_order=True) if name == "bleu" else corpus
    hyps = [item.prediction for item in good]
    stats = corpus._extract_corpus_statistics(hyps, _reference_streams(good))
    result.aggregate = corpus._compute_score_from_stats([sum(col) for col in zip(*stats, strict=True)]).score
    for item, row in zip(good, stats, strict=True):
        result.per_item[item.id] = sentence._compute_score_from_stats(row).score
        result.stats[item.id] = [float(v) for v in row]
    return result


def corpus_from_stats(name: str, rows: Sequence[Sequence[float]]) -> float:
    """The corpus score of summed sufficient statistics (the comparison's bootstrap uses this)."""
    from sacrebleu.metrics import BLEU, CHRF

    metric = BLEU() if name == "bleu" else CHRF()
    # The statistics are counts; they come back from JSON as floats.
    summed = [round(sum(col)) for col in zip(*rows, strict=True)]
    return metric._compute_score_from_stats(summed).score


def rouge(names: Sequence[str], items: Sequence[Item]) -> dict[str, Scored]:
    from rouge_score import rouge_scorer

    good, failed = usable(items, "rouge", needs_prediction_and_references)
    scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=True)
    out = {name: Scored(failed=dict(failed)) for name in names}
    for item in good:
        # score_multi keeps, per ROUGE type, the reference with the highest F-measure.
        scores = scorer.score_multi(item.references, item.prediction)
        for name in names:
            out[name].per_item[item.id] = scores[name].fmeasure
    for scored in out.values():
        if scored.per_item:
            scored.aggregate = sum(scored.per_item.values()) / len(scored.per_item)
    return out


def exact_match(items: Sequence[Item]) -> Scored:
    """1 if the prediction equals a reference (or a VQA answer) after trimming whitespace, else 0."""

    def check(item: Item) -> str | None:
        if item.prediction is None:
            return "missing prediction"
        return None if (item.references or item.answers) else "missing references or answers"

    good, failed = usable(items, "exact_match", check)
    result = Scored(failed=failed)
    for item in good:
        targets = {t.strip() for t in (item.references or item.answers or [])}
        result.per_item[item.id] = float(item.prediction.strip() in targets)
    if result.per_item:
        result.aggregate = sum(result.per_item.values()) / len(result.per_item)
    return result


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    out: dict[str, Scored] = {}
    for name in names:
        if name in ("bleu", "chrf"):
            out[name] = sacrebleu_score(name, items)
        elif name == "exact_match":
            out[name] = exact_match(items)
    rouge_names = [n for n in names if n in ROUGE_TYPES]
    if rouge_names:
        out.update(rouge(rouge_names, items))
    return out
