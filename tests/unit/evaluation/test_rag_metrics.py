"""citation_support (rouge-score unigram overlap) and retrieval_recall@k."""

from __future__ import annotations

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.schemas import Item


def test_citation_support_and_recall_at_k():
    items = [
        Item(id="a", prediction="Tokens may send 600 requests per minute.",
             contexts=["Each API token may send up to 600 requests per minute.", "Lunch is served at noon."],
             retrieved=["p7", "p2", "p9"], gold=["p2"]),
        Item(id="b", prediction="Noon.", contexts=[], retrieved=["p1"], gold=["p3", "p1"]),
        Item(id="c", prediction="x"),
    ]
    out = score(["citation_support", "retrieval_recall@1", "retrieval_recall@2"], items, Options())
    assert out["citation_support"].per_item == {"a": 0.5, "b": 0.0}
    assert "missing contexts" in out["citation_support"].failed["c"]
    assert out["retrieval_recall@1"].per_item == {"a": 0.0, "b": 0.5}
    assert out["retrieval_recall@2"].per_item == {"a": 1.0, "b": 0.5}
    assert out["retrieval_recall@2"].aggregate == pytest.approx(0.75)
    assert "missing gold" in out["retrieval_recall@1"].failed["c"]
