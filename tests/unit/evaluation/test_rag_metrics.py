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


JUDGE = {"provider": "scripted", "responses": ["no"], "rules": [
    {"when": "Passage:\nEach API token may send up to 600", "reply": "Yes, it does."},
    {"when": "Passage:\nLunch is served", "reply": "**No**."},
    {"when": "Passage:\nGarbled", "reply": "I cannot tell."},
]}


def test_citation_support_judge_asks_the_configured_model_per_passage():
    from switchyard.evaluation.schemas import JudgeSpec

    items = [
        Item(id="a", prediction="Tokens may send 600 requests per minute.", question="What is the rate limit?",
             contexts=["Each API token may send up to 600 requests per minute.", "Lunch is served at noon."]),
        Item(id="b", prediction="Noon.", contexts=[]),
        Item(id="c", prediction="Noon.", contexts=["Lunch is served at noon.", "Garbled text."]),
        Item(id="d", prediction="x"),
    ]
    out = score(["citation_support_judge", "citation_support"], items, Options(judge=JudgeSpec(model=JUDGE)))
    judged = out["citation_support_judge"]
    assert judged.per_item == {"a": 0.5, "b": 0.0}
    assert "passage 2 is not yes or no: 'I cannot tell.'" in judged.failed["c"]
    assert "missing contexts" in judged.failed["d"]
    assert judged.aggregate == pytest.approx(0.25)
    assert out["citation_support"].per_item["a"] == 0.5  # the overlap variant, side by side


def test_judge_verdicts_are_parsed_robustly_and_judge_errors_fail_only_their_item():
    from switchyard.evaluation.metrics.rag import citation_support_judge, verdict

    assert [verdict(r) for r in ("Yes.", "no", "**YES**", "The answer is: no.", "<think>yes? no?</think> No",
                                 "Nope", "not sure", "")] == [True, False, True, False, False, None, None, None]

    def flaky(prompt: str, system: str | None) -> str:
        if "boom" in prompt:
            raise TimeoutError("judge timed out")
        return "yes"

    items = [Item(id="ok", prediction="p", contexts=["fine"]), Item(id="bad", prediction="p", contexts=["a", "boom"])]
    result = citation_support_judge(items, flaky)
    assert result.per_item == {"ok": 1.0}
    assert result.failed == {"bad": "citation_support_judge: judge failed on passage 2: TimeoutError: judge timed out"}
