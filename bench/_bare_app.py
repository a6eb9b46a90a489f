"""The baselines for bench/backbone.py: a bare Celery app and task on the same broker, nothing else, and
the same task with the least a durable job ledger must write (``bare.durable``)."""

import os
import threading

from celery import Celery

app = Celery("bare", broker=os.environ["BARE_BROKER_URL"], backend=os.environ["BARE_BACKEND_URL"])
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                task_acks_late=True, worker_prefetch_multiplier=1, task_default_queue="bare",
                worker_hijack_root_logger=False)

# The measured floor of a durable job: the producer commits the job's row before it sends (accept), the
# worker claims it (asynchronous commit, as switchyard's claim) and commits its finish durably before the
# message is acknowledged. Plain psycopg on one connection per worker thread: no pool, no events, no
# retries, none of the ledger's other columns. A job that cannot lose work pays at least this.
DURABLE_TABLE_SQL = ("CREATE TABLE IF NOT EXISTS bench_durable_jobs "
                     "(id bigserial PRIMARY KEY, status text NOT NULL, worker text)")
ACCEPT_SQL = "INSERT INTO bench_durable_jobs (status) VALUES ('queued') RETURNING id"
CLAIM_SQL = "UPDATE bench_durable_jobs SET status = 'running', worker = %s WHERE id = %s AND status = 'queued'"
FINISH_SQL = "UPDATE bench_durable_jobs SET status = 'succeeded' WHERE id = %s"

_local = threading.local()


def _connections():
    """This thread's (claim, finish) connections: the first commits asynchronously, the second durably."""
    import psycopg

    if getattr(_local, "conns", None) is None:
        url = os.environ["BARE_DATABASE_URL"]
        claim = psycopg.connect(url, autocommit=True)
        claim.execute("SET synchronous_commit = off")
        _local.conns = (claim, psycopg.connect(url, autocommit=True))
    return _local.conns


@app.task(name="bare.noop")
def noop(seconds: float = 0) -> dict:
    return {"pid": os.getpid(), "seconds": seconds}


@app.task(name="bare.durable")
def durable(job_id: int) -> dict:
    claim, finish = _connections()
    claim.execute(CLAIM_SQL, (str(os.getpid()), job_id))
    finish.execute(FINISH_SQL, (job_id,))
    return {"job_id": job_id}
