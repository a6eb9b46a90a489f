"""The LLM cache: exact (in-process LRU, Redis) and semantic (pgvector), as LangChain ``BaseCache``s.

See docs/cache.md. ``attach_cache`` is what the chat-model factory uses; ``make_cache`` builds any
cache by name for ``set_llm_cache``; ``invalidate`` drops entries by namespace, model or collection.
"""

from typing import Any

from switchyard.cache.attach import attach_cache, make_cache
from switchyard.cache.keys import namespace_for


def invalidate(**kwargs: Any) -> dict[str, int]:
    """``layered.invalidate``, imported on use (the layers import LangChain)."""
    from switchyard.cache.layered import invalidate as _invalidate

    return _invalidate(**kwargs)


__all__ = ["attach_cache", "invalidate", "make_cache", "namespace_for"]
