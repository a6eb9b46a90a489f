"""The semantic cache: a LangChain ``BaseCache`` on pgvector (HNSW, cosine distance).

A lookup embeds the whole conversation (``keys.prompt_text``) with the index pool's embedder and asks
for the nearest stored prompts of the same namespace and ``llm_key`` (model string + call parameters).
The nearest one within ``threshold`` whose guard signature matches (``guards``) is the hit: a
negation, another number or another named entity is a miss however close the vectors are.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import psycopg
from cachetools import LRUCache
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

from switchyard.cache import codec, guards, keys, versions
from switchyard.cache.backends import Breaker
from switchyard.cache.config import CacheSettings, get_cache_settings

# --- SQL (the table is migrations/0008_llm_cache_semantic.sql) -------------------------------------------
# {dim} is the embedder's dimension, an int from code, never input; the cast matches the HNSW index.
SEARCH_SQL = """
SELECT value, guard, (embedding::vector({dim})) <=> %(v)s::vector({dim}) AS distance
FROM llm_cache_semantic
WHERE vector_dims(embedding) = {dim} AND namespace = %(ns)s AND llm_key = %(lk)s
  AND (expires_at IS NULL OR expires_at > now())
ORDER BY (embedding::vector({dim})) <=> %(v)s::vector({dim})
LIMIT %(k)s
"""
UPSERT_SQL = """
INSERT INTO llm_cache_semantic (namespace, model, llm_key, prompt_key, prompt, guard, embedding_model,
                                embedding, value, expires_at)
VALUES (%(ns)s, %(model)s, %(lk)s, %(pk)s, %(prompt)s, %(guard)s, %(em)s, %(v)s, %(value)s,
        now() + make_interval(secs => %(ttl)s))
ON CONFLICT (namespace, llm_key, prompt_key) DO UPDATE
SET value = EXCLUDED.value, guard = EXCLUDED.guard, embedding = EXCLUDED.embedding,
    embedding_model = EXCLUDED.embedding_model, expires_at = EXCLUDED.expires_at, created_at = now()
