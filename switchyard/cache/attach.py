"""Putting a cache on a chat model (the factory's hook), and building any of the caches by name.

``attach_cache`` gives a model the platform's ``LayeredCache`` for its tenant and purpose, plus the
callback that releases a stampede lock when the call fails. The mode is, first to last: ``cache_mode``
around the call, the run's ``configurable.cache``, the model config's ``cache`` key,
``SWITCHYARD_CACHE_MODE`` for the providers in ``SWITCHYARD_CACHE_PROVIDERS``, else off. Without a Redis
URL the model gets no cache at all.
"""

from __future__ import annotations

from typing import Any

from switchyard.cache import keys
from switchyard.cache.config import get_cache_settings
from switchyard.errors import ConfigurationError


def attach_cache(model: Any, *, provider: str, tenant: str | None = None, mode: Any = None,
                 purpose: str = keys.DEFAULT_PURPOSE) -> Any:
    from switchyard.cache.backends import cache_redis_url
    from switchyard.cache.layered import LayeredCache, parse_mode

    settings = get_cache_settings()
    chosen = parse_mode(mode) or (settings.mode if provider in settings.providers else "off")
    try:
        cache_redis_url()
    except ConfigurationError:
        return model
    cache = LayeredCache(keys.namespace_for(tenant, purpose), mode=chosen)
    model.cache = cache
    if model.callbacks is None:
        model.callbacks = [cache.error_handler]
    elif isinstance(model.callbacks, list):
        model.callbacks = [*model.callbacks, cache.error_handler]
    return model


def make_cache(kind: str, namespace: str | None = None, **options: Any) -> Any:
    """A LangChain ``BaseCache`` by name, for ``set_llm_cache`` or a model's ``cache=``.

    ``memory`` and ``sqlite`` are LangChain's own (``InMemoryCache``, langchain-community's
    ``SQLiteCache``, ``database_path=``); ``redis``, ``semantic`` and ``layered`` are ours.
    """
    namespace = namespace or keys.namespace_for(None)
    if kind == "memory":
        from langchain_core.caches import InMemoryCache

        return InMemoryCache(maxsize=options.get("maxsize", get_cache_settings().lru_size or None))
    if kind == "sqlite":
        from langchain_community.cache import SQLiteCache

        return SQLiteCache(database_path=str(options.get("database_path", ".langchain.db")))
    if kind == "redis":
        from switchyard.cache.redis_exact import RedisExactCache

        return RedisExactCache(namespace, **options)
    if kind == "semantic":
        from switchyard.cache.semantic import SemanticCache

        return SemanticCache(namespace, **options)
    if kind == "layered":
        from switchyard.cache.layered import LayeredCache

        return LayeredCache(namespace, **options)
    raise ConfigurationError(f"unknown cache {kind!r}: memory, sqlite, redis, semantic or layered")
