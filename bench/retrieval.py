"""Retrieval latency and recall at 100k vectors with real neighbour structure.

    python bench/retrieval.py            # 100,000 clustered 384-d vectors (a few minutes: HNSW build)
    python bench/retrieval.py --quick    # 10,000, for CI

One run, one machine, its own embedded Postgres + pgvector. The vectors are a clustered synthetic set
(2,000 Gaussian clusters on the unit sphere, so every point has true near neighbours; uniform random
vectors have none and make recall meaningless). Each row carries a ``bucket`` (1% selectivity each) and a
few words for full-text search. Queries are fresh points drawn from the same clusters. Measured:

- top-10 latency p50/p99 through ``switchyard.retrieval`` and recall@10 against exact search (numpy);
- the same statements sent with psycopg directly on one connection: switchyard's layers as a ratio (≤ 1.2);
- hybrid (vector + full-text, RRF) latency as a ratio to vector-only;
- recall@10 and rows returned with a 1% metadata filter (pgvector 0.8 iterative index scans).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIM = 384
# A 2,000-word vocabulary, five words a row: each word is in about 0.25% of rows, as content words are in
# a real corpus (a ten-word vocabulary would make every query match half the table).
_SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "ve", "zu", "bri", "dal", "fen", "gor", "hul"]
WORDS = sorted({a + b + c + d for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES
                for d in ("n", "r", "s", "x", "m", "l")})[:2000]


def clustered(n: int, clusters: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.standard_normal((clusters, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, n)
    points = centers[labels] + rng.standard_normal((n, DIM)).astype(np.float32) * 0.04
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points, centers


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10,000 vectors, 100 queries")
    args = parser.parse_args()
    n, queries = (10_000, 100) if args.quick else (args.n, args.queries)

    from switchyard.embedded import EmbeddedPostgres

    state = Path(tempfile.mkdtemp(prefix="switchyard-bench-retrieval-"))
    postgres = EmbeddedPostgres(state / "pg")
    os.environ["SWITCHYARD_DATABASE_URL"] = postgres.start()
    try:
        run(n, queries)
    finally:
        from switchyard.db import close_pools

        close_pools()
        postgres.stop()


def load(n: int, rng: np.random.Generator):
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from switchyard.config import reload_settings
    from switchyard.db import database_url, migrate
    from switchyard.retrieval import store

    reload_settings()
    migrate()
    points, centers = clustered(n, max(20, n // 50), rng)
    coll = store.create_collection("bench", "clustered", "bench:clustered-384", DIM, {"chunking": "none"})
    started = time.perf_counter()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"DROP INDEX {store.hnsw_index_name(coll.generation_id)}")  # bulk build is faster
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY documents (collection_id, id, source, content_hash, text, metadata, chunk_count)"
                          " FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "text", "text", "text", "jsonb", "int4"])
                for i in range(n):
                    copy.write_row((coll.id, f"d{i}", "bench", "h", "", Jsonb({"bucket": i % 100}), 1))
            with cur.copy("COPY chunks (generation_id, collection_id, document_id, chunk_hash, doc_hash, position,"
                          " text, metadata, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "text", "text", "text", "int4", "text", "jsonb", "vector"])
                for i in range(n):
                    words = " ".join(WORDS[j] for j in rng.choice(len(WORDS), 5, replace=False))
                    copy.write_row((coll.id, coll.id, f"d{i}", "c", "h", 0, f"item {i} {words}",
                                    Jsonb({"bucket": i % 100}), points[i]))
        loaded = time.perf_counter() - started
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        started = time.perf_counter()
        store.create_hnsw_index(conn, coll.generation_id, DIM)
        conn.execute("ANALYZE chunks")
        built = time.perf_counter() - started
    print(f"loaded {n} vectors in {loaded:.1f}s (binary COPY); HNSW (m=16, ef_construction=64) built in "
          f"{built:.1f}s", flush=True)
    return coll, points, centers


def run(n: int, queries: int) -> None:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.rows import dict_row

    from switchyard.db import database_url
    from switchyard.retrieval import sql
    from switchyard.retrieval.config import get_retrieval_settings
    from switchyard.retrieval.query import build_query, search_collection, search_settings

    rng = np.random.default_rng(7)
    coll, points, centers = load(n, rng)
    qs = centers[rng.integers(0, len(centers), queries)] + rng.standard_normal((queries, DIM)).astype(np.float32) * 0.04
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    texts = [" ".join(WORDS[j] for j in rng.choice(len(WORDS), 2, replace=False)) for _ in range(queries)]
    buckets = np.arange(n) % 100
    k = 10

    def exact(q: np.ndarray, mask: np.ndarray | None = None) -> set[str]:
        scores = points @ q
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return {f"d{i}" for i in np.argpartition(-scores, k)[:k]}

    def through_switchyard(q, text, mode="vector", filter=None):
        started = time.perf_counter()
        hits = search_collection(coll, text, k=k, mode=mode, filter=filter, vector=q)
        return time.perf_counter() - started, hits

    settings = get_retrieval_settings()
    raw = psycopg.connect(database_url(), autocommit=True, row_factory=dict_row)
    register_vector(raw)
    set_local = search_settings(k)

    def through_psycopg(q, text, mode="vector"):
        # The same statements, sent the same way (one pipeline), on one plain connection.
        statement, params = build_query(coll, text, k=k, mode=mode, filter=None, vector=q)
        started = time.perf_counter()
        with raw.pipeline(), raw.transaction():
            raw.execute(sql.SEARCH_SETTINGS, set_local)
            cursor = raw.execute(statement, params)
        rows = cursor.fetchall()
        return time.perf_counter() - started, rows

    for q, t in zip(qs[:20], texts[:20], strict=True):  # warm caches, the pool and both paths
        through_switchyard(q, t)
        through_psycopg(q, t)
        through_switchyard(q, t, "hybrid")

    sy_times, raw_times, hybrid_times, filtered_times = [], [], [], []
    recalls, filtered_recalls, filtered_rows = [], [], []
    # Interleaved, so drift in machine load hits both paths alike, and in alternating order: the first
    # of the two to run a query pays for reading its part of the index into memory.
    for i, (q, t) in enumerate(zip(qs, texts, strict=True)):
        if i % 2:
            raw_times.append(through_psycopg(q, t)[0])
        spent, hits = through_switchyard(q, t)
        sy_times.append(spent)
        recalls.append(len({h.document_id for h in hits} & exact(q)) / k)
        if not i % 2:
            raw_times.append(through_psycopg(q, t)[0])
        hybrid_times.append(through_switchyard(q, t, "hybrid")[0])
        bucket = i % 100
        spent, hits = through_switchyard(q, t, filter={"bucket": bucket})
        filtered_times.append(spent)
        filtered_rows.append(len(hits))
        filtered_recalls.append(len({h.document_id for h in hits} & exact(q, buckets == bucket)) / k)
    raw.close()

    p50 = statistics.median
    print(f"\n{n} vectors, {queries} queries, k={k}, ef_search={settings.hnsw_ef_search}")
    print(f"{'measure':46} {'p50 ms':>8} {'p99 ms':>8}  result")
    print(f"{'psycopg direct, same SQL (baseline)':46} {percentile(raw_times, 50):8.2f} "
          f"{percentile(raw_times, 99):8.2f}  baseline")
    print(f"{'switchyard vector search':46} {percentile(sy_times, 50):8.2f} {percentile(sy_times, 99):8.2f}  "
          f"{p50(sy_times) / p50(raw_times):.2f}x of psycopg (goal <= 1.2); "
          f"recall@10 {np.mean(recalls):.3f} (goal >= 0.95)")
    print(f"{'switchyard hybrid (vector + text, RRF)':46} {percentile(hybrid_times, 50):8.2f} "
          f"{percentile(hybrid_times, 99):8.2f}  {p50(hybrid_times) / p50(sy_times):.2f}x of vector-only")
    print(f"{'switchyard vector, 1% metadata filter':46} {percentile(filtered_times, 50):8.2f} "
          f"{percentile(filtered_times, 99):8.2f}  recall@10 {np.mean(filtered_recalls):.3f}, "
          f"rows returned min {min(filtered_rows)} of {k}")


if __name__ == "__main__":
    main()
