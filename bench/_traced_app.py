"""The worker app of bench/job_path.py: switchyard's own, with its Postgres and Redis traffic traced."""

import os

from bench import _trace
from workers.app import app

_trace.install(os.environ["JOB_PATH_TRACE"])

__all__ = ["app"]
