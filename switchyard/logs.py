"""Structured logs: every record carries the job id it was written for; JSON lines on request.

``SWITCHYARD_LOG_FORMAT=json`` prints one JSON object per line (for log shippers); the default is
human-readable text with ``[job=...]`` where a job is running.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextvars import ContextVar

current_job_id: ContextVar[str | None] = ContextVar("switchyard_job_id", default=None)


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job_id.get()
        record.job = f" [job={record.job_id}]" if record.job_id else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if getattr(record, "job_id", None):
            out["job_id"] = record.job_id
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s"


def configure(level: str | None = None, fmt: str | None = None, root: logging.Logger | None = None) -> None:
    """Install the job-id filter and the chosen formatter on the root logger's handlers."""
    level = (level or os.environ.get("SWITCHYARD_LOG_LEVEL", "INFO")).upper()
    fmt = fmt or os.environ.get("SWITCHYARD_LOG_FORMAT", "text")
    root = root or logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level)
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in root.handlers:
        handler.addFilter(JobIdFilter())
        handler.setFormatter(formatter)
