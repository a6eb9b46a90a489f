"""Indexing throughput: ``switchyard.index.ingest`` against the model alone and against langchain-postgres.

    python bench/index.py            # 40 real package descriptions (about 1,000 chunks), a few minutes
    python bench/index.py --quick    # 15 documents, for CI

Everything runs here, in one run, on one corpus: its own embedded Postgres + pgvector and Redis, and a
real index worker (concurrency 1, warmed up first so model loading is not timed). Measured:

1. baseline: ``SentenceTransformer.encode`` of exactly the chunk texts switchyard embeds (batch 64);
2. switchyard first ingest, enqueue → ``end`` event, as chunks/s and as a ratio to (1) (goal ≥ 0.9);
3. langchain-postgres ``PGVector.add_texts`` of the same texts with the same model;
   (1)-(3) run interleaved in 8 rounds of the corpus, so drift in the machine's load hits all alike;
4. re-ingest of the unchanged corpus, and of the corpus with 1% of documents edited, each as a ratio to
   the peer re-adding it (goal ≥ 20×).

The corpus is the long descriptions of the installed Python packages (their ``METADATA`` files): real
prose with Markdown structure, read from this machine, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from email import message_from_string
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


ROUNDS = 8


def package_descriptions(limit: int) -> list[dict]:
    """Long descriptions of installed packages (≥ 3 kB), by name, deterministic."""
    import site

    docs = []
    for meta in sorted(Path(site.getsitepackages()[0]).glob("*.dist-info/METADATA")):
        message = message_from_string(meta.read_text(errors="replace"))
        body = message.get_payload() or message.get("Description") or ""
        if isinstance(body, str) and len(body) >= 3000:
            docs.append({"id": meta.parent.name.split("-")[0].lower(), "text": body[:20000],
                         "metadata": {"package": message.get("Name") or meta.parent.name}})
        if len(docs) >= limit:
            break
    return docs


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="15 documents")
    args = parser.parse_args()
    limit = 15 if args.quick else args.docs

    from switchyard.embedded import EmbeddedPostgres, EmbeddedRedis

    state = Path(tempfile.mkdtemp(prefix="switchyard-bench-index-"))
    postgres, redis = EmbeddedPostgres(state / "pg"), EmbeddedRedis(state / "redis")
    db_url, redis_url = postgres.start(), redis.start()
    env = {"SWITCHYARD_DATABASE_URL": db_url, "SWITCHYARD_REDIS_URL": redis_url,
           "SWITCHYARD_BROKER_URL": redis_url, "SWITCHYARD_STATE_DIR": str(state / "state"),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    worker = None
    try:
        from switchyard.config import reload_settings
        from switchyard.db import migrate

        reload_settings()
        migrate()
        worker = subprocess.Popen([sys.executable, "-m", "switchyard.cli", "worker", "index", "-c", "1",
                                   "-n", f"bench-{os.getpid()}@%h"], cwd=ROOT, env={**os.environ},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        run(limit)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        redis.stop()
        postgres.stop()


def run(limit: int) -> None:
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector

    from switchyard import client
    from switchyard.retrieval.embedding import get_embedder
    from switchyard.retrieval.ingest import chunk_settings, prepare
    from switchyard.retrieval.parsing import from_document
    from switchyard.retrieval.schemas import DocumentIn

    docs = package_descriptions(limit)
    embedder = get_embedder()
    chunking = chunk_settings(embedder, None, None)
    prepared = [prepare(from_document(DocumentIn(**d)), chunking, embedder) for d in docs]
    texts = [c.embed_text for d in prepared for c in d.chunks]
    metadatas = [c.metadata for d in prepared for c in d.chunks]
    ids = [f"{d.id}#{c.position}" for d in prepared for c in d.chunks]
    n = len(texts)
    print(f"corpus: {len(docs)} documents, {n} chunks (budget {chunking['budget']} tokens, "
          f"overlap {chunking['overlap']})", flush=True)

    model = embedder.model
    model.encode(texts[:64], batch_size=64)  # warm-up

    class SameModel(Embeddings):
        def embed_documents(self, batch: list[str]) -> list[list[float]]:
            return model.encode(batch, batch_size=64, normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    # 2. switchyard, end to end through a real index worker (warmed on unrelated text first).
    def ingest(collection: str, documents: list[dict]) -> dict:
        job = client.enqueue("index.ingest", {"collection": collection, "documents": documents})
        done = client.wait(job.id, timeout=3600)
        if done.status.value != "succeeded":
            raise RuntimeError(f"ingest ended {done.status.value}: {done.error}")
        return done.result

    ingest("warm-up", [{"id": "w", "text": f"warm-up {uuid.uuid4()}"}])
    url = os.environ["SWITCHYARD_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    peer = PGVector(embeddings=SameModel(), collection_name="bench", connection=url, use_jsonb=True)
    peer.add_texts(["warm-up"], [{}], ids=["warm-up"])

    # 1-3, interleaved in rounds (model alone, switchyard, peer on the same documents), so a change in
    # the machine's load during the run hits all three alike.
    t_model = t_first = t_peer_first = 0.0
    embedded = 0
    rounds = max(1, min(ROUNDS, len(docs)))
    for r in range(rounds):
        part = slice(r * len(docs) // rounds, (r + 1) * len(docs) // rounds)
        part_docs, part_prepared = docs[part], prepared[part]
        part_texts = [c.embed_text for d in part_prepared for c in d.chunks]
        part_meta = [c.metadata for d in part_prepared for c in d.chunks]
        part_ids = [f"{d.id}#{c.position}" for d in part_prepared for c in d.chunks]
        t_model += timed(model.encode, part_texts, batch_size=64, normalize_embeddings=True)[0]
        spent, result = timed(ingest, "bench", part_docs)
        t_first += spent
        embedded += result["chunks_embedded"]
        t_peer_first += timed(peer.add_texts, part_texts, part_meta, ids=part_ids)[0]
        print(f"  round {r + 1}/{rounds}: {len(part_texts)} chunks", flush=True)
    assert embedded == n, (embedded, n)

    # 4. Unchanged re-ingest, and 1% of documents edited, against the peer re-adding the corpus.
    t_same, same = timed(ingest, "bench", docs)
    assert same["chunks_embedded"] == 0, same
    t_peer_again, _ = timed(peer.add_texts, texts, metadatas, ids=ids)
    edited = [dict(d) for d in docs]
    for d in edited[:: max(1, len(docs) // max(1, len(docs) // 100))][: max(1, len(docs) // 100)]:
        d["text"] = d["text"].replace(".", ". Edited.", 1)
    t_edit, edit = timed(ingest, "bench", edited)

    rows = [
        ("model alone: SentenceTransformer.encode", t_model, n / t_model, "baseline"),
        ("switchyard first ingest (worker, end to end)", t_first, n / t_first,
         f"{t_model / t_first:.2f}x of model (goal >= 0.9)"),
        ("langchain-postgres add_texts, same model", t_peer_first, n / t_peer_first,
         f"switchyard is {t_peer_first / t_first:.2f}x the peer"),
        ("switchyard re-ingest, unchanged", t_same, n / t_same,
         f"{t_peer_again / t_same:.1f}x faster than peer re-add (goal >= 20)"),
        (f"switchyard re-ingest, {len(docs) // 100 or 1} doc(s) edited "
         f"({edit['chunks_embedded']} chunks re-embedded)", t_edit, n / t_edit,
         f"{t_peer_again / t_edit:.1f}x faster than peer re-add (goal >= 20)"),
        ("langchain-postgres add_texts again (re-add)", t_peer_again, n / t_peer_again, "peer"),
    ]
    print(f"\n{'run':58} {'seconds':>8} {'chunks/s':>9}  ratio")
    for label, seconds, rate, ratio in rows:
        print(f"{label:58} {seconds:8.2f} {rate:9.1f}  {ratio}")


if __name__ == "__main__":
    main()
