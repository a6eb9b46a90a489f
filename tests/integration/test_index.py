"""The index pipeline on real Postgres + pgvector, with the bundled all-MiniLM-L6-v2 (in-process)."""

from __future__ import annotations

import base64
import threading
import uuid
from pathlib import Path

import pytest

from switchyard.db import connection
from switchyard.retrieval import CollectionNotFound, delete_documents, ingest_documents, search
from switchyard.retrieval.embedding import get_embedder
from switchyard.retrieval.store import require_collection

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"


def corpus_documents() -> list[dict]:
    return [{"id": p.stem, "text": p.read_text(), "metadata": {"kind": "handbook", "file": p.name}}
            for p in sorted(CORPUS.glob("*.md"))]


def rows(collection: str, tenant: str = "default") -> list[tuple]:
    coll = require_collection(tenant, collection)
    with connection() as conn:
        found = conn.execute(
            "SELECT document_id, chunk_hash, position, text FROM chunks WHERE generation_id = %s "
            "ORDER BY document_id, position", (coll.generation_id,)).fetchall()
    return [(r["document_id"], r["chunk_hash"], r["position"], r["text"]) for r in found]


@pytest.fixture
def name() -> str:
    return f"docs-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def handbook(stack) -> str:
    """The demo corpus, ingested once for the read-only tests."""
    collection = f"handbook-{uuid.uuid4().hex[:8]}"
    result = ingest_documents(collection, corpus_documents())
    assert result["failed"] == [] and result["documents"] == len(corpus_documents())
    return collection


def test_ingest_then_every_mode_finds_the_right_chunk(handbook):
    for mode in ("vector", "text", "hybrid"):
        hits = search(handbook, "How many requests per minute may an API token send?", k=3, mode=mode)
        assert hits[0].document_id == "api", (mode, hits)
        assert "600 requests per minute" in hits[0].text
        assert hits[0].metadata["heading_path"] == ["REST API", "Rate limits"]
        assert hits[0].metadata["source"] == "api" and hits[0].metadata["kind"] == "handbook"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    semantic = search(handbook, "what does the most expensive tier add?", k=3, mode="vector")
    assert "pricing" in [h.document_id for h in semantic]
    # The citation points into the document: start/end are character offsets of the chunk's text.
    hit = search(handbook, "TOTP authenticator hardware key", k=1, mode="hybrid")[0]
    document = (CORPUS / "security.md").read_text()
    assert document[hit.metadata["start"]:hit.metadata["end"]] == hit.text


def test_reingesting_an_unchanged_corpus_embeds_nothing(handbook):
    embedder = get_embedder()
    before_rows, before_count = rows(handbook), embedder.texts_embedded
    result = ingest_documents(handbook, corpus_documents())
    assert result["chunks_embedded"] == 0 and result["chunks_deleted"] == 0
    assert result["chunks_unchanged"] == len(before_rows)
    assert embedder.texts_embedded == before_count
    assert rows(handbook) == before_rows


def test_editing_one_paragraph_reembeds_only_its_chunks(stack, name):
    docs = corpus_documents()
    ingest_documents(name, docs)
    before = rows(name)
    edited = next(d for d in docs if d["id"] == "sync")
    edited["text"] = edited["text"].replace("last 30 days", "last 45 days")
    embedder = get_embedder()
    count = embedder.texts_embedded
    result = ingest_documents(name, docs)
    assert result["chunks_embedded"] == 1 and result["chunks_deleted"] == 1
    assert result["chunks_unchanged"] == len(before) - 1
    assert embedder.texts_embedded == count + 1
    after = rows(name)
    changed = set(after) ^ set(before)
    assert {r[0] for r in changed} == {"sync"} and len(changed) == 2
    assert "last 45 days" in search(name, "how long are notebooks kept offline?", k=1)[0].text


