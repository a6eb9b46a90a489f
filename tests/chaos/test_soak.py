"""The soak's short profile (RELIABILITY.md): ~120 jobs over webhooks and the trigger stream while workers
are killed and paused and Redis and Postgres restart, on a private stack. ``make soak`` runs the full
profile on the Redis broker and on RabbitMQ. A failure prints its seed: ``SOAK_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import pytest

from tests.chaos._soak import SHORT, format_table, run_soak

pytestmark = pytest.mark.chaos


def test_short_soak_loses_nothing_and_applies_nothing_twice():
    report = run_soak(SHORT)
    print(format_table([report]))
    assert report.jobs_run >= SHORT.webhook_pings + SHORT.trigger_pings + SHORT.ingests
    assert sum(report.faults.values()) == sum(SHORT.faults.values())
    assert report.lost == [], f"seed {report.seed}"
    assert report.duplicated == [], f"seed {report.seed}"
    assert report.stream_gaps == [], f"seed {report.seed}"
    assert report.failed == [], f"seed {report.seed}"
    assert report.stale_leases == 0, f"seed {report.seed}"
    assert report.crashed == [], f"seed {report.seed}"