"""
PURGE_EXPIRED_SQL = "DELETE FROM llm_cache_semantic WHERE expires_at < now()"
# Filters are added by ``invalidate`` from fixed fragments; the values are parameters.
DELETE_SQL = "DELETE FROM llm_cache_semantic WHERE true"
COUNT_SQL = "SELECT namespace, count(*) AS n FROM llm_cache_semantic GROUP BY namespace ORDER BY namespace"

# Candidates fetched per lookup: the nearest may fail the guards while the next one passes.
CANDIDATES = 4
# Connection wait when Postgres is slow or down: a lookup gives up quickly and calls the model.
POOL_TIMEOUT_S = 1.0

_breaker = Breaker("Postgres")


class SemanticCache(BaseCache):
    """Semantic LLM cache in pgvector, scoped to ``namespace``; ``threshold`` is a cosine distance."""

    def __init__(self, namespace: str = keys.namespace_for(None), *, threshold: float | None = None,
                 embedding_model: str | None = None, settings: CacheSettings | None = None,
                 ttl_s: int | None = None, cache_sampled: bool | None = None):
        s = settings or get_cache_settings()
        self.namespace = namespace
        self.threshold = s.semantic_threshold if threshold is None else threshold
        self.embedding_model = embedding_model or s.embedding_model
        self.ttl_s = s.ttl_s if ttl_s is None else ttl_s
        self.compress_min_bytes = s.compress_min_bytes
        self.cache_sampled = s.cache_sampled if cache_sampled is None else cache_sampled
        # The vector a miss computed, for the update that follows it (one embedding per call).
        self._vectors: LRUCache[str, Any] = LRUCache(maxsize=256)
        self._lock = threading.Lock()
        self.scope = keys.collection_scope(namespace)  # a collection namespace: rows keyed on its version
        self.prefix = s.prefix

    @property
    def embedder(self) -> Any:
        from switchyard.retrieval.embedding import get_embedder

        return get_embedder(self.embedding_model)

    def embed(self, text: str) -> Any:
        pk = keys.digest(text)
        with self._lock:
            vector = self._vectors.get(pk)
        if vector is None:
            vector = self.embedder.embed_query(text)
            with self._lock:
                self._vectors[pk] = vector
        return vector

    def cacheable(self, llm_string: str) -> bool:
        return self.cache_sampled or not keys.is_sampled(llm_string)

    def llm_key(self, llm_string: str, version: str | None) -> str | None:
        """The model string's digest; in a collection namespace also the collection's version (given, or
        read from the cache Redis), so rows made against an older version never match. ``None`` when the
        version cannot be read: a miss, nothing stored."""
        if self.scope is None:
            return keys.digest(llm_string)
        if version is None:
            from switchyard.cache.backends import REDIS_ERRORS, cache_redis

            try:
                version = versions.current(cache_redis(), self.prefix, self.scope)
            except REDIS_ERRORS:
                return None
        return keys.digest(llm_string, f"collection-version={version}")

    def search(self, prompt: str, llm_string: str, version: str | None = None) -> tuple[bytes, float] | None:
        """The stored value of the nearest guard-compatible prompt within the threshold, and its distance."""
        if not self.cacheable(llm_string) or not _breaker.available():
            return None
        llm_key = self.llm_key(llm_string, version)
        if llm_key is None:
            return None
        text = keys.prompt_text(prompt)
        vector = self.embed(text)
        wanted = guards.signature(text)
        sql = SEARCH_SQL.format(dim=int(vector.shape[0]))
        params = {"v": vector, "ns": self.namespace, "lk": llm_key, "k": CANDIDATES}
        try:
            with _connection() as conn, conn.transaction():
                # Filtered HNSW scans keep walking the graph until enough rows pass the WHERE clause
                # (pgvector >= 0.8); without it a crowded index can return fewer than k matches.
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows = conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            _breaker.failed(exc)
            return None
        _breaker.succeeded()
        for row in sorted(rows, key=lambda r: r["distance"]):
            if row["distance"] > self.threshold:
                break
            if guards.compatible(wanted, guards.Signature.from_json(row["guard"])):
                return bytes(row["value"]), float(row["distance"])
        return None

    def put_raw(self, prompt: str, llm_string: str, value: bytes, version: str | None = None) -> None:
        if not self.cacheable(llm_string) or not _breaker.available():
            return
        llm_key = self.llm_key(llm_string, version)
        if llm_key is None:
            return
        from psycopg.types.json import Jsonb

        text = keys.prompt_text(prompt)
        params = {"ns": self.namespace, "model": keys.model_name(llm_string), "lk": llm_key,
                  "pk": keys.digest(text), "prompt": text, "guard": Jsonb(guards.signature(text).to_json()),
                  "em": self.embedder.name, "v": self.embed(text), "value": value, "ttl": float(self.ttl_s)}
        try:
            with _connection() as conn:
                conn.execute(UPSERT_SQL, params)
                if random.random() < 1 / 64:  # expired rows go now and then, without a scheduled job
                    conn.execute(PURGE_EXPIRED_SQL)
        except psycopg.Error as exc:
            _breaker.failed(exc)

    # --- BaseCache -----------------------------------------------------------------------------------
    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        found = self.search(prompt, llm_string)
        return codec.decode(found[0]) if found else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.put_raw(prompt, llm_string, codec.encode(return_val, self.compress_min_bytes))

    def clear(self, **kwargs: Any) -> None:
        """Drop this namespace's entries (``model=`` narrows to one model)."""
        invalidate(namespace=self.namespace, model=kwargs.get("model"))

    # alookup/aupdate: BaseCache's defaults run these in a thread (the embedder and psycopg pool are sync).


def _connection() -> Any:
    from switchyard.db import get_pool

    return get_pool().connection(timeout=POOL_TIMEOUT_S)


def invalidate(*, namespace: str | None = None, model: str | None = None, collection: str | None = None) -> int:
    """Delete semantic entries by namespace, model and/or collection; returns how many."""
    sql, params = DELETE_SQL, []
    if collection:  # namespaces tenant/purpose/collection
        sql += " AND namespace LIKE %s"
        params.append(f"{_escape(namespace) if namespace else '%'}/%/{_escape(collection)}")
    elif namespace:  # the namespace and its sub-namespaces
        sql += " AND (namespace = %s OR namespace LIKE %s)"
        params += [namespace, _escape(namespace) + "/%"]
    if model:
        sql += " AND model = %s"
        params.append(model)
    with _connection() as conn:
        return conn.execute(sql, params).rowcount


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def count_entries() -> dict[str, int]:
    with _connection() as conn:
        return {r["namespace"]: r["n"] for r in conn.execute(COUNT_SQL)}
