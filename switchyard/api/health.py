"""Operations: ``/healthz`` (liveness), ``/readyz`` (Postgres, Redis, broker reachable), ``/metrics``.

Workers are separate processes, so in-process counters in the API would only count the API. The
Prometheus collector instead reads the sources of truth at scrape time: the ledger (jobs by kind and
status, durations of finished jobs, events per job) and the broker (queue depth).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from kombu import Connection
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from switchyard import constants, events, jobs
from switchyard.api.auth import presented_key
from switchyard.api.errors import ErrorBody
from switchyard.api.worker_metrics import WorkerCollector
from switchyard.config import get_settings
from switchyard.db import get_pool
from switchyard.redis_conn import redis_url

log = logging.getLogger("switchyard.api.health")

router = APIRouter(tags=["operations"])

# Each dependency check gives up after this long, so a black-holed host cannot hang the probe.
CHECK_TIMEOUT_S = 2.0

# Job duration buckets (seconds): from a ping to a day-long fine-tune.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


# --- checks -----------------------------------------------------------------------------------------

def check_postgres() -> dict[str, Any]:
    with get_pool().connection(timeout=CHECK_TIMEOUT_S) as conn:
        migrated = jobs.ledger_exists(conn)
    if not migrated:
        raise RuntimeError("the jobs table is missing: run `switchyard migrate`")
    return {}


def _probe_redis() -> redis.Redis:
    # A client of its own with short timeouts: the shared one waits as long as the OS lets it.
    return redis.Redis.from_url(redis_url(), socket_connect_timeout=CHECK_TIMEOUT_S,
                                socket_timeout=CHECK_TIMEOUT_S)


def check_redis() -> dict[str, Any]:
    client = _probe_redis()
    try:
        client.ping()
    finally:
        client.close()
    return {}


def check_broker() -> dict[str, Any]:
    url = get_settings().effective_broker_url
    if not url:
        raise RuntimeError("no broker configured (SWITCHYARD_BROKER_URL / SWITCHYARD_REDIS_URL)")
    # kombu speaks both redis:// and amqp://; one retry-free connect bounded by the timeout.
    with Connection(url, connect_timeout=CHECK_TIMEOUT_S,
                    transport_options={"socket_timeout": CHECK_TIMEOUT_S}) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_S)
        return {"transport": conn.transport_cls}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "broker": check_broker,
}


def run_checks() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check at once (a slow one does not delay the others); ``(all_ok, per check)``."""
    results: dict[str, dict[str, Any]] = {}

    def one(name: str) -> None:
        started = time.perf_counter()
        try:
            results[name] = {"ok": True, **CHECKS[name]()}
        except Exception as exc:
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)

    with ThreadPoolExecutor(max_workers=len(CHECKS)) as pool:
        list(pool.map(one, CHECKS))
    return all(r["ok"] for r in results.values()), results


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Postgres, Redis and the broker are reachable",
            responses={503: {"description": "a dependency is unreachable; `checks` says which"}})
def readyz() -> JSONResponse:
    ok, checks = run_checks()
    if not ok:
        failed = sorted(name for name, r in checks.items() if not r["ok"])
        log.warning("not ready: %s", ", ".join(f"{n} ({checks[n]['error']})" for n in failed))
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


# --- metrics ----------------------------------------------------------------------------------------

# The ledger's and the event log's reads are their owners' (jobs.py, events.py); the API only shapes them.


