"""``LayeredCache``: in-process LRU → Redis exact → pgvector semantic, each optional, filled on the way
back; stampede protection on misses; per-run mode; hits marked, metered and stripped of usage.

This is the cache the chat-model factory puts on the agent pool's models (``cache=``). The run can
narrow or switch it off with ``config["configurable"]["cache"]`` = ``false`` | ``"exact"`` |
``"semantic"``: LangChain gives a cache no config, but a model call runs inside its runnable config's
context (``var_child_runnable_config``: a graph node, a chain step), so ``lookup`` reads it there. A bare
``model.invoke(..., config)`` outside any runnable sets no such context (``BaseChatModel.invoke`` passes
only callbacks, tags and metadata on, never ``configurable``): wrap the call in ``cache_mode(...)``, or
name the mode in the model's config.

A hit's message carries ``response_metadata["switchyard_cache"] = {"layer", "namespace", "distance",
"saved"}``, zero token usage (the call spent none; ``saved`` is what it would have cost), not the
cached message's id but a fresh one (LangGraph's ``add_messages`` would otherwise replace an earlier
message with the cached id).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.runnables.config import var_child_runnable_config

from switchyard.cache import codec, keys
from switchyard.cache.codec import MARKER
from switchyard.cache.config import CacheSettings, Mode, get_cache_settings
from switchyard.cache.lock import ReleaseOnError, StampedeLocks, pending_key
from switchyard.cache.lru import LocalLRU
from switchyard.cache.metrics import STATS
from switchyard.cache.redis_exact import RedisExactCache
from switchyard.cache.semantic import SemanticCache

log = logging.getLogger("switchyard.cache")


# One LRU per process and size: entries are keyed by namespace, so every cache instance can share it.
_lrus: dict[tuple[int, float], LocalLRU] = {}


def shared_lru(size: int, ttl_s: float) -> LocalLRU:
    lru = _lrus.get((size, ttl_s))
    if lru is None:
        lru = _lrus[(size, ttl_s)] = LocalLRU(size, ttl_s)
    return lru


# The mode ``cache_mode`` set for the calls made inside it (a direct model call has no runnable config).
_call_mode: ContextVar[Mode | None] = ContextVar("switchyard_cache_mode", default=None)


@contextmanager
def cache_mode(mode: Any) -> Iterator[None]:
    """Per-call cache control for calls LangChain gives no runnable config: ``with cache_mode(False):
    model.invoke(...)``. Takes the values of ``configurable.cache`` (``False``, ``"exact"``,
    ``"semantic"``; ``True``/``None``: no override) and wins over it; threads started with the context
    copied (``asyncio.to_thread``, LangChain's executors) and asyncio tasks see it too."""
    token = _call_mode.set(parse_mode(mode))
    try:
        yield
    finally:
        _call_mode.reset(token)


def run_mode() -> Mode | None:
    """The mode this call asks for: ``cache_mode``'s, else the runnable config's ``configurable.cache``."""
    mode = _call_mode.get()
    if mode is not None:
        return mode
    config = var_child_runnable_config.get()
    if not config:
        return None
    value = (config.get("configurable") or {}).get("cache")
    return parse_mode(value)


def parse_mode(value: Any) -> Mode | None:
    if value is None:
        return None
    if value is False or str(value).lower() in ("false", "off", "none", "0", "no"):
        return "off"
    if value is True:
        return None  # "on": the model's own mode
    if value in ("exact", "semantic"):
        return value
    raise ValueError(f"cache must be false, 'exact' or 'semantic', not {value!r}")


class LayeredCache(BaseCache):
    """The platform's LLM cache for one namespace (``keys.namespace_for(ctx.tenant, purpose)``)."""

    def __init__(self, namespace: str = keys.namespace_for(None), *, mode: Mode | None = None,
                 lru: bool = True, redis: bool = True, semantic: bool = True, stampede: bool = True,
                 settings: CacheSettings | None = None, **layer_options: Any):
        s = settings or get_cache_settings()
        self.namespace = namespace
        self.mode: Mode = mode or s.mode
        self.cache_sampled = layer_options.get("cache_sampled", s.cache_sampled)
        self.lru = shared_lru(s.lru_size, s.lru_ttl_s) if lru and s.lru_size > 0 else None
        self.redis = RedisExactCache(namespace, settings=s, **layer_options) if redis else None
        self.semantic = SemanticCache(namespace, settings=s, **{k: v for k, v in layer_options.items()
                                                                if k in ("ttl_s", "cache_sampled")}) \
            if semantic else None
        self.locks = StampedeLocks(lambda: self.redis.client, s.lock_timeout_s) \
            if stampede and self.redis is not None else None
        self.error_handler = ReleaseOnError(self._release)
        self.prefix = s.prefix
        self._where = (s.redis_url, s.prefix)  # where this cache's stats go
        # A collection namespace (RAG answers) keys entries on the collection's version (``versions``).
        self.scope = keys.collection_scope(namespace)
        self._keys = keys.ExactKeys(s.prefix, namespace)

    def effective_mode(self) -> Mode:
        return run_mode() or self.mode

    def key(self, prompt: str, llm_string: str) -> str:
        return self._keys.key(prompt, llm_string)

    # --- lookup --------------------------------------------------------------------------------------
    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        value, pending = self._lookup(prompt, llm_string, self.effective_mode())
        if pending is not None:
            pending_key.set(pending)
        return value

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        # The stores are sync clients (a pool per process); the thread keeps the event loop free.
        value, pending = await asyncio.to_thread(self._lookup, prompt, llm_string, self.effective_mode())
        if pending is not None:
            pending_key.set(pending)  # in the caller's context, where on_llm_error will look
        return value

    def _lookup(self, prompt: str, llm_string: str, mode: Mode) -> tuple[RETURN_VAL_TYPE | None, str | None]:
        if mode == "off" or (not self.cache_sampled and self._keys.sampled(llm_string)):
            return None, None
        started = time.perf_counter()
        key = self.key(prompt, llm_string)
        if self.scope is None:
            layer, value, distance = self._find(prompt, llm_string, key, mode)
        else:
            key, layer, value, distance = self._find_at_version(prompt, llm_string, key, mode)
            if key is None:  # the collection's version is unknown (no Redis): a miss, nothing to lock
                STATS.miss(self._where, self.namespace)
                return None, None
        pending = None
        if value is None and self.locks is not None and self.redis.available():
            try:
                value, took = self.locks.wait_for(key, self.redis.get_raw)
            except Exception as exc:  # Redis gone mid-wait: proceed without protection
                self.redis.mark_failed(exc)
                value, took = None, False
            layer, pending = ("redis", None) if value is not None else (None, key if took else None)
            if value is not None and self.lru is not None and self.scope is None:
                self.lru.put(key, value)
        if value is None:
            STATS.miss(self._where, self.namespace)
            return None, pending
        mark: dict[str, Any] = {"layer": layer, "namespace": self.namespace,
                                "saved": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
        if distance is not None:
            mark["distance"] = round(distance, 4)
        generations = codec.decode(value, mark)
        STATS.hit(self._where, self.namespace, layer, time.perf_counter() - started, mark["saved"],
                  keys.model_name(llm_string))
        return generations, None

    def _find(self, prompt: str, llm_string: str, key: str, mode: Mode) -> tuple[str, bytes | None, float | None]:
        if self.lru is not None and (value := self.lru.get(key)) is not None:
            return "lru", value, None
        if self.redis is not None and (value := self.redis.get_raw(key)) is not None:
            if self.lru is not None:
                self.lru.put(key, value)
            return "redis", value, None
        if mode == "semantic" and self.semantic is not None:
            found = self.semantic.search(prompt, llm_string)
            if found is not None:
                value, distance = found
                if self.lru is not None:
                    self.lru.put(key, value)
                if self.redis is not None:
                    self.redis.put_raw(key, value)
                return "semantic", value, distance
        return "", None, None

    def _find_at_version(self, prompt: str, llm_string: str, key: str,
                         mode: Mode) -> tuple[str | None, str, bytes | None, float | None]:
        """A collection namespace: Redis (version and entry in one round trip), then pgvector at that
        version; no LRU (it cannot see another process move the version). Returns the versioned key."""
        version, value = self.redis.get_at_version(key) if self.redis is not None else (None, None)
        if version is None:
            return None, "", None, None
        key = keys.versioned(key, version)
        if value is not None:
            return key, "redis", value, None
        if mode == "semantic" and self.semantic is not None:
            found = self.semantic.search(prompt, llm_string, version=version)
            if found is not None:
                self.redis.put_raw(key, found[0])
                return key, "semantic", found[0], found[1]
        return key, "", None, None

    # --- update --------------------------------------------------------------------------------------
    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self._update(prompt, llm_string, return_val, self.effective_mode())

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await asyncio.to_thread(self._update, prompt, llm_string, return_val, self.effective_mode())

    def _update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE, mode: Mode) -> None:
        key: str | None = self.key(prompt, llm_string)
        version = None
        if self.scope is not None:  # stored at the version its lookup missed at (see versions)
            version = self.redis.version_for_update(key) if self.redis is not None else None
            key = keys.versioned(key, version) if version is not None else None
        try:
            if key is None or mode == "off" or (not self.cache_sampled and self._keys.sampled(llm_string)):
                return
            if any(MARKER in (getattr(getattr(g, "message", None), "response_metadata", None) or {})
                   for g in return_val):
                return  # a hit LangChain hands back to us: stored already
            value = codec.encode(return_val, self.redis.compress_min_bytes if self.redis else 1024)
            if self.lru is not None and self.scope is None:
                self.lru.put(key, value)
            if self.redis is not None:
                self.redis.put_raw(key, value)
            if mode == "semantic" and self.semantic is not None:
                self.semantic.put_raw(prompt, llm_string, value, version=version)
        finally:
            if key is not None:
                self._release(key)
                if pending_key.get() == key:
                    pending_key.set(None)

    def _release(self, key: str) -> None:
        if self.locks is not None:
            self.locks.release(key)

    # --- invalidation --------------------------------------------------------------------------------
    def clear(self, **kwargs: Any) -> None:
        """Drop this namespace's entries in every layer (``model=`` narrows to one model)."""
        invalidate(namespace=self.namespace, model=kwargs.get("model"))


def invalidate(*, namespace: str | None = None, model: str | None = None, collection: str | None = None,
               settings: CacheSettings | None = None) -> dict[str, int]:
    """Drop entries by namespace (and its sub-namespaces), model and/or collection, in every store.

    Other processes' in-process LRUs drop theirs within ``lru_ttl_s``. A store that is down is
    reported as ``-1``.
    """
    from switchyard.cache import redis_exact, semantic
    from switchyard.cache.backends import cache_redis

    s = settings or get_cache_settings()
    counts = {"lru": 0, "redis": -1, "semantic": -1}
    patterns = [keys.pattern(s.prefix, namespace, model, collection)]
    if namespace and not collection:
        patterns.append(f"{s.prefix}:e:{keys.q(namespace)}/*:{keys.q(model) if model else '*'}:*")
    for lru in _lrus.values():
        counts["lru"] += lru.clear(lambda k: any(fnmatch.fnmatchcase(k, p) for p in patterns))
    try:
        counts["redis"] = redis_exact.invalidate(cache_redis(), s.prefix, namespace=namespace, model=model,
                                                 collection=collection)
    except Exception as exc:
        log.warning("cache invalidation: Redis: %s: %s", type(exc).__name__, exc)
    try:
        counts["semantic"] = semantic.invalidate(namespace=namespace, model=model, collection=collection)
    except Exception as exc:
        log.warning("cache invalidation: Postgres: %s: %s", type(exc).__name__, exc)
    return counts

