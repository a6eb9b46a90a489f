"""vqa_accuracy: the official formula, mean over the 10 leave-one-out subsets of min(#matches / 3, 1)."""

from __future__ import annotations

from itertools import combinations

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.metrics.vqa import accuracy, normalize_prediction
from switchyard.evaluation.schemas import Item


def formula(matching: int, humans: int = 10) -> float:
    """The VQA paper's definition, written out: average over every 9-of-10 subset."""
    answers = [True] * matching + [False] * (humans - matching)
    subsets = list(combinations(range(humans), humans - 1))
    return sum(min(1.0, sum(answers[i] for i in s) / 3) for s in subsets) / len(subsets)


@pytest.mark.parametrize("matching", [0, 1, 2, 3, 4])
def test_accuracy_for_zero_to_four_matching_humans(matching):
    answers = ["yes"] * matching + ["no"] * (10 - matching)
    assert accuracy("yes", answers) == pytest.approx(formula(matching))
    expected = {0: 0.0, 1: 0.3, 2: 0.6, 3: 0.9, 4: 1.0}[matching]  # the well-known values
    assert accuracy("yes", answers) == pytest.approx(expected)


def test_normalisation_numbers_articles_punctuation_contractions():
    assert normalize_prediction("Two") == "2"
    assert normalize_prediction("The dog.") == "dog"
    assert normalize_prediction("a red, shiny car") == "red shiny car"
    assert normalize_prediction("dont") == "don't"
    assert normalize_prediction("1,000") == "1000"
    assert normalize_prediction("yes\n") == "yes"
    assert accuracy("Two", ["2"] * 10) == 1.0


def test_metric_scale_and_bad_items():
    items = [Item(id="q1", prediction="yes", answers=["yes"] * 3 + ["no"] * 7),
             Item(id="q2", prediction="no", answers=[]), Item(id="q3", answers=["x"])]
    out = score(["vqa_accuracy"], items, Options())["vqa_accuracy"]
    assert out.per_item == {"q1": pytest.approx(90.0)} and out.aggregate == pytest.approx(90.0)
    assert set(out.failed) == {"q2", "q3"}
