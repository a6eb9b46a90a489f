"""The LLM cache: exact (in-process LRU, Redis) and semantic (pgvector), as LangChain ``BaseCache``s.

See docs/cache.md. ``attach_cache`` is what the chat-model factory uses; ``make_cache`` builds any
cache by name for ``set_llm_cache``; ``invalidate`` drops entries by namespace, model or collection;
``collection_changed`` (the index pool calls it) moves a collection's version so answers cached against
it miss; ``cache_mode`` is per-call cache control for direct model calls.
"""

from contextlib import AbstractContextManager
from typing import Any

from switchyard.cache.attach import attach_cache, make_cache
from switchyard.cache.keys import namespace_for
from switchyard.cache.versions import collection_changed


def invalidate(**kwargs: Any) -> dict[str, int]:
    """``layered.invalidate``, imported on use (the layers import LangChain)."""
    from switchyard.cache.layered import invalidate as _invalidate

    return _invalidate(**kwargs)


def cache_mode(mode: Any) -> AbstractContextManager[None]:
    """``layered.cache_mode``: ``with cache_mode(False): model.invoke(...)``."""
    from switchyard.cache.layered import cache_mode as _cache_mode

    return _cache_mode(mode)


__all__ = ["attach_cache", "cache_mode", "collection_changed", "invalidate", "make_cache", "namespace_for"]
