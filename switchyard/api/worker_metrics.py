"""Prometheus collector for what workers report: live workers per pool and their GPUs (heartbeats
in Redis, written by ``switchyard.metrics``), and LLM tokens of ended jobs (from the ledger).

Read at scrape time like ``health.LedgerCollector``, so every API replica answers the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from switchyard import constants
from switchyard.metrics import HEARTBEAT_TTL_S, as_str

log = logging.getLogger("switchyard.api.worker_metrics")

# LLM tokens of ended jobs, by kind: agent runs report them in result.usage (switchyard.agents).
TOKENS_SQL = """
SELECT kind, coalesce(sum((result->'usage'->>'input_tokens')::bigint), 0) AS input,
       coalesce(sum((result->'usage'->>'output_tokens')::bigint), 0) AS output
FROM jobs WHERE result ? 'usage' AND jsonb_typeof(result->'usage') = 'object' GROUP BY kind
"""


class WorkerCollector(Collector):
    """Live workers per pool and their GPUs, from the heartbeats; LLM tokens from the ledger."""

    def collect(self) -> Iterable[Any]:
        for source, read in (("workers", self._workers), ("tokens", self._tokens)):
            try:  # like LedgerCollector: an unreadable source is logged, the rest still reported
                yield from list(read())
            except Exception as exc:
                log.warning("metrics: could not read %s: %s: %s", source, type(exc).__name__, exc)

    def _workers(self) -> Iterable[Any]:
        from switchyard.redis_conn import get_redis

        client = get_redis()
        keys = list(client.scan_iter(match=constants.WORKER_METRICS_PATTERN, count=500))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        beats = [(k.decode() if isinstance(k, bytes) else k, h) for k, h in zip(keys, pipe.execute(), strict=True)]
        per_pool = GaugeMetricFamily("switchyard_workers", "Live worker processes (heartbeat in the last "
                                     f"{HEARTBEAT_TTL_S} s), by pool", labels=["pool"])
        labels = ["node", "pool", "gpu"]
        gpu = {"memory_used_bytes": GaugeMetricFamily("switchyard_gpu_memory_used_bytes",
                                                      "GPU memory in use, per worker's visible GPU", labels=labels),
               "memory_total_bytes": GaugeMetricFamily("switchyard_gpu_memory_total_bytes",
                                                       "GPU memory in total, per worker's visible GPU",
                                                       labels=labels),
               "utilization_ratio": GaugeMetricFamily("switchyard_gpu_utilization_ratio",
                                                      "GPU utilisation (0-1), per worker's visible GPU",
                                                      labels=labels)}
        pools: dict[str, int] = {}
        for key, raw in beats:
            fields = {as_str(k): as_str(v) for k, v in raw.items()}
            if not fields:
                continue
            node, pool = key.removeprefix(constants.WORKER_METRICS_PREFIX), fields.get("pool", "unknown")
            pools[pool] = pools.get(pool, 0) + 1
            for field, value in fields.items():
                if field.startswith("gpu:"):
                    _, index, name = field.split(":", 2)
                    if name in gpu:
                        gpu[name].add_metric([node, pool, index], float(value))
        for pool, n in sorted(pools.items()):
            per_pool.add_metric([pool], n)
        yield per_pool
        yield from gpu.values()

    def _tokens(self) -> Iterable[Any]:
        from switchyard.db import get_pool

        family = CounterMetricFamily("switchyard_llm_tokens", "LLM tokens used by ended jobs (from the "
                                     "ledger's result.usage), by job kind and direction",
                                     labels=["kind", "direction"])
        with get_pool().connection(timeout=2.0) as conn:
            for row in conn.execute(TOKENS_SQL):
                family.add_metric([row["kind"], "input"], int(row["input"]))
                family.add_metric([row["kind"], "output"], int(row["output"]))
        yield family
