"""The baseline for bench/backbone.py: a bare Celery app and task on the same broker, nothing else."""

import os

from celery import Celery

app = Celery("bare", broker=os.environ["BARE_BROKER_URL"], backend=os.environ["BARE_BACKEND_URL"])
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                task_acks_late=True, worker_prefetch_multiplier=1, task_default_queue="bare",
                worker_hijack_root_logger=False)


@app.task(name="bare.noop")
def noop(seconds: float = 0) -> dict:
    return {"pid": os.getpid(), "seconds": seconds}
