"""Every Redis key, channel, stream and queue name in one place."""

from __future__ import annotations

# Queues (README.md "Pools and queues"). `celery` is Celery's default queue: a raw producer that
# calls send_task without a queue lands there, and the control pool forwards the message home.
QUEUES = ("finetune", "index", "agent", "eval", "control")
DEFAULT_QUEUE = "celery"

# Events
JOBS_CHANNEL = "switchyard:jobs"


def job_channel(job_id: str) -> str:
    return f"switchyard:job:{job_id}"


def job_log_stream(job_id: str) -> str:
    return f"switchyard:job:{job_id}:log"


def job_seq_key(job_id: str) -> str:
    return f"switchyard:job:{job_id}:seq"


def end_repair_lock_key(job_id: str) -> str:
    """Held by the one reaper re-announcing a job's lost `end` (switchyard.end_repair)."""
    return f"switchyard:job:{job_id}:end-repair"


# Cross-process signals read by a running job at its step boundaries.
def cancel_key(job_id: str) -> str:
    return f"switchyard:cancel:{job_id}"


def shutdown_key(owner: str) -> str:
    return f"switchyard:shutdown:{owner}"


# A big ingest's parts (switchyard.retrieval.parts): each part's progress, summed into the parent's.
def ingest_parts_key(parent_job_id: str) -> str:
    return f"switchyard:job:{parent_job_id}:parts"


# Set by a worker's main process before its pool starts (workers/signals.py): how many jobs the pool
# runs at once, so a job can size the work it fans out to its siblings.
POOL_CONCURRENCY_ENV = "SWITCHYARD_POOL_CONCURRENCY"


# Worker heartbeats for /metrics (switchyard.metrics): one hash per worker node, with a TTL.
WORKER_METRICS_PREFIX = "switchyard:metrics:worker:"
WORKER_METRICS_PATTERN = WORKER_METRICS_PREFIX + "*"


def worker_metrics_key(node: str) -> str:
    return WORKER_METRICS_PREFIX + node


# API rate limit: one token bucket per caller (switchyard.api.ratelimit), shared by API replicas.
def rate_limit_key(who: str) -> str:
    return f"switchyard:ratelimit:{who}"


# Trigger stream (`switchyard listen`)
TRIGGER_STREAM = "switchyard:triggers"
TRIGGER_DEAD_LETTER = "switchyard:triggers:dead"
TRIGGER_GROUP = "switchyard"

# Headers a producer may put on a raw Celery message.
HEADER_IDEMPOTENCY_KEY = "switchyard_idempotency_key"
HEADER_CALLBACK_URL = "switchyard_callback_url"
HEADER_PRODUCER = "switchyard_producer"
HEADER_TENANT = "switchyard_tenant"
