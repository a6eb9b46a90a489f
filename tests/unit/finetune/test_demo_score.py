"""The demo's held-out score: exact match of the answer (citations aside), the answer anywhere in the reply,
and the cited passage."""

from switchyard.demo.finetune import held_out, score


def test_exact_match_ignores_citations_case_and_a_final_period():
    assert score("600 requests per minute [2]", "600 requests per minute [2]") == {
        "exact_match": 1.0, "answer_in_reply": 1.0, "cites_source": 1.0}
    assert score("600 Requests per minute. [3]", "600 requests per minute [2]") == {
        "exact_match": 1.0, "answer_in_reply": 1.0, "cites_source": 0.0}


def test_a_sentence_around_the_answer_is_not_an_exact_match_but_holds_the_answer():
    wordy = score("A token may send 600 requests per minute [2].", "600 requests per minute [2]")
    assert wordy["exact_match"] == 0 and wordy["answer_in_reply"] == 1
    assert score("A token may send 600 requests.", "600 requests per minute [2]")["answer_in_reply"] == 0
    assert score("600 requests per minute", "600 requests per minute [2]")["cites_source"] == 0


def test_citing_every_passage_is_not_citing_the_source():
    assert score("600 [1] [2] [3] [4]", "600 requests per minute [2]")["cites_source"] == 0
    assert score("[2] [2]", "600 requests per minute [2]")["cites_source"] == 1  # the right one, repeated


def test_the_held_out_set_is_not_in_the_training_set():
    from switchyard.demo.finetune import DEMO_DATA

    train = {row["messages"][-2]["content"] for row in held_out(DEMO_DATA / "train.jsonl")}
    test = [row["messages"][-2]["content"] for row in held_out()]
    assert len(test) == 8 and not train & set(test)
    assert "How many API requests may a token send per minute?" in test  # the demo's question is held out
