"""Text metrics against their reference packages, with the packages' own documented examples."""

from __future__ import annotations

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.schemas import Item

# sacrebleu's README: three segments, two reference streams.
SYSTEM = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
REFS = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
        ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]


def _items() -> list[Item]:
    return [Item(id=f"s{i}", prediction=h, references=[REFS[0][i], REFS[1][i]]) for i, h in enumerate(SYSTEM)]


def test_bleu_and_chrf_match_sacrebleu_on_its_two_reference_example():
    import sacrebleu

    out = score(["bleu", "chrf"], _items(), Options())
    assert out["bleu"].aggregate == pytest.approx(sacrebleu.corpus_bleu(SYSTEM, REFS).score, abs=1e-9)
    assert round(out["bleu"].aggregate, 2) == 48.53  # the value the README prints
    assert out["chrf"].aggregate == pytest.approx(sacrebleu.corpus_chrf(SYSTEM, REFS).score, abs=1e-9)
    for i, hyp in enumerate(SYSTEM):
        refs = [REFS[0][i], REFS[1][i]]
        assert out["bleu"].per_item[f"s{i}"] == pytest.approx(sacrebleu.sentence_bleu(hyp, refs).score)
        assert out["chrf"].per_item[f"s{i}"] == pytest.approx(sacrebleu.sentence_chrf(hyp, refs).score)


def test_bleu_with_a_varying_number_of_references_and_a_bad_item():
    import sacrebleu

    items = [*_items(), Item(id="one-ref", prediction="It was a dog.", references=["It was the dog."]),
             Item(id="no-pred", references=["x"]), Item(id="no-refs", prediction="y", references=[])]
    out = score(["bleu"], items, Options())["bleu"]
    expected = sacrebleu.corpus_bleu([*SYSTEM, "It was a dog."],
                                     [[*REFS[0], "It was the dog."], [*REFS[1], None]]).score
    assert out.aggregate == pytest.approx(expected)
    assert set(out.failed) == {"no-pred", "no-refs"} and "missing prediction" in out.failed["no-pred"]


def test_rouge_matches_rouge_score_readme_example_and_takes_the_best_reference():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    target, prediction = "The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log."
    items = [Item(id="readme", prediction=prediction, references=[target]),
             Item(id="two", prediction=prediction, references=["Something else entirely", target])]
    out = score(["rouge1", "rouge2", "rougeL"], items, Options())
    reference = scorer.score(target, prediction)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert out[name].per_item["readme"] == pytest.approx(reference[name].fmeasure)
        assert out[name].per_item["two"] == pytest.approx(reference[name].fmeasure)  # best reference wins
        assert out[name].aggregate == pytest.approx(reference[name].fmeasure)
    assert out["rouge1"].per_item["readme"] == pytest.approx(0.7058823529411765)  # as the README prints


def test_exact_match():
    items = [Item(id="a", prediction=" Paris ", references=["Paris", "paris"]), Item(id="b", prediction="Lyon",
             references=["Paris"]), Item(id="c", prediction="x")]
    out = score(["exact_match"], items, Options())["exact_match"]
    assert out.per_item == {"a": 1.0, "b": 0.0} and out.aggregate == 0.5 and "c" in out.failed
