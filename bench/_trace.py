"""Round-trip tracing for bench/job_path.py: every Postgres statement and Redis command a process sends,
with its duration and the job it ran for, appended to a file (one JSON line each).

Installed by wrapping the client libraries' send paths, so the code under test runs unchanged.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import psycopg
import redis.client

_lock = threading.Lock()
_out = None


def _job() -> str | None:
    from switchyard.logs import current_job_id

    return current_job_id.get(None)


def _record(kind: str, what: str, t0: float, job: str | None = None) -> None:
    line = json.dumps({"pid": os.getpid(), "thread": threading.current_thread().name, "kind": kind,
                       "what": what, "t": t0, "ms": (time.perf_counter() - t0) * 1000, "job": job or _job()})
    with _lock:
        _out.write(line + "\n")
        _out.flush()


def _sql_name(query: Any) -> str:
    text = query if isinstance(query, str) else str(getattr(query, "_obj", query))
    words = " ".join(text.split()).split(" ")
    return " ".join(words[:4])[:60]


def install(path: str) -> None:
    """Trace this process's Postgres and Redis traffic into ``path``."""
    global _out
    _out = open(path, "a")  # noqa: SIM115 - lives as long as the process

    def wrap(cls: type, name: str, kind, label) -> None:
        """``kind``: a label, or a function of the object called (psycopg: pipelined or not)."""
        original = getattr(cls, name)

        def traced(self, *args, **kwargs):
            what = label(self, args)  # before the call: a pipeline empties its stack
            sent_as = kind(self) if callable(kind) else kind
            t0 = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                _record(sent_as, what, t0)

        setattr(cls, name, traced)

    # A statement sent inside a pipeline is not a round trip of its own: the pipeline is (one per sync).
    def pg(self) -> str:
        return "pg (pipelined)" if self.connection._pipeline is not None else "pg"

    wrap(psycopg.Cursor, "execute", pg, lambda self, a: _sql_name(a[0]))
    # executemany sends its statements in a pipeline of its own (counted when it ends) where libpq can.
    many = "pg (pipelined)" if psycopg.Pipeline.is_supported() else "pg"
    wrap(psycopg.Cursor, "executemany", many, lambda self, a: "MANY " + _sql_name(a[0]))
    wrap(psycopg.Pipeline, "__exit__", "pg", lambda self, a: "PIPELINE (transaction, one commit)")
    wrap(redis.client.Redis, "execute_command", "redis", lambda self, a: str(a[0]))
    wrap(redis.client.Pipeline, "execute", "redis",
         lambda self, a: "PIPELINE " + ",".join(str(c[0][0]) for c in self.command_stack)[:80])
