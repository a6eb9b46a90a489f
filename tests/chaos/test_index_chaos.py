"""``kill -9`` an index worker in the middle of an ingest: after redelivery the collection equals a clean run."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from switchyard import client, constants, jobs
from switchyard.db import connection
from switchyard.redis_conn import get_redis
from switchyard.retrieval import ingest_documents
from switchyard.retrieval.store import require_collection
from tests.integration.test_index import corpus_documents, rows
from tests.integration.test_index_parts import parts_of

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


def _running(job_id: str) -> jobs.Job | None:
    job = jobs.find(job_id)
    return job if job is not None and job.status is jobs.JobStatus.RUNNING else None


def test_kill_9_of_a_part_retries_that_part_alone(stack, control_worker, start_worker):
    """A split ingest (switchyard.retrieval.parts) loses the process running one of its parts: that part
    runs again once its lease expires, the parent and the other part run once, and the collection equals
    a clean run."""
    salt = uuid.uuid4().hex[:8]
    docs = [{**d, "id": f"{d['id']}-{copy}", "text": f"Edition {salt}, copy {copy}.\n\n{d['text']}"}
            for copy in range(3) for d in corpus_documents()]
    name = f"chaos-parts-{salt}"
    # Leases longer than the suite's 6 s: two children importing torch at once on a loaded machine must
    # not lose theirs before the kill; the killed part's lease then expires within 20 s.
    pool = start_worker("index", concurrency=2, env={"SWITCHYARD_INGEST_BATCH_CHUNKS": "8", "SWITCHYARD_LEASE_S": "20",
                                                     "SWITCHYARD_INGEST_PART_MIN_CHARS": "4000"})
    warm = [{**d, "text": f"Warm-up {salt}.\n\n{d['text']}"} for d in docs]  # both children load the model
    assert client.wait(client.enqueue("index.ingest", {"collection": f"{name}-warm", "documents": warm,
                                                        **CHUNKING}).id, timeout=300).status.value == "succeeded"
    job = client.enqueue("index.ingest", {"collection": name, "documents": docs, **CHUNKING})
    victim = None
    deadline = time.monotonic() + 180
    while victim is None and time.monotonic() < deadline:
        parent, parts = _running(job.id), parts_of(job.id)
        progress = {int(k): json.loads(v) for k, v in
                    get_redis().hgetall(constants.ingest_parts_key(job.id)).items()}
        for part in parts:
            mine = progress.get(part.params["part"], {})
            if (parent is not None and _running(part.id) and part.lease_owner
                    and part.lease_owner != parent.lease_owner and 0 < mine.get("done", 0) < mine.get("total", 0)):
                victim = _running(part.id)
        time.sleep(0.05)
    assert victim is not None, "no part ran in a process of its own mid-way"
    os.kill(int(victim.lease_owner.rsplit(":", 1)[1]), signal.SIGKILL)  # that pool child alone

    ended = client.wait(job.id, timeout=300)
    assert ended.status is jobs.JobStatus.SUCCEEDED, ended.error
    assert ended.attempts == 1  # the parent was never restarted
    attempts = {p.id: p.attempts for p in parts_of(job.id)}
    assert attempts.pop(victim.id) == 2 and set(attempts.values()) == {1}
    ingest_documents(f"{name}-clean", docs, **CHUNKING)
    assert rows(name) == rows(f"{name}-clean")
    assert chunks_per_document(name) == chunks_per_document(f"{name}-clean")
    assert ended.result["chunks_embedded"] + ended.result["chunks_unchanged"] == len(rows(name))
    pool.terminate()
