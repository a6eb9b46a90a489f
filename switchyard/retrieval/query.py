"""Search a collection: vector (HNSW cosine), text (full-text on the generated ``tsvector``) or hybrid
(reciprocal rank fusion of both), with metadata filters, always inside one tenant's collection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from psycopg import sql as pgsql

from switchyard.db import connection
from switchyard.retrieval import sql, store
from switchyard.retrieval.config import get_retrieval_settings
from switchyard.retrieval.embedding import Embedder, get_embedder
from switchyard.retrieval.filters import compile_filter
from switchyard.retrieval.store import Collection

MODES = ("hybrid", "vector", "text")


@dataclass(frozen=True)
class SearchResult:
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def search(collection: str, query: str, *, k: int = 5, mode: str = "hybrid", tenant: str = "default",
           filter: dict[str, Any] | None = None, vector: Sequence[float] | None = None,
           embedder: Embedder | None = None) -> list[SearchResult]:
    """The ``k`` best chunks of ``collection`` for ``query``.

    ``metadata`` of each result holds the document's metadata plus ``source``, ``heading_path``,
    ``position`` (chunk ordinal) and ``start``/``end`` (character offsets in the document).
    ``vector`` skips embedding the query (callers that already have it).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    coll = store.require_collection(tenant, collection)
    if mode != "text" and vector is None:
        vector = (embedder or get_embedder(coll.model)).embed_query(query)
    return search_collection(coll, query, k=k, mode=mode, filter=filter, vector=vector)


def search_collection(coll: Collection, query: str, *, k: int, mode: str, filter: dict[str, Any] | None,
                      vector: Sequence[float] | None) -> list[SearchResult]:
    statement, params = build_query(coll, query, k=k, mode=mode, filter=filter, vector=vector)
    with connection() as conn:
        settings = search_settings(k, exact=bool(filter) and mode != "text"
                                   and _few_rows_pass(conn, coll, params["filter"]))
        with conn.pipeline(), conn.transaction():  # BEGIN, settings, query, COMMIT: one round trip
            conn.execute(sql.SEARCH_SETTINGS, settings)
            cursor = conn.execute(statement, params)
        rows = cursor.fetchall()
    return [SearchResult(r["document_id"], r["chunk_hash"], r["text"], float(r["score"]), r["metadata"])
            for r in rows]


def search_settings(k: int, *, exact: bool = False) -> tuple[str, str, str]:
    """Parameters of ``sql.SEARCH_SETTINGS`` (bench/retrieval.py sends the same)."""
    settings = get_retrieval_settings()
    return str(max(settings.hnsw_ef_search, k)), str(settings.hnsw_max_scan_tuples), "off" if exact else "on"


def _few_rows_pass(conn: Any, coll: Collection, path: str) -> bool:
    """Whether the planner expects the filter to keep few enough rows for an exact search."""
    statement = sql.FILTER_ESTIMATE.format(gen=pgsql.Literal(coll.generation_id), filter=pgsql.Literal(path))
    plan = conn.execute(statement).fetchone()["QUERY PLAN"]
    return float(plan[0]["Plan"]["Plan Rows"]) <= get_retrieval_settings().exact_filter_rows


def build_query(coll: Collection, query: str, *, k: int, mode: str, filter: dict[str, Any] | None,
                vector: Sequence[float] | None, exact: bool = False) -> tuple[pgsql.Composed, dict[str, Any]]:
    """The statement and parameters of a search (bench/retrieval.py sends the same SQL directly)."""
    params: dict[str, Any] = {"k": k, "text": query}
    if vector is not None:
        params["vector"] = np.asarray(vector, dtype=np.float32)
    where = pgsql.SQL("")
    if filter:
        # A literal, not a parameter: the planner must see the predicate to estimate how many rows pass
        # (a generic plan of a prepared statement would not, and could pick a full scan).
        params["filter"] = compile_filter(filter)
        where = pgsql.SQL(" AND metadata @@ {}::jsonpath").format(pgsql.Literal(params["filter"]))
    template = {"vector": sql.SEARCH_VECTOR, "text": sql.SEARCH_TEXT, "hybrid": sql.SEARCH_HYBRID}[mode]
    if exact:
        template = sql.SEARCH_EXACT
    if mode == "hybrid":
        settings = get_retrieval_settings()
        params["n"] = max(settings.hybrid_candidates, k)
        params["rrf_k"] = settings.rrf_k
    statement = template.format(gen=pgsql.Literal(coll.generation_id), dim=pgsql.Literal(coll.dimension),
                                filter=where)
    return statement, params
