from __future__ import annotations

import pytest

from switchyard import task_catalog
from switchyard.errors import InvalidParamsError


def test_the_message_contract_validates():
    params = task_catalog.validate_params("switchyard.index.ingest", {
        "collection": "docs", "tenant": "acme",
        "documents": [{"id": "handbook-1", "text": "...", "metadata": {"team": "hr"}}]})
    assert params.documents[0].metadata == {"team": "hr"}
    files = task_catalog.validate_params("switchyard.index.ingest", {
        "collection": "docs", "files": [{"path": "/srv/a.md"}, {"name": "b.txt", "content": "hi"}]})
    assert [f.document_id for f in files.files] == ["/srv/a.md", "b.txt"]
    assert task_catalog.validate_params("switchyard.index.delete", {"collection": "docs", "ids": ["a"]}).ids == ["a"]


@pytest.mark.parametrize(("task", "params", "loc"), [
    ("switchyard.index.ingest", {"collection": "docs"}, ()),
    ("switchyard.index.ingest", {"collection": "no spaces", "documents": [{"id": "a", "text": ""}]},
     ("collection",)),
    ("switchyard.index.ingest", {"collection": "d", "documents": [{"id": "a", "text": "x", "extra": 1}]},
     ("documents", 0, "extra")),
    ("switchyard.index.ingest", {"collection": "d", "files": [{"path": "a", "content": "b"}]}, ("files", 0)),
    ("switchyard.index.ingest", {"collection": "d", "files": [{"content_base64": "***"}]}, ("files", 0)),
    ("switchyard.index.ingest", {"collection": "d", "documents": [{"id": "a", "text": "x"}] * 2}, ()),
    ("switchyard.index.ingest", {"collection": "d", "reindex": True}, ()),
    ("switchyard.index.delete", {"collection": "d"}, ()),
])
def test_bad_messages_name_the_field(task, params, loc):
    with pytest.raises(InvalidParamsError) as info:
        task_catalog.validate_params(task, params)
    assert tuple(info.value.errors[0]["loc"]) == loc


def test_json_schema_is_published():
    schema = task_catalog.json_schema("switchyard.index.ingest")
    assert {"collection", "tenant", "documents", "files"} <= set(schema["properties"])
