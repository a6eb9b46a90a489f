from __future__ import annotations

import pytest

from switchyard.retrieval.filters import FilterError, compile_filter


def test_filters_compile_to_one_json_path_predicate():
    assert compile_filter({"team": "docs"}) == '($."team" == "docs")'
    assert compile_filter({"year": {"$gte": 2024, "$lt": 2026}}) == '(($."year" >= 2024) && ($."year" < 2026))'
    assert compile_filter({"tag": {"$in": ["a", "b"]}}) == '(($."tag" == "a") || ($."tag" == "b"))'
    assert compile_filter({"x": {"$exists": False}}) == '!exists($."x")'
    assert compile_filter({"$or": [{"a": 1}, {"b": True}]}) == '(($."a" == 1) || ($."b" == true))'
    # Keys and strings are JSON-quoted, so nothing in them can change the predicate.
    assert compile_filter({'we"ird': 'x") || true'}) == '($."we\\"ird" == "x\\") || true")'


@pytest.mark.parametrize("bad", [{}, {"$nope": 1}, {"a": {"$near": 1}}, {"a": {"$in": []}},
                                 {"a": {"$gt": [1]}}, {"a": {"$exists": "yes"}}, {"a": [1, 2]},
                                 {"$and": []}])
def test_malformed_filters_are_refused(bad):
    with pytest.raises(FilterError):
        compile_filter(bad)
