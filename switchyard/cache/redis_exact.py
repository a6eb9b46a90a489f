"""The Redis exact cache: a LangChain ``BaseCache`` on plain Redis (GET/SET with a TTL, no modules).

One key per entry (see ``keys``), so Redis's own ``allkeys-lru``/``allkeys-lfu`` eviction works on
entries one by one. A hit is one round trip (``GET``; ``GETEX`` when the TTL slides on read; for a
collection namespace one script that reads the collection's version and the entry, see ``versions``)
and a decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

from switchyard.cache import codec, keys, versions
from switchyard.cache.backends import REDIS_ERRORS, Breaker, cache_redis, cache_redis_async
from switchyard.cache.config import CacheSettings, get_cache_settings

_breakers: dict[str | None, Breaker] = {}


def _breaker_for(url: str | None) -> Breaker:
    """One breaker per Redis (an outage of one cache Redis says nothing about another)."""
    breaker = _breakers.get(url)
    if breaker is None:
        breaker = _breakers[url] = Breaker(f"Redis {url or ''}".strip())
    return breaker


class RedisExactCache(BaseCache):
    """Exact-match LLM cache in Redis, scoped to ``namespace`` (``keys.namespace_for(tenant, purpose)``)."""

    def __init__(self, namespace: str = keys.namespace_for(None), *, url: str | None = None,
                 settings: CacheSettings | None = None, ttl_s: int | None = None, sliding: bool | None = None,
                 cache_sampled: bool | None = None):
        s = settings or get_cache_settings()
        self.namespace = namespace
        self.url = url or s.redis_url
        self.prefix = s.prefix
        self.ttl_s = ttl_s if ttl_s is not None else s.ttl_s
        self.sliding = s.sliding_ttl if sliding is None else sliding
        self.compress_min_bytes = s.compress_min_bytes
        self.cache_sampled = s.cache_sampled if cache_sampled is None else cache_sampled
        self._breaker = _breaker_for(self.url)
        self._keys = keys.ExactKeys(self.prefix, namespace)
        # A collection namespace keys its entries on the collection's version (``versions``).
        self.scope = keys.collection_scope(namespace)
        # Entry key -> the version its lookup missed at: the answer that follows is stored at that version
        # even if the collection changes during the model call (it was built from the old documents).
        self._missed_at: dict[str, str] = {}

    @property
    def client(self) -> Any:
        return cache_redis(self.url)

    def key(self, prompt: str, llm_string: str) -> str:
        return self._keys.key(prompt, llm_string)

    def cacheable(self, llm_string: str) -> bool:
        return self.cache_sampled or not self._keys.sampled(llm_string)

    # --- raw bytes (the layered cache and the stampede lock use these) ---------------------------------
    def get_raw(self, key: str) -> bytes | None:
        if not self._breaker.available():
            return None
        try:
            value = self.client.getex(key, ex=self.ttl_s) if self.sliding else self.client.get(key)
        except REDIS_ERRORS as exc:
            self._breaker.failed(exc)
            return None
        self._breaker.succeeded()
        return value

    def get_at_version(self, key: str) -> tuple[str | None, bytes | None]:
        """``(version, value)`` for a collection namespace; ``(None, None)`` when Redis is unavailable."""
        if not self._breaker.available():
            return None, None
        try:
            version, value = versions.get_at_version(self.client, self.prefix, self.scope, key,
                                                     self.ttl_s if self.sliding else None)
        except REDIS_ERRORS as exc:
            self._breaker.failed(exc)
            return None, None
        self._breaker.succeeded()
        if value is None:
            if len(self._missed_at) > 4096:  # lookups whose update never came (errors): forget them
                self._missed_at.clear()
            self._missed_at[key] = version
        return version, value

    def version_for_update(self, key: str) -> str | None:
        """The version to store an answer to ``key`` at: the one its lookup missed at, else the current."""
        version = self._missed_at.pop(key, None)
        if version is not None or not self._breaker.available():
            return version
        try:
            return versions.current(self.client, self.prefix, self.scope)
        except REDIS_ERRORS as exc:
            self._breaker.failed(exc)
            return None

    def put_raw(self, key: str, value: bytes) -> None:
        if not self._breaker.available():
            return
        try:
            self.client.set(key, value, ex=self.ttl_s)
        except REDIS_ERRORS as exc:
            self._breaker.failed(exc)

    def available(self) -> bool:
        return self._breaker.available()

    def mark_failed(self, exc: BaseException) -> None:
        self._breaker.failed(exc)

    # --- BaseCache -----------------------------------------------------------------------------------
    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if not self.cacheable(llm_string):
            return None
        key = self.key(prompt, llm_string)
        value = self.get_raw(key) if self.scope is None else self.get_at_version(key)[1]
        return codec.decode(value) if value is not None else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if not self.cacheable(llm_string):
            return
        key = self.key(prompt, llm_string)
        if self.scope is not None:
            version = self.version_for_update(key)
            if version is None:
                return  # the collection's version is unknown: storing could serve a stale answer later
            key = keys.versioned(key, version)
        self.put_raw(key, codec.encode(return_val, self.compress_min_bytes))

    def clear(self, **kwargs: Any) -> None:
        """Drop this namespace's entries (``model=`` narrows to one model)."""
        invalidate(self.client, self.prefix, namespace=self.namespace, model=kwargs.get("model"))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if self.scope is not None:  # the version script runs on the sync client (BaseCache's default)
            return await super().alookup(prompt, llm_string)
        if not self.cacheable(llm_string) or not self._breaker.available():
            return None
        key = self.key(prompt, llm_string)
        client = cache_redis_async(self.url)
        try:
            value = await (client.getex(key, ex=self.ttl_s) if self.sliding else client.get(key))
        except REDIS_ERRORS as exc:
            self._breaker.failed(exc)
            return None
        return codec.decode(value) if value is not None else None

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self.scope is not None:
            return await super().aupdate(prompt, llm_string, return_val)
        if not self.cacheable(llm_string) or not self._breaker.available():
            return
        try:
            await cache_redis_async(self.url).set(self.key(prompt, llm_string),
                                                  codec.encode(return_val, self.compress_min_bytes), ex=self.ttl_s)
        except REDIS_ERRORS as exc:
            self._breaker.failed(exc)

    async def aclear(self, **kwargs: Any) -> None:
        self.clear(**kwargs)


def invalidate(client: Any, prefix: str, *, namespace: str | None = None, model: str | None = None,
               collection: str | None = None) -> int:
    """Delete the exact entries of a namespace, a model and/or a collection; returns how many.

    SCAN + UNLINK by key pattern: no index to keep in step, and it never blocks Redis for long.
    """
    patterns = [keys.pattern(prefix, namespace, model, collection)]
    if namespace and not collection:  # a namespace's sub-namespaces ("acme" → "acme/agent/...") go too
        patterns.append(f"{prefix}:e:{keys.q(namespace)}/*:{keys.q(model) if model else '*'}:*")
    deleted = 0
    for match in patterns:
        batch: list[bytes] = []
        for key in client.scan_iter(match=match, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    return deleted


def count_entries(client: Any, prefix: str, namespace: str | None = None) -> dict[str, int]:
    """Exact entries per namespace."""
    counts: dict[str, int] = {}
    for key in client.scan_iter(match=keys.pattern(prefix, namespace), count=1000):
        ns = keys.namespace_of(key.decode())
        counts[ns] = counts.get(ns, 0) + 1
    return counts


__all__: Sequence[str] = ["RedisExactCache", "count_entries", "invalidate"]