def queue_depths(url: str, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue, asked of the broker with a passive declare.

    kombu answers this for both transports: AMQP's ``queue_declare(passive=True)`` message count, and
    for Redis the summed ``LLEN`` of the queue's priority lists. A queue that does not exist yet
    (Redis deletes empty lists) has depth 0.
    """
    depths: dict[str, int] = {}
    with Connection(url, connect_timeout=CHECK_TIMEOUT_S,
                    transport_options={"socket_timeout": CHECK_TIMEOUT_S}) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_S)
        channel = conn.channel()
        try:
            for queue in queues:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except conn.channel_errors:
                    depths[queue] = 0
                    # AMQP closes a channel whose passive declare failed (py-amqp's ``is_open``);
                    # kombu's Redis channel stays usable (and is costly to open: a new pool).
                    if not getattr(channel, "is_open", True):
                        channel = conn.channel()
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return depths


class LedgerCollector(Collector):
    """Reads the ledger and the broker at scrape time. A source that fails is reported, not fatal."""

    def collect(self) -> Iterable[Any]:
        errors = GaugeMetricFamily("switchyard_scrape_error",
                                   "1 if the source could not be read during this scrape",
                                   labels=["source"])
        for source, read in (("jobs", self._jobs), ("durations", self._durations),
                             ("events", self._events), ("queues", self._queues)):
            try:
                yield from read()
                errors.add_metric([source], 0)
            except Exception as exc:
                log.warning("metrics: could not read %s: %s: %s", source, type(exc).__name__, exc)
                errors.add_metric([source], 1)
        yield errors

    def _jobs(self) -> Iterable[Any]:
        family = GaugeMetricFamily("switchyard_jobs", "Jobs in the ledger by kind and status",
                                   labels=["kind", "status"])
        with get_pool().connection(timeout=CHECK_TIMEOUT_S) as conn:
            for row in jobs.count_by_kind_status(conn):
                family.add_metric([row["kind"], row["status"]], row["n"])
        yield family

    def _durations(self) -> Iterable[Any]:
        family = HistogramMetricFamily(
            "switchyard_job_duration_seconds",
            "Run time (started to finished) of ended jobs, by kind and final status",
            labels=["kind", "status"])
        with get_pool().connection(timeout=CHECK_TIMEOUT_S) as conn:
            rows = jobs.duration_histograms(conn, DURATION_BUCKETS)
        for row in rows:
            buckets = [(repr(float(b)), row[f"b{i}"]) for i, b in enumerate(DURATION_BUCKETS)]
            buckets.append(("+Inf", row["n"]))
            family.add_metric([row["kind"], row["status"]], buckets, float(row["total"]))
        yield family

    def _events(self) -> Iterable[Any]:
        with get_pool().connection(timeout=CHECK_TIMEOUT_S) as conn:
            by_kind = events.durable_counts_by_kind(conn)
            live = events.live_jobs_last_durable_seq(conn)
        if live:
            client = _probe_redis()
            try:
                seqs = client.mget([constants.job_seq_key(r["id"]) for r in live])
            finally:
                client.close()
            for row, seq in zip(live, seqs, strict=True):
                extra = int(seq) - row["last_seq"] if seq is not None else 0
                if extra > 0:
                    by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + extra
        family = CounterMetricFamily("switchyard_events_published",
                                     "Events published for jobs, by job kind (from the event logs)",
                                     labels=["kind"])
        for kind, n in sorted(by_kind.items()):
            family.add_metric([kind], n)
        yield family

    def _queues(self) -> Iterable[Any]:
        url = get_settings().effective_broker_url
        if not url:
            raise RuntimeError("no broker configured")
        family = GaugeMetricFamily("switchyard_queue_depth", "Messages waiting in each broker queue",
                                   labels=["queue"])
        for queue, depth in queue_depths(url, (*constants.QUEUES, constants.DEFAULT_QUEUE)).items():
            family.add_metric([queue], depth)
        yield family


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(LedgerCollector())
REGISTRY.register(WorkerCollector())  # live workers per pool, GPU memory, LLM tokens
with contextlib.suppress(ImportError):  # the LLM cache's counters, from Redis (switchyard.cache.metrics)
    from switchyard.cache.metrics import CacheCollector

    REGISTRY.register(CacheCollector())


@router.get("/metrics", summary="Prometheus metrics, read from the ledger and broker at scrape time",
            description="With `SWITCHYARD_METRICS_KEY` set, send `Authorization: Bearer <key>`.",
            response_class=Response,
            responses={401: {"model": ErrorBody, "description": "METRICS_KEY is set and was not sent"}})
def metrics(request: Request) -> Response:
    key = get_settings().metrics_key
    if key is not None and not hmac.compare_digest((presented_key(request) or "").encode(),
                                                   key.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid metrics key",
                            headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