def test_identical_text_is_embedded_once_across_collections(stack, name):
    docs = corpus_documents()[:3]
    ingest_documents(f"{name}-a", docs)
    embedder = get_embedder()
    count = embedder.texts_embedded
    result = ingest_documents(f"{name}-b", [{**d, "id": d["id"] + "-copy"} for d in docs])
    assert result["chunks_embedded"] > 0  # the new collection holds its own rows...
    assert embedder.texts_embedded == count  # ...but every vector came from the cache


def test_delete_by_id_source_and_filter_removes_every_trace(stack, name):
    docs = corpus_documents()
    docs[0]["metadata"]["source"] = "wiki/getting-started"
    docs[1]["metadata"]["team"] = "billing"
    ingest_documents(name, docs)
    gone_ids = {docs[0]["id"], docs[1]["id"], docs[2]["id"]}
    assert delete_documents(name, ids=[docs[2]["id"]])["documents"] == 1
    assert delete_documents(name, sources=["wiki/getting-started"])["documents"] == 1
    deleted = delete_documents(name, filter={"team": "billing"})
    assert deleted["ids"] == [docs[1]["id"]] and deleted["chunks_deleted"] > 0
    coll = require_collection("default", name)
    with connection() as conn:
        left = conn.execute("SELECT count(*) AS n FROM documents WHERE collection_id = %s AND id = ANY(%s)",
                            (coll.id, list(gone_ids))).fetchone()["n"]
        chunks = conn.execute("SELECT count(*) AS n FROM chunks WHERE collection_id = %s AND document_id = ANY(%s)",
                              (coll.id, list(gone_ids))).fetchone()["n"]
    assert left == 0 and chunks == 0
    hits = search(name, "Nimbus Notes workspace", k=50, mode="hybrid")
    assert hits and not gone_ids & {h.document_id for h in hits}
    assert delete_documents(name, ids=["never-there"])["documents"] == 0


def test_search_is_tenant_scoped_and_filters_keep_k_rows(stack, name):
    # 300 short notes in tenant a, 2% of them tagged rare; the same collection name in tenant b.
    notes = [{"id": f"n{i}", "text": f"Release note {i}: the sync service got faster in build {i}.",
              "metadata": {"tag": "rare" if i % 50 == 0 else "common", "build": i}} for i in range(300)]
    ingest_documents(name, notes, tenant="tenant-a")
    ingest_documents(name, [{"id": "secret", "text": "Tenant b's private sync roadmap."}], tenant="tenant-b")
    for mode in ("vector", "text", "hybrid"):
        hits = search(name, "sync service faster", k=20, mode=mode, tenant="tenant-a")
        assert len(hits) == 20 and "secret" not in {h.document_id for h in hits}
        only_b = search(name, "private sync roadmap", k=5, mode=mode, tenant="tenant-b")
        assert [h.document_id for h in only_b] == ["secret"]
        rare = search(name, "sync service faster", k=6, mode=mode, tenant="tenant-a", filter={"tag": "rare"})
        assert sorted(h.document_id for h in rare) == sorted(f"n{i}" for i in range(0, 300, 50))
    ranged = search(name, "release note", k=50, mode="vector", tenant="tenant-a",
                    filter={"build": {"$gte": 250}, "tag": {"$in": ["common"]},
                            "$or": [{"build": {"$gte": 290}}, {"build": 260}]})
    assert sorted(int(h.document_id[1:]) for h in ranged) == [260, *range(290, 300)]
    with pytest.raises(CollectionNotFound):
        search(name, "sync", tenant="tenant-c")
    with pytest.raises(ValueError, match="unknown operator"):
        search(name, "sync", tenant="tenant-a", filter={"build": {"$near": 3}})


@pytest.fixture
def tmp_root(tmp_path, monkeypatch):
    """``tmp_path`` as the file root: paths are read only under file roots (docs/security-inputs.md)."""
    from switchyard.config import reload_settings

    monkeypatch.setenv("SWITCHYARD_FILE_ROOTS", str(tmp_path))
    reload_settings()
    yield tmp_path
    monkeypatch.undo()
    reload_settings()


