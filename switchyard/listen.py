"""``switchyard listen``: enqueue the jobs carried by a Redis Stream, at least once.

A producer appends ``XADD switchyard:triggers * kind index.ingest params '{"collection": ...}'``
(optional fields: ``idempotency_key``, ``callback_url``, ``source``, ``producer``). The listener reads
with a consumer group and acknowledges an entry only after its job is recorded; an entry without an
idempotency key gets its stream entry id as one, so a listener that crashed between recording and
acknowledging re-reads the entry without creating a second job. A malformed entry is moved to the
dead-letter stream ``switchyard:triggers:dead`` with the reason, and acknowledged.

Whoever can write to the stream is inside the trust zone, but the tenant still comes from configuration:
an entry's ``source`` maps to ``SWITCHYARD_TRIGGER_TENANT_<SOURCE>`` (else ``SWITCHYARD_TRIGGER_TENANT``),
and an entry whose ``tenant`` field names another tenant is dead-lettered.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass

import redis

from switchyard import constants, dispatch
from switchyard.config import get_settings
from switchyard.errors import InvalidParamsError, UnknownTaskError
from switchyard.redis_conn import get_redis
from switchyard.runner import INFRA_FAULTS

log = logging.getLogger("switchyard.listen")


@dataclass
class Listener:
    stream: str = constants.TRIGGER_STREAM
    group: str = constants.TRIGGER_GROUP
    dead_letter: str = constants.TRIGGER_DEAD_LETTER
    consumer: str = ""
    block_ms: int = 1000
    batch: int = 50
    # Entries a crashed consumer read but never acknowledged are taken over after this long idle.
    claim_idle_ms: int = 30_000

    def __post_init__(self) -> None:
        self.consumer = self.consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.redis = get_redis()

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, *, stop_after: int | None = None) -> int:
        """Consume until stopped (or until ``stop_after`` entries were handled). Returns the count."""
        handled = 0
        delay = 0.0
        needs_group = True
        while stop_after is None or handled < stop_after:
            try:
                if delay:
                    time.sleep(delay)
                if needs_group:  # at start, and after an outage: a Redis restarted empty lost the group
                    self.ensure_group()
                    needs_group = False
                handled += self.poll_once()
                delay = 0.0
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                needs_group = True
            except INFRA_FAULTS as exc:
                needs_group = True
                # Redis, Postgres or the broker went away: wait and resume. An entry read but not
                # acknowledged is taken over again (_reclaim); its idempotency key keeps it one job.
                delay = min(max(delay * 2, 0.5), 10.0)
                log.warning("listener: %s: %s; retrying in %.1fs", type(exc).__name__, exc, delay)
        return handled

    def poll_once(self) -> int:
        """Handle stale pending entries, then one batch of new ones."""
        entries = self._reclaim()
        if not entries:
            reply = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                          count=self.batch, block=self.block_ms)
            entries = reply[0][1] if reply else []
        for entry_id, fields in entries:
            self.handle(entry_id, fields)
        return len(entries)

    def _reclaim(self) -> list:
        _next, entries, *_ = self.redis.xautoclaim(self.stream, self.group, self.consumer,
                                                   min_idle_time=self.claim_idle_ms, count=self.batch)
        return [e for e in entries if e[1]]  # deleted entries come back as (id, None)

    def handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> str | None:
        """Record one entry's job (or dead-letter it), then acknowledge. Returns the job id."""
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        entry = entry_id.decode()
        try:
            kind = decoded.get("kind") or decoded.get("task")
            if not kind:
                raise ValueError("entry has no 'kind' field")
            params = json.loads(decoded.get("params") or "{}")
            if not isinstance(params, dict):
                raise ValueError("'params' must be a JSON object")
            producer = decoded.get("producer", "stream")
            tenant = get_settings().trigger_tenant_for(decoded.get("source"))
            if decoded.get("tenant") not in (None, tenant):
                raise ValueError(f"entry names tenant {decoded['tenant']!r}, but source "
                                 f"{decoded.get('source') or '(none)'!r} is configured for tenant {tenant!r}")
            job, created = dispatch.enqueue(
                kind, params, idempotency_key=decoded.get("idempotency_key") or f"{self.stream}:{entry}",
                producer=producer, tenant=tenant,
                callback_url=decoded.get("callback_url"),
            )
        except (ValueError, InvalidParamsError, UnknownTaskError) as exc:
            reason = str(exc)
            log.warning("trigger %s dead-lettered: %s", entry, reason)
            self.redis.xadd(self.dead_letter, {**decoded, "_entry_id": entry, "_reason": reason})
            self.redis.xack(self.stream, self.group, entry_id)
            return None
        self.redis.xack(self.stream, self.group, entry_id)
        log.info("trigger %s → job %s (%s)", entry, job.id, "new" if created else "existing")
        return job.id
