"""Indexing throughput: ``switchyard.index.ingest`` against the model alone and against langchain-postgres.

    python bench/index.py            # 400 documents (about 3,000 chunks), then 40 against the peer; minutes
    python bench/index.py --quick    # 40 and 15 documents, for CI

Everything runs here, in one run: its own embedded Postgres + pgvector and Redis, and a real index
worker with the pool's own concurrency (one child per core, each computing with cores // concurrency
threads). Measured:

A. First ingest of ``--docs`` documents, ``send_task`` to the ``end`` event, as a ratio to a bare
   ``SentenceTransformer.encode`` of exactly the chunk texts switchyard embeds (batch 64, every core):
   - cold: sent as soon as the worker answers a ping after its start (its children load the model as
     they start, in the background), against a fresh process that imports the library, loads the model
     and encodes;
   - warm: the model loaded, embedding cache emptied before each ingest, rounds alternating with the
     bare encode so drift in the machine's load hits both alike (goal <= 1.1x).
   A big ingest splits into parts (switchyard.retrieval.parts); the parts and the workers that ran them
   are printed.
B. On the first ``--peer-docs`` documents: switchyard first ingest as chunks/s and as a ratio to the model
   alone, langchain-postgres ``PGVector.add_texts`` of the same texts with the same model, interleaved
   in rounds; then re-ingest of the unchanged corpus and of the corpus with 1% of documents edited, each as
   a ratio to the peer re-adding it (goal >= 20x).

The corpus is the long descriptions of the installed Python packages (their ``METADATA`` files) cut into
documents of about 2,500 characters at paragraph breaks: real prose with Markdown structure, read from
this machine, so nothing is downloaded. The load average is printed at the start and the end; figures
taken with a load above 3 are marked "loaded".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from email import message_from_string
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


ROUNDS = 8
WARM_ROUNDS = 2
PIECE_CHARS = 2500


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


def corpus(limit: int) -> list[dict]:
    """``limit`` documents of about ``PIECE_CHARS`` characters: package descriptions cut at paragraphs."""
    out: list[dict] = []
    for doc in package_descriptions(10_000):
        piece, part = "", 0
        for paragraph in doc["text"].split("\n\n"):
            piece += paragraph + "\n\n"
            if len(piece) >= PIECE_CHARS:
                out.append({"id": f"{doc['id']}-{part}", "text": piece, "metadata": doc["metadata"]})
                piece, part = "", part + 1
        if piece.strip():
            out.append({"id": f"{doc['id']}-{part}", "text": piece, "metadata": doc["metadata"]})
        if len(out) >= limit:
            return out[:limit]
    return out


def load_average() -> float:
    return os.getloadavg()[0]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=400, help="documents of the first-ingest measure")
    parser.add_argument("--peer-docs", type=int, default=40, help="documents of the peer comparison")
    parser.add_argument("--warm-rounds", type=int, default=WARM_ROUNDS)
    parser.add_argument("--concurrency", type=int, default=None, help="index pool size (default: cores)")
    parser.add_argument("--quick", action="store_true", help="40 and 15 documents")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.peer_docs, args.warm_rounds = 40, 15, 1

    from switchyard.embedded import EmbeddedPostgres, EmbeddedRedis

    state = Path(tempfile.mkdtemp(prefix="switchyard-bench-index-"))
    postgres, redis = EmbeddedPostgres(state / "pg"), EmbeddedRedis(state / "redis")
    db_url, redis_url = postgres.start(), redis.start()
    env = {"SWITCHYARD_DATABASE_URL": db_url, "SWITCHYARD_REDIS_URL": redis_url,
           "SWITCHYARD_BROKER_URL": redis_url, "SWITCHYARD_STATE_DIR": str(state / "state"),
           # No reaper runs here: a lease lost to a loaded machine's stall would leave a job running forever.
           "SWITCHYARD_LEASE_S": "600",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    worker = None
    try:
        from switchyard.config import reload_settings
        from switchyard.db import migrate

        reload_settings()
        migrate()
        node = f"bench-{os.getpid()}@{socket.gethostname()}"
        concurrency = ["-c", str(args.concurrency)] if args.concurrency else []
        worker = subprocess.Popen([sys.executable, "-m", "switchyard.cli", "worker", "index", *concurrency,
                                   "-n", node], cwd=ROOT, env={**os.environ},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        load_before = load_average()
        first_ingest(args.docs, node, args.warm_rounds)
        if args.peer_docs:
            run(args.peer_docs)
        load_after = load_average()
        loaded = " (loaded)" if max(load_before, load_after) > 3 else ""
        print(f"\nload average: {load_before:.1f} at the start, {load_after:.1f} at the end{loaded}")
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:  # a job still running: its children go with the group
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        redis.stop()
        postgres.stop()


def ingest(collection: str, documents: list[dict]) -> tuple[dict, str]:
    """One ``index.ingest`` from enqueue to its ``end`` event; its result and job id."""
    from switchyard import client

    job = client.enqueue("index.ingest", {"collection": collection, "documents": documents})
    done = client.wait(job.id, timeout=3600)
    if done.status.value != "succeeded":
        raise RuntimeError(f"ingest ended {done.status.value}: {done.error}")
    return done.result, job.id


def wait_ready(node: str, timeout: float = 300) -> None:
    from switchyard.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(destination=[node], timeout=1.0):
            return
    raise RuntimeError(f"worker {node} did not start")


def forget_embeddings() -> None:
    """Empty the embedding cache, so the next ingest of the same texts embeds them all again."""
    from switchyard.db import connection

    with connection() as conn:
        conn.execute("TRUNCATE embedding_cache")


def parts_of(job_id: str) -> str:
    """How many parts the ingest ran as, and how many ran at once on average (their summed run time
    over the span from the first start to the last finish)."""
    from switchyard.db import connection

    with connection() as conn:
        rows = conn.execute("SELECT started_at, finished_at FROM jobs WHERE producer = 'switchyard.index' "
                            "AND idempotency_key LIKE %s", (f"{job_id}:part:%",)).fetchall()
    if not rows:
        return "one piece"
    busy = sum((r["finished_at"] - r["started_at"]).total_seconds() for r in rows)
    span = (max(r["finished_at"] for r in rows) - min(r["started_at"] for r in rows)).total_seconds()
    return f"{len(rows)} parts, {busy / span:.2f} running at once"


BARE_COLD = """
import json, sys, time
started = time.perf_counter()
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True)
model.encode(json.load(open(sys.argv[2])), batch_size=64, normalize_embeddings=True)
"""


def first_ingest(limit: int, node: str, rounds: int) -> None:
    """A: first ingest of ``limit`` documents end to end, cold then warm, against a bare encode."""
    from switchyard.retrieval.embedding import get_embedder
    from switchyard.retrieval.ingest import chunk_settings, prepare
    from switchyard.retrieval.parsing import from_document
    from switchyard.retrieval.schemas import DocumentIn

    docs = corpus(limit)
    embedder = get_embedder()
    chunking = chunk_settings(embedder, None, None)
    texts = [c.embed_text for d in docs for c in prepare(from_document(DocumentIn(**d)), chunking, embedder).chunks]
    n = len(texts)
    print(f"A. first ingest: {len(docs)} documents, {n} chunks, {os.cpu_count()} cores", flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    try:
        # Cold: the worker has just started (its children may still be loading the model), and so has the
        # bare process.
        wait_ready(node)
        t_cold, (result, job_id) = timed(ingest, "first-cold", docs)
        assert result["chunks_embedded"] == n, (result, n)
        cold_split = parts_of(job_id)
        t_bare_cold, _ = timed(subprocess.run, [sys.executable, "-c", BARE_COLD, str(embedder.path), f.name],
                               check=True, env={**os.environ})
    finally:
        os.unlink(f.name)
    model = embedder.model
    model.encode(texts[:64], batch_size=64)  # warm-up
    t_warm = t_bare = 0.0
    for r in range(rounds):
        forget_embeddings()
        t_bare += timed(model.encode, texts, batch_size=64, normalize_embeddings=True)[0]
        spent, (result, job_id) = timed(ingest, f"first-warm-{r}", docs)
        assert result["chunks_embedded"] == n, (result, n)
        t_warm += spent
        print(f"  warm round {r + 1}/{rounds}: {parts_of(job_id)}", flush=True)
    print(f"\n{'first ingest of ' + str(len(docs)) + ' documents':52} {'seconds':>8} {'chunks/s':>9}  ratio")
    for label, seconds, ratio in [
        ("bare encode, cold (import, load, encode)", t_bare_cold, "baseline"),
        (f"switchyard, cold ({cold_split})", t_cold, f"{t_cold / t_bare_cold:.2f}x of bare (goal <= 1.1)"),
        ("bare encode, warm", t_bare / rounds, "baseline"),
        ("switchyard, warm", t_warm / rounds, f"{t_warm / t_bare:.2f}x of bare (goal <= 1.1)"),
    ]:
        print(f"{label:52} {seconds:8.2f} {n / seconds:9.1f}  {ratio}", flush=True)
    print(flush=True)


def run(limit: int) -> None:
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector

    from switchyard.retrieval.embedding import get_embedder
    from switchyard.retrieval.ingest import chunk_settings, prepare
    from switchyard.retrieval.parsing import from_document
    from switchyard.retrieval.schemas import DocumentIn

    docs = package_descriptions(limit)
    forget_embeddings()
    embedder = get_embedder()
    chunking = chunk_settings(embedder, None, None)
    prepared = [prepare(from_document(DocumentIn(**d)), chunking, embedder) for d in docs]
    texts = [c.embed_text for d in prepared for c in d.chunks]
    metadatas = [c.metadata for d in prepared for c in d.chunks]
    ids = [f"{d.id}#{c.position}" for d in prepared for c in d.chunks]
    n = len(texts)
    print(f"B. against the peer: {len(docs)} documents, {n} chunks (budget {chunking['budget']} tokens, "
          f"overlap {chunking['overlap']})", flush=True)

    model = embedder.model
    model.encode(texts[:64], batch_size=64)  # warm-up

    class SameModel(Embeddings):
        def embed_documents(self, batch: list[str]) -> list[list[float]]:
            return model.encode(batch, batch_size=64, normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    # 2. switchyard, end to end through a real index worker (warm after part A).
    def ingest_result(collection: str, documents: list[dict]) -> dict:
        return ingest(collection, documents)[0]

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
        spent, result = timed(ingest_result, "bench", part_docs)
        t_first += spent
        embedded += result["chunks_embedded"]
        t_peer_first += timed(peer.add_texts, part_texts, part_meta, ids=part_ids)[0]
        print(f"  round {r + 1}/{rounds}: {len(part_texts)} chunks", flush=True)
    assert embedded == n, (embedded, n)

    # 4. Unchanged re-ingest, and 1% of documents edited, against the peer re-adding the corpus.
    t_same, same = timed(ingest_result, "bench", docs)
    assert same["chunks_embedded"] == 0, same
    t_peer_again, _ = timed(peer.add_texts, texts, metadatas, ids=ids)
    edited = [dict(d) for d in docs]
    for d in edited[:: max(1, len(docs) // max(1, len(docs) // 100))][: max(1, len(docs) // 100)]:
        d["text"] = d["text"].replace(".", ". Edited.", 1)
    t_edit, edit = timed(ingest_result, "bench", edited)

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
