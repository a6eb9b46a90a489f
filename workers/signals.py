"""Worker lifecycle: fresh connections after fork, and graceful shutdown that reaches running jobs.

On SIGTERM Celery stops taking messages and waits for running tasks (warm shutdown). We also raise
a flag in Redis that running jobs read at their next step boundary: long jobs checkpoint and go back
to the queue instead of holding the shutdown for hours.
"""

from __future__ import annotations

import logging
import os

from celery.signals import (
    after_setup_logger,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutting_down,
)

from switchyard import constants

log = logging.getLogger("switchyard.worker")


@after_setup_logger.connect
def _structured_logs(logger: logging.Logger | None = None, loglevel: int | None = None, **_: object) -> None:
    from switchyard import logs

    logs.configure(logging.getLevelName(loglevel) if loglevel else None, root=logger)


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    from switchyard.db import close_pools

    close_pools()  # drop the parent's pools: connections must not cross a fork


# Set in the main process before the fork: the children of an index pool preload the embedding model.
_preload_embedder = False


@worker_init.connect
def _share_cores(sender: object = None, **_: object) -> None:
    """Before the pool forks: each prefork child gets ``cores // concurrency`` math threads (torch, BLAS
    read these variables when they load in the child), unless the operator set them; and the pool's
    concurrency is published so a big ingest knows how many parts the pool can embed at once."""
    global _preload_embedder
    from workers.profiles import THREAD_VARIABLES, threads_per_child

    concurrency = getattr(sender, "concurrency", None)
    if not isinstance(concurrency, int) or concurrency < 1:
        return
    os.environ[constants.POOL_CONCURRENCY_ENV] = str(concurrency)
    queues = getattr(getattr(getattr(sender, "app", None), "amqp", None), "queues", None)
    _preload_embedder = "index" in (getattr(queues, "consume_from", None) or {})
    pool = getattr(sender, "pool_cls", "")
    if "prefork" not in f"{getattr(pool, '__module__', '')} {pool}".lower():
        return  # threads/solo pools share one process: its libraries already size themselves to the cores
    threads = str(threads_per_child(concurrency))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, threads)


@worker_process_init.connect
def _child_threads(**_: object) -> None:
    import sys
    import threading

    torch = sys.modules.get("torch")  # loaded before the fork (rare): the variables came too late for it
    if torch is not None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if _preload_embedder:
        threading.Thread(target=_preload, name="switchyard-preload", daemon=True).start()


def _preload() -> None:
    from switchyard.retrieval.config import get_retrieval_settings
    from switchyard.retrieval.embedding import preload

    try:
        if get_retrieval_settings().preload_model:
            preload()
    except Exception:  # the first job loads it instead, and reports the error where it belongs
        log.exception("could not preload the embedding model")


@worker_init.connect
def _tracing(**_: object) -> None:
    """OpenTelemetry for this worker (off unless SWITCHYARD_OTEL_ENABLED); prefork children inherit it."""
    from switchyard import tracing

    tracing.configure("switchyard-worker")


@worker_process_shutdown.connect
def _flush_traces(**_: object) -> None:
    from switchyard import tracing

    tracing.shutdown()  # a pool child may exit without running atexit handlers


@worker_process_shutdown.connect
def _flush_ledger_writes(**_: object) -> None:
    from switchyard.events import release_held
    from switchyard.ledger_writer import ledger_writer

    # Deferred event copies (switchyard/ledger_writer.py) of a child that exits after its job (max tasks
    # per child 1); atexit would not run. Left unflushed they would wait for the reaper's end repair.
    # Held events first: publishing one may defer its copy.
    release_held()
    ledger_writer().flush(5.0)


@worker_ready.connect
def _clear_shutdown_flag(sender: object = None, **_: object) -> None:
    from switchyard.redis_conn import get_redis

    hostname = getattr(sender, "hostname", None)
    if hostname:
        get_redis().delete(constants.shutdown_key(hostname))
        log.info("worker %s ready", hostname)


_heartbeats: list = []


@worker_ready.connect
def _start_metrics_heartbeat(sender: object = None, **_: object) -> None:
    """Report this worker (pool, GPU memory) for /metrics; see switchyard.metrics."""
    from switchyard.metrics import Heartbeat

    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    queues = list(getattr(sender.app.amqp.queues, "consume_from", None) or [])
    pool = next((q for q in queues if q != constants.DEFAULT_QUEUE), queues[0] if queues else "unknown")
    _heartbeats.append(Heartbeat(hostname, pool).start())


@worker_shutting_down.connect
def _announce_shutdown(sender: str | None = None, sig: str | None = None, how: str | None = None,
                       **_: object) -> None:
    from switchyard.context import mark_shutting_down
    from switchyard.redis_conn import get_redis

    mark_shutting_down()
    for heartbeat in _heartbeats:
        heartbeat.stop()
    if sender:
        log.warning("worker %s shutting down (%s, %s): running jobs will checkpoint and requeue",
                    sender, sig, how)
        try:
            get_redis().set(constants.shutdown_key(sender), sig or "1", ex=3600)
        except Exception:  # Redis gone: the jobs' leases expire and the reaper requeues them
            log.exception("could not announce shutdown")
