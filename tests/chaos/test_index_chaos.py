"""``kill -9`` an index worker in the middle of an ingest: after redelivery the collection equals a clean run."""

from __future__ import annotations

import uuid

import pytest

from switchyard import client, jobs
from switchyard.db import connection
from switchyard.retrieval import ingest_documents
from switchyard.retrieval.store import require_collection
from tests.integration.test_index import corpus_documents, rows

pytestmark = pytest.mark.chaos

# Small chunks and small steps: many transactions, so the kill lands between and inside them; a salt
# per run keeps the embedding cache from answering for chunks an earlier test embedded.
CHUNKING = {"chunk_tokens": 40, "chunk_overlap": 8}


def chunks_per_document(collection: str) -> dict[str, int]:
    coll = require_collection("default", collection)
    with connection() as conn:
        found = conn.execute(
            "SELECT d.id, d.chunk_count, (SELECT count(*) FROM chunks c WHERE c.generation_id = %s "
            "AND c.document_id = d.id) AS stored FROM documents d WHERE d.collection_id = %s",
            (coll.generation_id, coll.id)).fetchall()
    assert all(r["chunk_count"] == r["stored"] for r in found), found  # no half-written document
    return {r["id"]: r["stored"] for r in found}


def test_kill_9_mid_ingest_then_redelivery_equals_a_clean_run(stack, control_worker, start_worker):
    salt = uuid.uuid4().hex[:8]
    docs = [{**d, "text": f"Edition {salt}.\n\n{d['text']}"} for d in corpus_documents()]
    name = f"chaos-{salt}"
    victim = start_worker("index", concurrency=1, env={"SWITCHYARD_INGEST_BATCH_CHUNKS": "8"})
    job = client.enqueue("index.ingest", {"collection": name, "documents": docs, **CHUNKING})
    seen = 0
    for event in client.events(job.id, timeout=120):
        seen = event.seq
        if event.type == "progress" and 0 < event.data["done"] < event.data["total"]:
            break
    else:
        pytest.fail("the ingest ended before it could be killed")
    victim.kill()
    partial = chunks_per_document(name)  # whatever landed is whole documents only
    assert len(partial) < len(docs)

    survivor = start_worker("index", concurrency=1, env={"SWITCHYARD_INGEST_BATCH_CHUNKS": "8"})
    rest = list(client.events(job.id, after_seq=seen, timeout=180))
    assert rest[-1].type == "end" and rest[-1].data["status"] == "succeeded"
    statuses = [e.data.get("reason") for e in rest if e.type == "status" and e.data["status"] == "queued"]
    assert "lease expired" in statuses
    final = jobs.get(job.id)
    assert final.attempts == 2
    # The second attempt skipped what the first had committed (content hash).
    assert final.result["chunks_unchanged"] == sum(partial.values())

    ingest_documents(f"{name}-clean", docs, **CHUNKING)
    assert rows(name) == rows(f"{name}-clean")
    assert chunks_per_document(name) == chunks_per_document(f"{name}-clean")
    survivor.terminate()
