"""The demo's held-out score (exact answer, answer anywhere in the reply, cited passage) and the shape of
the shipped set: every target is a span copied from the passage it cites, and the held-out questions are
about documents no training or validation example shows."""

import re

from switchyard.finetune.demo import DEMO_DATA, held_out, score


def test_exact_match_ignores_citations_case_and_a_final_period():
    assert score("600 requests per minute [2]", "600 requests per minute [2]") == {
        "exact_match": 1.0, "contains_answer": 1.0, "cites_source": 1.0}
    assert score("600 Requests per minute. [3]", "600 requests per minute [2]") == {
        "exact_match": 1.0, "contains_answer": 1.0, "cites_source": 0.0}


def test_a_sentence_around_the_answer_is_not_an_exact_match_but_contains_it():
    scored = score("A token may send 600 requests per minute [2].", "600 requests per minute [2]")
    assert scored == {"exact_match": 0.0, "contains_answer": 1.0, "cites_source": 1.0}
    assert score("600 requests per minute", "600 requests per minute [2]")["cites_source"] == 0
    assert score("600 per hour [2]", "600 requests per minute [2]")["contains_answer"] == 0


def _passages(row: dict) -> dict[int, str]:
    """The numbered passages of an example's system prompt: {n: "(source: ...)\\ntext"}."""
    blocks = re.split(r"(?m)^\[(\d+)\] ", row["messages"][0]["content"].split("Passages:\n", 1)[1])[1:]
    return {int(n): " ".join(text.split()) for n, text in zip(blocks[::2], blocks[1::2], strict=True)}


def test_every_target_is_a_span_of_the_passage_it_cites():
    for name in ("train", "valid", "test"):
        for row in held_out(DEMO_DATA / f"{name}.jsonl"):
            answer, n = re.fullmatch(r"(.+) \[(\d+)\]", row["messages"][-1]["content"]).groups()
            assert answer in _passages(row)[int(n)], (name, row["messages"][-1]["content"])


def test_the_held_out_questions_are_about_documents_training_never_shows():
    train = held_out(DEMO_DATA / "train.jsonl") + held_out(DEMO_DATA / "valid.jsonl")
    test = held_out()
    assert len(test) == 16 and len(train) == 64
    assert not {r["messages"][-2]["content"] for r in train} & {r["messages"][-2]["content"] for r in test}
    seen_sources = {p.split(")", 1)[0] for r in train for p in _passages(r).values()}
    assert seen_sources.isdisjoint({"(source: demo/corpus/api.md", "(source: demo/corpus/security.md"})
    cited_sources = {_passages(r)[int(r["messages"][-1]["content"].rsplit("[", 1)[1][:-1])].split(")", 1)[0]
                     for r in test}
    assert cited_sources == {"(source: demo/corpus/api.md", "(source: demo/corpus/security.md"}
    assert "How many API requests may a token send per minute?" in {r["messages"][-2]["content"] for r in test}
