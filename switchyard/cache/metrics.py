"""Cache metrics: hits, misses, hit latency, tokens and estimated cost saved, per layer and namespace.

LLM calls happen in worker processes, and the API that serves ``/metrics`` is another process, so the
numbers live in Redis: each process sums them in memory (a hit must not pay a second round trip, nor a
price lookup: cost is computed at flush time) and a daemon thread adds them to one hash per namespace
every second (``HINCRBYFLOAT``). ``CacheCollector``
reads those hashes at scrape time; ``switchyard cache stats`` prints them.

Fields of ``{prefix}:stats:{namespace}``: ``misses``, and per layer (``lru``, ``redis``, ``semantic``)
``<layer>:hits``, ``<layer>:hit_seconds``, ``<layer>:tokens_saved``, ``<layer>:cost_saved_usd``.
"""

from __future__ import annotations

import atexit
import logging
import os
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
    """In-memory sums, flushed to Redis by a daemon thread. A hit costs one dict update under a lock:
    its cost saved is priced at flush time, once per model, not on the hit's path."""

    def __init__(self) -> None:
        # (redis url or None, key prefix, namespace, layer, model) -> [hits, seconds, input tokens,
        # output tokens, total tokens]; (redis url or None, key prefix, namespace) -> misses
        self._hits: dict[tuple[str | None, str, str, str, str], list[float]] = {}
        self._misses: dict[tuple[str | None, str, str], int] = defaultdict(int)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # A forked child (prefork workers) inherits a dead flusher thread and the parent's unflushed sums
        # (the parent flushes those): start clean, so the hit path's `_thread is None` test stays enough.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        self._hits, self._misses = {}, defaultdict(int)

    def hit(self, where: tuple[str | None, str], namespace: str, layer: str, seconds: float,
            saved: dict[str, int], model: str) -> None:
        key = (*where, namespace, layer, model)
        with self._lock:
            sums = self._hits.get(key)
            if sums is None:
                sums = self._hits[key] = [0, 0.0, 0, 0, 0]
            sums[0] += 1
            sums[1] += seconds
            sums[2] += saved["input_tokens"]
            sums[3] += saved["output_tokens"]
            sums[4] += saved["total_tokens"]
        if self._thread is None:
            self._ensure_thread()

    def miss(self, where: tuple[str | None, str], namespace: str) -> None:
        with self._lock:
            self._misses[(*where, namespace)] += 1
        if self._thread is None:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="llm-cache-stats", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        event = threading.Event()
        while not event.wait(FLUSH_INTERVAL_S):
            self.flush()

    def pending(self) -> dict[tuple[str | None, str, str, str], float]:
        """Take the sums since the last flush, as ``(url, prefix, namespace, field) -> amount``."""
        with self._lock:
            hits, self._hits = self._hits, {}
            misses, self._misses = self._misses, defaultdict(int)
        out: dict[tuple[str | None, str, str, str], float] = defaultdict(float)
        for (url, prefix, namespace), n in misses.items():
            out[(url, prefix, namespace, "misses")] += n
        for (url, prefix, namespace, layer, model), (n, seconds, tin, tout, total) in hits.items():
            out[(url, prefix, namespace, f"{layer}:hits")] += n
            out[(url, prefix, namespace, f"{layer}:hit_seconds")] += seconds
            out[(url, prefix, namespace, f"{layer}:tokens_saved")] += total
            out[(url, prefix, namespace, f"{layer}:cost_saved_usd")] += \
                price_of(model, {"input_tokens": tin, "output_tokens": tout}) if total else 0.0
        return out

    def flush(self) -> None:
        pending = self.pending()
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
