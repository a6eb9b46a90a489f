"""Cache settings: environment variables prefixed ``SWITCHYARD_CACHE_``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["off", "exact", "semantic"]


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_CACHE_", extra="ignore")

    # What a model from the factory gets when neither its config nor the run names a mode.
    # "exact": in-process LRU + Redis; "semantic": also pgvector; "off": nothing.
    mode: Mode = "exact"
    # Providers the default mode applies to. The scripted model (tests, demos) is cached only when its
    # config or the run asks: its callers watch its own token stream and call counts.
    providers: list[str] = Field(default_factory=lambda: ["openai", "local"])
    # A Redis of its own for the cache (maxmemory + allkeys-lru/lfu, see docs/cache.md); unset: REDIS_URL.
    redis_url: str | None = None
    prefix: str = "switchyard:cache"
    ttl_s: int = 24 * 3600
    sliding_ttl: bool = False  # a hit pushes the entry's expiry out again (Redis GETEX)
    compress_min_bytes: int = 1024  # values at least this long are zlib-compressed
    lru_size: int = 2048  # entries in the in-process LRU in front of Redis; 0 disables it
    # An in-process entry is trusted this long: `switchyard cache clear` in another process reaches
    # Redis and Postgres at once and every process's LRU within this time.
    lru_ttl_s: float = 30.0
    # Cosine distance. At 0.1, with the guards, bench/cache.py serves 54% of the paraphrases of
    # bench/data/cache_pairs.jsonl with 0.8% false hits; false hits pass 1% above ~0.14.
    semantic_threshold: float = 0.1
    embedding_model: str | None = None  # default: the index pool's default embedder
    lock_timeout_s: float = 30.0  # stampede lock: waiters wait at most this long, then call the model
    cache_sampled: bool = False  # also cache answers sampled with temperature > 0
    # When Redis or Postgres fails, skip it for this long (calls go to the model) before trying again.
    retry_after_s: float = 2.0
    # USD per million tokens, {"model name": {"input": 0.15, "output": 0.6}}, for "cost saved".
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)


@lru_cache(maxsize=1)
def get_cache_settings() -> CacheSettings:
    return CacheSettings()


def reload_cache_settings() -> CacheSettings:
    get_cache_settings.cache_clear()
    return get_cache_settings()
