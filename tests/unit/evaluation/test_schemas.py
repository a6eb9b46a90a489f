"""The message contract: what fails a job in validation (before any work) and what only fails an item."""

from __future__ import annotations

import pytest

from switchyard import task_catalog
from switchyard.errors import InvalidParamsError
from switchyard.evaluation.datasets import parse_items


def validate(params: dict):
    return task_catalog.validate_params("switchyard.eval.run", params)


def test_valid_message_and_retrieval_recall_at_k():
    params = validate({"dataset": [{"id": 1, "prediction": "a", "references": ["a"]}],
                       "metrics": ["bleu", "retrieval_recall@5", "bleu"]})
    assert params.dataset[0].id == "1" and params.metrics == ["bleu", "retrieval_recall@5"]
    assert task_catalog.queue_for("switchyard.eval.run") == "eval"


@pytest.mark.parametrize("params, where", [
    ({"dataset": [{"id": "a"}], "metrics": ["blue"]}, "unknown metric"),
    ({"dataset": [{"id": "a"}], "metrics": []}, "metrics"),
    ({"dataset": [{"prediction": "x"}], "metrics": ["bleu"]}, "id"),
    ({"dataset": [{"id": "a", "references": "not a list"}], "metrics": ["bleu"]}, "references"),
    ({"dataset": [{"id": "a"}, {"id": "a"}], "metrics": ["bleu"]}, "unique"),
    ({"metrics": ["bleu"]}, "exactly one"),
    ({"dataset": [{"id": "a"}], "metrics": ["perplexity"]}, "lm"),
    ({"dataset": [{"id": "a"}], "metrics": ["clipscore"]}, "clip_model"),
    ({"dataset": [{"id": "a"}], "metrics": ["bleu"], "generate": {"adapter": "x", "model": "y"}}, "either"),
])
def test_invalid_messages_fail_validation(params, where):
    with pytest.raises(InvalidParamsError) as info:
        validate(params)
    assert where in str(info.value)


def test_dataset_file_schema():
    items = parse_items(b'{"id": "a", "prediction": "x"}\n\n{"id": 2, "references": ["y"]}\n')
    assert [i.id for i in items] == ["a", "2"]
    with pytest.raises(InvalidParamsError, match="dataset_file"):
        parse_items(b'{"id": "a"}\n{"prediction": "no id"}\n')
    with pytest.raises(InvalidParamsError, match="JSON"):
        parse_items(b"not json")
