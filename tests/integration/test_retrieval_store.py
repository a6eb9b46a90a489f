"""retrieval/store.py against the real database: a collection per tenant, a document written, its
hashes read back (one document and many), an unchanged rewrite kept, and deletion."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from switchyard.retrieval import store
from switchyard.retrieval.store import PreparedChunk, PreparedDocument

DIM = 4


def prepared(doc_id: str, texts: list[str]) -> PreparedDocument:
    chunks = [PreparedChunk(chunk_hash=f"{doc_id}-{t}", text_hash=t.encode(), text=t, embed_text=t, position=i,
                            metadata={}) for i, t in enumerate(texts)]
    return PreparedDocument(id=doc_id, source="test", text=" ".join(texts), metadata={"n": len(texts)},
                            content_hash=store.content_hash(" ".join(texts), {}, 1), chunks=chunks)


def vectors(chunks: list[PreparedChunk]) -> dict[bytes, np.ndarray]:
    return {c.text_hash: np.full(DIM, 0.5, dtype=np.float32) for c in chunks}


def test_write_read_hashes_and_delete(stack):
    name = f"store-{uuid.uuid4().hex[:8]}"
    coll = store.create_collection("t-store", name, "test-model", DIM, {})
    with pytest.raises(store.CollectionNotFoundError):
        store.require_collection("another-tenant", name)

    outcome = store.write_document(coll, prepared("d1", ["alpha", "beta"]), vectors)
    assert (outcome.inserted, outcome.kept, outcome.unchanged) == (2, 0, False)
    store.write_document(coll, prepared("d2", ["gamma"]), vectors)
    again = store.write_document(coll, prepared("d1", ["alpha", "beta"]), vectors)
    assert again.unchanged and again.kept == 2

    assert store.document_hashes(coll, ["d1", "d2", "nope"]) == {
        "d1": prepared("d1", ["alpha", "beta"]).content_hash, "d2": prepared("d2", ["gamma"]).content_hash}
    assert store.chunk_hashes(coll.generation_id, ["d1", "d2"]) == {"d1": {"d1-alpha", "d1-beta"}, "d2": {"d2-gamma"}}

    edited = store.write_document(coll, prepared("d1", ["alpha", "delta"]), vectors)
    assert (edited.inserted, edited.kept, edited.deleted) == (1, 1, 1)
    assert store.stats(coll)["documents"] == 2

    gone = store.delete_documents(coll, ids=["d1"])
    assert gone["ids"] == ["d1"] and gone["chunks_deleted"] == 2
    assert store.chunk_hashes(coll.generation_id, ["d1", "d2"]) == {"d2": {"d2-gamma"}}
