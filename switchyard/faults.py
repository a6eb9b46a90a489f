"""Fault points for tests: kill this process at a named moment, to show what recovers it.

Off unless ``SWITCHYARD_TEST_KILL_AT`` names the point (never set it in production). The chaos tests
start a worker with it set to reproduce a crash in a window too short to hit with an outside
``kill -9`` (``after_finish``: between a job's final ledger write and its `end` event).
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "SWITCHYARD_TEST_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process here if ``SWITCHYARD_TEST_KILL_AT`` is ``name`` (a dict look-up otherwise)."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
