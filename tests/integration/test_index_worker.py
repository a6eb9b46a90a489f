"""``switchyard.index.ingest`` / ``switchyard.index.delete`` through real Celery index workers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from switchyard import client, jobs
from switchyard.retrieval import search
from tests.integration.test_index import CORPUS, corpus_documents, rows
from workers.app import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def index_worker(stack, start_worker):
    handle = start_worker("index", concurrency=2)
    yield handle
    handle.terminate()


def run(kind: str, params: dict, **kwargs) -> jobs.Job:
    job = client.enqueue(kind, params, **kwargs)
    return client.wait(job.id, timeout=120)


def test_ingest_job_reports_progress_and_the_contract_result(stack, index_worker):
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    job = client.enqueue("index.ingest", {"collection": name, "documents": corpus_documents()}, tenant="acme")
    received = list(client.events(job.id, timeout=120))
    assert received[-1].data["status"] == "succeeded"
    progress = [e.data for e in received if e.type == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == len(corpus_documents())
    assert progress[-1]["chunks_done"] == progress[-1]["chunks_total"] > 0
    result = jobs.get(job.id).result
    assert set(result) == {"documents", "chunks_embedded", "chunks_unchanged", "chunks_deleted", "failed"}
    assert result["documents"] == len(corpus_documents()) and result["failed"] == []
    assert result["chunks_embedded"] == len(rows(name, "acme")) == progress[-1]["chunks_total"]
    hits = search(name, "how do I export a notebook to PDF?", k=1, tenant="acme")
    assert hits[0].document_id == "import-export"

    again = run("index.ingest", {"collection": name, "documents": corpus_documents()}, tenant="acme")
    assert again.result["chunks_embedded"] == 0 and again.result["chunks_unchanged"] == result["chunks_embedded"]

    deleted = run("index.delete", {"collection": name, "ids": ["api", "sync"]}, tenant="acme")
    assert deleted.status.value == "succeeded" and deleted.result["documents"] == 2
    assert {h.document_id for h in search(name, "rate limit offline", k=50, tenant="acme")} & {"api", "sync"} == set()


def test_files_by_path_from_a_raw_celery_producer(stack, index_worker):
    """A producer with only celery and the broker URL sends files the worker reads by path."""
    name = f"files-{uuid.uuid4().hex[:8]}"
    job_id = f"raw-index-{uuid.uuid4()}"
    files = [{"path": str(p)} for p in sorted(CORPUS.glob("*.md"))[:4]]
    app.send_task("switchyard.index.ingest", kwargs={"collection": name, "files": files}, task_id=job_id,
                  queue="index")
    assert client.wait(job_id, timeout=120).status.value == "succeeded"
    result = jobs.get(job_id).result
    assert result["documents"] == 4 and result["failed"] == []
    hit = search(name, "anything", k=1, mode="vector")[0]
    assert Path(hit.metadata["source"]).parent == CORPUS and hit.metadata["content_type"] == "markdown"


def test_invalid_messages_fail_their_own_job_with_field_errors(stack, index_worker):
    bad = f"bad-index-{uuid.uuid4()}"
    app.send_task("switchyard.index.ingest", kwargs={"collection": "no spaces allowed",
                                                     "documents": [{"id": "a"}]}, task_id=bad, queue="index")
    assert client.wait(bad, timeout=60).status.value == "failed"
    job = jobs.get(bad)
    assert job.error["type"] == "invalid_params" and job.attempts == 0
    assert {tuple(e["loc"]) for e in job.error["errors"]} == {("collection",), ("documents", 0, "text")}
    nothing = f"bad-delete-{uuid.uuid4()}"
    app.send_task("switchyard.index.delete", kwargs={"collection": "docs"}, task_id=nothing, queue="index")
    assert client.wait(nothing, timeout=60).error["type"] == "invalid_params"
    missing = run("index.delete", {"collection": f"absent-{uuid.uuid4().hex[:6]}", "ids": ["x"]})
    assert missing.status.value == "failed" and "no collection" in missing.error["message"]


def test_the_same_documents_sent_twice_at_once_end_as_one_copy(stack, index_worker):
    name = f"twice-{uuid.uuid4().hex[:8]}"
    params = {"collection": name, "documents": corpus_documents()}
    first, second = client.enqueue("index.ingest", params), client.enqueue("index.ingest", params)
    done = [client.wait(j.id, timeout=120) for j in (first, second)]
    assert [j.status.value for j in done] == ["succeeded", "succeeded"]
    stored = rows(name)
    assert len(stored) == len(set(stored))
    assert sum(j.result["chunks_embedded"] for j in done) == len(stored)


def test_search_over_http_is_tenant_scoped(stack, api_server):
    import httpx

    name = f"http-{uuid.uuid4().hex[:8]}"
    from switchyard.retrieval import ingest_documents

    ingest_documents(name, corpus_documents(), tenant="default")
    ingest_documents(name, [{"id": "other", "text": "Another tenant's refund policy."}], tenant="globex")
    url = f"{api_server.url}/collections/{name}/search"
    answer = httpx.post(url, json={"query": "Can I get a refund on an annual plan?", "k": 2}, timeout=60)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 2 and results[0]["document_id"] == "pricing"
    assert set(results[0]) == {"document_id", "chunk_id", "text", "score", "metadata"}
    assert results[0]["metadata"]["heading_path"] == ["Plans and pricing", "Refunds"]
    # The open loopback API is tenant `default`: a body cannot choose another tenant.
    globex = httpx.post(url, json={"query": "refund", "k": 5, "mode": "text", "tenant": "globex"}, timeout=60)
    assert globex.status_code == 403
    filtered = httpx.post(url, json={"query": "refund", "k": 5, "mode": "vector",
                                     "filter": {"file": "security.md"}}, timeout=60).json()["results"]
    assert filtered and {r["document_id"] for r in filtered} == {"security"}
    missing = httpx.post(f"{api_server.url}/collections/nope-{uuid.uuid4().hex[:6]}/search",
                         json={"query": "x"}, timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    bad = httpx.post(url, json={"query": "x", "mode": "fuzzy", "filter": {"a": {"$near": 1}}}, timeout=60)
    assert bad.status_code == 422
    bad_filter = httpx.post(url, json={"query": "x", "filter": {"a": {"$near": 1}}}, timeout=60)
    assert bad_filter.status_code == 422 and bad_filter.json()["error"]["type"] == "invalid_filter"


def test_search_tenant_comes_from_the_api_key(stack, monkeypatch):
    from fastapi.testclient import TestClient

    from switchyard.api.app import create_app
    from switchyard.config import reload_settings
    from switchyard.retrieval import ingest_documents

    name = f"keys-{uuid.uuid4().hex[:8]}"
    ingest_documents(name, [{"id": "acme-doc", "text": "Acme's kettle warranty lasts two years."}], tenant="acme")
    ingest_documents(name, [{"id": "globex-doc", "text": "Globex's kettle warranty lasts one year."}],
                     tenant="globex")
    monkeypatch.setenv("SWITCHYARD_API_KEYS", "key-a:acme,key-g:globex")
    reload_settings()
    try:
        api = TestClient(create_app())
        url = f"/collections/{name}/search"
        as_acme = api.post(url, json={"query": "kettle warranty"}, headers={"Authorization": "Bearer key-a"})
        assert [r["document_id"] for r in as_acme.json()["results"]] == ["acme-doc"]
        as_globex = api.post(url, json={"query": "kettle warranty", "tenant": "globex"},
                             headers={"X-API-Key": "key-g"})
        assert [r["document_id"] for r in as_globex.json()["results"]] == ["globex-doc"]
        crossing = api.post(url, json={"query": "kettle", "tenant": "globex"}, headers={"X-API-Key": "key-a"})
        assert crossing.status_code == 403
        assert api.post(url, json={"query": "kettle"}).status_code == 401
    finally:
        monkeypatch.delenv("SWITCHYARD_API_KEYS")
        reload_settings()
