"""A big ``switchyard.index.ingest`` runs as sub-jobs (``switchyard.index.ingest_part``) the pool runs at once."""

from __future__ import annotations

import uuid

import pytest

from switchyard import client, jobs
from switchyard.db import connection
from switchyard.retrieval import ingest_documents
from switchyard.retrieval.parts import PART_PRODUCER, PART_TASK
from tests.integration.test_index import corpus_documents, rows

pytestmark = pytest.mark.integration

# The demo corpus is about 8,000 characters: parts of at least 1,500 split it as far as the pool goes.
SPLIT = {"SWITCHYARD_INGEST_PART_MIN_CHARS": "1500"}


def parts_of(job_id: str) -> list[jobs.Job]:
    with connection() as conn:
        found = conn.execute("SELECT id FROM jobs WHERE producer = %s AND idempotency_key LIKE %s ORDER BY id",
                             (PART_PRODUCER, f"{job_id}:part:%")).fetchall()
    return sorted((jobs.get(r["id"]) for r in found), key=lambda j: j.params["part"])


@pytest.fixture(scope="module")
def pool_of_two(stack, start_worker):
    handle = start_worker("index", concurrency=2, env=SPLIT)
    yield handle
    handle.terminate()


def test_a_big_ingest_splits_into_parts_whose_sums_are_the_parent(stack, pool_of_two):
    name = f"parts-{uuid.uuid4().hex[:8]}"
    docs = [{**d, "text": f"Edition {name}.\n\n{d['text']}"} for d in corpus_documents()]
    job = client.enqueue("index.ingest", {"collection": name, "documents": docs}, tenant="acme")
    received = list(client.events(job.id, timeout=180))
    assert received[-1].type == "end" and received[-1].data["status"] == "succeeded"
    result = jobs.get(job.id).result

    parts = parts_of(job.id)
    assert len(parts) == 2  # the pool's concurrency
    assert {p.kind for p in parts} == {PART_TASK} and {p.tenant for p in parts} == {"acme"}
    assert [p.params["part"] for p in parts] == [0, 1] and {p.params["parent"] for p in parts} == {job.id}
    assert all(p.status is jobs.JobStatus.SUCCEEDED and p.attempts == 1 for p in parts)
    # Every document went to exactly one part, and the parent's result is the sum of theirs.
    assert sorted(d["id"] for p in parts for d in p.params["documents"]) == sorted(d["id"] for d in docs)
    for key in ("documents", "chunks_embedded", "chunks_unchanged", "chunks_deleted"):
        assert result[key] == sum(p.result[key] for p in parts), key
    assert result["documents"] == len(docs) and result["failed"] == []
    assert result["chunks_embedded"] == len(rows(name, "acme"))

    split = [e.data for e in received if e.type == "message" and "parts" in e.data]
    assert split and split[0]["parts"] == [p.id for p in parts]
    progress = [e.data for e in received if e.type == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == len(docs)
    assert progress[-1]["chunks_done"] == progress[-1]["chunks_total"] == result["chunks_embedded"]
    assert any(p.get("parts_reporting") for p in progress)  # the parts' own progress, summed on the parent

    # The same as one piece in-process, and a re-ingest applies nothing twice.
    ingest_documents(f"{name}-whole", docs, tenant="acme")
    assert rows(name, "acme") == rows(f"{name}-whole", "acme")
    again = client.wait(client.enqueue("index.ingest", {"collection": name, "documents": docs}, tenant="acme").id,
                        timeout=180)
    assert again.result["chunks_embedded"] == 0 and again.result["chunks_unchanged"] == result["chunks_embedded"]


def test_a_part_refuses_a_parent_of_another_tenant(stack, pool_of_two):
    """A part names its parent; it only ever reports into an index.ingest of its own tenant."""
    name = f"parts-{uuid.uuid4().hex[:8]}"
    victim = client.wait(client.enqueue("index.ingest", {"collection": name, "documents": corpus_documents()[:1]},
                                        tenant="acme").id, timeout=120)
    forged = client.enqueue(PART_TASK, {"collection": name, "parent": victim.id, "part": 0, "parts": 2,
                                        "documents": [{"id": "x", "text": "planted"}]}, tenant="globex")
    ended = client.wait(forged.id, timeout=120)
    assert ended.status is jobs.JobStatus.FAILED and "no index.ingest job" in ended.error["message"]
    planted = [e for e in client.events(victim.id, timeout=5) if e.type == "progress" and "parts_reporting" in e.data]
    assert planted == []