def test_a_document_that_fails_to_parse_fails_alone(stack, name, tmp_root):
    tmp_path = tmp_root
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>Status</h1><p>All systems nominal.</p><script>x()</script></body></html>")
    result = ingest_documents(name, [{"id": "note", "text": "A plain note about kettles."},
                                     {"id": "nul", "text": "Postgres text cannot hold a \x00 byte."}], files=[
        {"id": "broken.pdf", "content_base64": base64.b64encode(b"%PDF-1.4 not really a pdf").decode(),
         "content_type": "application/pdf"},
        {"path": str(tmp_path / "missing.md")},
        {"path": str(page)},
        {"id": "inline.md", "content": "# Inline\n\nMarkdown sent in the message."},
    ])
    failed = {f["id"]: f["error"] for f in result["failed"]}
    assert set(failed) == {"broken.pdf", str(tmp_path / "missing.md"), "nul"}
    assert "rejected by the database" in failed["nul"]
    assert "cannot parse as pdf" in failed["broken.pdf"] and "cannot read" in failed[str(tmp_path / "missing.md")]
    assert result["documents"] == 3
    html_hit = search(name, "are all systems nominal?", k=1)[0]
    assert html_hit.document_id == str(page) and html_hit.metadata["heading_path"] == ["Status"]
    assert "x()" not in html_hit.text
    assert search(name, "markdown in the message", k=1)[0].document_id == "inline.md"


def test_concurrent_ingests_of_the_same_documents_leave_one_copy(stack, name):
    docs = corpus_documents()
    ingest_documents(f"{name}-clean", docs)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingest_documents(name, docs)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    clean = [(d, h, p, t) for d, h, p, t in rows(f"{name}-clean")]
    assert rows(name) == clean


def test_bad_model_and_reindex_requests_are_refused_clearly(stack, name):
    ingest_documents(name, [{"id": "a", "text": "alpha"}])
    with pytest.raises(ValueError, match="uses sentence-transformers/all-MiniLM-L6-v2"):
        ingest_documents(name, [{"id": "b", "text": "beta"}], model="openai:text-embedding-3-small")
    with pytest.raises(Exception, match="unknown embedding model"):
        ingest_documents(f"{name}-new", [{"id": "b", "text": "beta"}], model="/nonexistent/model")


def test_an_openai_compatible_embeddings_endpoint(stack, name, monkeypatch):
    """The ``openai:`` provider against a real OpenAI-compatible HTTP server (serving all-MiniLM-L6-v2)."""
    import socket

    import uvicorn
    from fastapi import FastAPI

    from switchyard.retrieval.config import get_retrieval_settings

    app, requests = FastAPI(), []

    @app.post("/v1/embeddings")
    def embeddings(body: dict) -> dict:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        requests.append(len(texts))
        vectors = get_embedder().embed(texts)
        return {"object": "list", "model": body["model"], "usage": {"prompt_tokens": 0, "total_tokens": 0},
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                         for i, v in enumerate(vectors)]}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        monkeypatch.setenv("SWITCHYARD_EMBEDDING_API_BASE", f"http://127.0.0.1:{port}/v1")
        monkeypatch.setenv("SWITCHYARD_EMBEDDING_BATCH_SIZE", "4")
        get_retrieval_settings.cache_clear()
        model = f"openai:minilm-{name}"
        docs = [d for d in corpus_documents() if d["id"] in ("api", "pricing", "security")]
        result = ingest_documents(name, docs, model=model)
        coll = require_collection("default", name)
        assert (coll.model, coll.dimension) == (model, 384)
        assert result["chunks_embedded"] == sum(requests) - 1  # one probe for the dimension, then...
        assert len(requests) > 3 and max(requests) == 4  # ...batches of SWITCHYARD_EMBEDDING_BATCH_SIZE
        assert search(name, "How many requests per minute may an API token send?", k=1)[0].document_id == "api"
    finally:
        server.should_exit = True
        thread.join(10)
        get_retrieval_settings.cache_clear()
