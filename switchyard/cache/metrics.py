"""Cache metrics: hits, misses, hit latency, tokens and estimated cost saved, per layer and namespace.

LLM calls happen in worker processes, and the API that serves ``/metrics`` is another process, so the
numbers live in Redis: each process sums them in memory (a hit must not pay a second round trip) and a
daemon thread adds them to one hash per namespace every second (``HINCRBYFLOAT``). ``CacheCollector``
reads those hashes at scrape time; ``switchyard cache stats`` prints them.

Fields of ``{prefix}:stats:{namespace}``: ``misses``, and per layer (``lru``, ``redis``, ``semantic``)
``<layer>:hits``, ``<layer>:hit_seconds``, ``<layer>:tokens_saved``, ``<layer>:cost_saved_usd``.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from switchyard.cache import keys
from switchyard.cache.config import get_cache_settings

log = logging.getLogger("switchyard.cache")

LAYERS = ("lru", "redis", "semantic")
FLUSH_INTERVAL_S = 1.0


class Stats:
    def __init__(self) -> None:
        # (redis url or None for the configured one, key prefix, namespace, field) -> amount
        self._pending: dict[tuple[str | None, str, str, str], float] = defaultdict(float)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hit(self, where: tuple[str | None, str], namespace: str, layer: str, seconds: float, tokens: int,
            cost_usd: float) -> None:
        with self._lock:
            self._pending[(*where, namespace, f"{layer}:hits")] += 1
            self._pending[(*where, namespace, f"{layer}:hit_seconds")] += seconds
            self._pending[(*where, namespace, f"{layer}:tokens_saved")] += tokens
            self._pending[(*where, namespace, f"{layer}:cost_saved_usd")] += cost_usd
        self._ensure_thread()

    def miss(self, where: tuple[str | None, str], namespace: str) -> None:
        with self._lock:
            self._pending[(*where, namespace, "misses")] += 1
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._loop, name="llm-cache-stats", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        event = threading.Event()
        while not event.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(float)
        if not pending:
            return
        from switchyard.cache.backends import REDIS_ERRORS, cache_redis

        by_store: dict[str | None, list[tuple[str, str, str, float]]] = defaultdict(list)
        for (url, prefix, namespace, field), value in pending.items():
            by_store[url].append((prefix, namespace, field, value))
        for url, items in by_store.items():
            try:
                pipe = cache_redis(url).pipeline(transaction=False)
                for prefix, namespace, field, value in items:
                    pipe.hincrbyfloat(keys.stats_key(prefix, namespace), field, value)
                pipe.execute()
            except REDIS_ERRORS as exc:  # stats are best effort: a Redis outage loses these seconds' counts
                log.debug("cache stats not flushed: %s", exc)
            except Exception:
                log.debug("cache stats not flushed", exc_info=True)


STATS = Stats()
atexit.register(STATS.flush)


def read_stats(client: Any, prefix: str, namespace: str | None = None) -> dict[str, dict[str, float]]:
    """``{namespace: {field: value}}`` from Redis."""
    match = keys.stats_key(prefix, namespace) if namespace else f"{prefix}:stats:*"
    out: dict[str, dict[str, float]] = {}
    for key in client.scan_iter(match=match, count=500):
        key = key.decode() if isinstance(key, bytes) else key
        data = client.hgetall(key)
        ns = unquote(key.split(":stats:", 1)[1])
        out[ns] = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in data.items()}
    return out


def price_of(model: str, usage: dict[str, int]) -> float:
    price = get_cache_settings().prices.get(model)
    if price is None:
        try:
            from switchyard.agents.config import get_agent_settings

            price = get_agent_settings().prices.get(model)
        except ImportError:
            price = None
    if not price:
        return 0.0
    return (usage.get("input_tokens", 0) * price.get("input", 0.0)
            + usage.get("output_tokens", 0) * price.get("output", 0.0)) / 1e6


try:
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.registry import Collector
except ImportError:  # the api extra brings prometheus_client; workers need not have it
    Collector = object  # type: ignore[misc,assignment]


class CacheCollector(Collector):  # type: ignore[misc,valid-type]
    """Prometheus families from the Redis stats hashes, read at scrape time."""

    def collect(self) -> Iterable[Any]:
        from switchyard.cache.backends import cache_redis

        try:
            stats = read_stats(cache_redis(), get_cache_settings().prefix)
        except Exception as exc:
            log.warning("metrics: could not read the LLM cache stats: %s: %s", type(exc).__name__, exc)
            return
        hits = CounterMetricFamily("switchyard_llm_cache_hits", "LLM cache hits", labels=["namespace", "layer"])
        misses = CounterMetricFamily("switchyard_llm_cache_misses", "LLM cache misses (calls that went to the model)",
                                     labels=["namespace"])
        seconds = CounterMetricFamily("switchyard_llm_cache_hit_seconds", "Time spent serving hits (sum)",
                                      labels=["namespace", "layer"])
        tokens = CounterMetricFamily("switchyard_llm_cache_tokens_saved", "Tokens the hits did not spend",
                                     labels=["namespace", "layer"])
        cost = CounterMetricFamily("switchyard_llm_cache_cost_saved_usd", "Estimated USD the hits did not spend",
                                   labels=["namespace", "layer"])
        for ns, fields in sorted(stats.items()):
            misses.add_metric([ns], fields.get("misses", 0.0))
            for layer in LAYERS:
                if f"{layer}:hits" not in fields:
                    continue
                hits.add_metric([ns, layer], fields[f"{layer}:hits"])
                seconds.add_metric([ns, layer], fields.get(f"{layer}:hit_seconds", 0.0))
                tokens.add_metric([ns, layer], fields.get(f"{layer}:tokens_saved", 0.0))
                cost.add_metric([ns, layer], fields.get(f"{layer}:cost_saved_usd", 0.0))
        yield from (hits, misses, seconds, tokens, cost)
