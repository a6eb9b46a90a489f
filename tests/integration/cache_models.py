"""A chat model that counts its calls in Redis (INCR), for the cache tests: processes share the count."""

from __future__ import annotations

import time
from typing import Any

import redis
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class CountingChatModel(BaseChatModel):
    redis_url: str
    counter_key: str
    delay_s: float = 0.0
    fail: bool = False
    temperature: float = 0.0
    model_name: str = "counting-fake"

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        n = redis.Redis.from_url(self.redis_url).incr(self.counter_key)
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("the model is down")
        text = f"answer #{n} to: {messages[-1].content}"
        usage = {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text, usage_metadata=usage))])

    def calls(self) -> int:
        return int(redis.Redis.from_url(self.redis_url).get(self.counter_key) or 0)


def ask_once(redis_url: str, counter_key: str, prefix: str, namespace: str, prompt: str) -> str:
    """One process's call through the layered cache (the stampede test runs eight of these at once)."""
    from switchyard.cache.config import CacheSettings
    from switchyard.cache.layered import LayeredCache

    settings = CacheSettings(prefix=prefix, redis_url=redis_url, lru_size=0)
    cache = LayeredCache(namespace, mode="exact", semantic=False, settings=settings)
    model = CountingChatModel(redis_url=redis_url, counter_key=counter_key, delay_s=1.0, cache=cache,
                              callbacks=[cache.error_handler])
    return model.invoke(prompt).content
