"""Job events: the ``Event`` type, publishing, and a subscriber that sees every event once, in order.

Each job has an ordered log. Publishing assigns ``seq``, appends the event to the replay stream
``switchyard:job:{id}:log`` and publishes it on ``switchyard:job:{id}`` in one Lua script, so the log's
order is the ``seq`` order even when several processes publish for one job. Status and end events are
also published on ``switchyard:jobs`` and kept in Postgres (``job_events``), which outlives the
trimmed, expiring Redis log.

A subscriber subscribes first, then replays the log, then reads live messages, dropping any ``seq`` it
has already yielded and back-filling from the log if it sees a gap. It stops after ``end``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from switchyard import constants
from switchyard.config import get_settings
from switchyard.redis_conn import get_redis

EVENT_TYPES = frozenset(
    {"status", "progress", "metrics", "token", "message", "update", "values", "custom", "log", "end"}
)
# Kept in Postgres as well as in the Redis replay log.
DURABLE_TYPES = frozenset({"status", "metrics", "message", "log", "end"})
# Also fanned out on the all-jobs channel.
GLOBAL_TYPES = frozenset({"status", "end"})


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    job_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls(**json.loads(raw))

    def to_sse(self) -> dict[str, str]:
        """The fields of one Server-Sent Event (``id`` is ``seq``, so ``Last-Event-ID`` resumes)."""
        return {"id": str(self.seq), "event": self.type, "data": self.to_json()}

    @property
    def is_end(self) -> bool:
        return self.type == "end"


# KEYS: seq key, log stream, job channel, all-jobs channel
# ARGV: job_id, ts, maxlen, ttl, then (type, data JSON, global 0/1) for each event
# Each event's JSON is built here, after INCR, so seq order = log order = publish order.
_PUBLISH_LUA = """
local out = {}
for i = 5, #ARGV, 3 do
  local seq = redis.call('INCR', KEYS[1])
  local ev = '{"seq":' .. seq .. ',"job_id":' .. cjson.encode(ARGV[1]) .. ',"type":' .. cjson.encode(ARGV[i])
          .. ',"data":' .. ARGV[i + 1] .. ',"ts":' .. ARGV[2] .. '}'
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ev)
  redis.call('PUBLISH', KEYS[3], ev)
  if ARGV[i + 2] == '1' then redis.call('PUBLISH', KEYS[4], ev) end
  out[#out + 1] = ev
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return out
"""

_script = None


def publish(job_id: str, type: str, data: dict[str, Any] | None = None, *, persist: bool = True) -> Event:
    """Append one event to a job's log and publish it live. Returns the event with its ``seq``.

    ``persist=False`` skips the Postgres copy of a durable type (events of a job with no ledger row).
    """
    return publish_many(job_id, [(type, data)], persist=persist)[0]


def publish_many(job_id: str, items: list[tuple[str, dict[str, Any] | None]], *,
                 persist: bool = True) -> list[Event]:
    """Append several events to a job's log in one round trip, consecutive and in order."""
    global _script
    for type, _data in items:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; expected one of {sorted(EVENT_TYPES)}")
    settings = get_settings()
    client = get_redis()
    if _script is None or _script.registered_client is not client:
        _script = client.register_script(_PUBLISH_LUA)
    args: list[Any] = [job_id, repr(time.time()), settings.event_log_maxlen, settings.event_log_ttl_s]
    for type, data in items:
        args += [type, json.dumps(data or {}, separators=(",", ":"), default=str),
                 "1" if type in GLOBAL_TYPES else "0"]
    keys = [constants.job_seq_key(job_id), constants.job_log_stream(job_id), constants.job_channel(job_id),
            constants.JOBS_CHANNEL]
    published = [Event.from_json(raw) for raw in _script(keys=keys, args=args)]
    durable = [e for e in published if e.type in DURABLE_TYPES]
    if durable and persist:
        _persist(durable)
    return published


def _persist(durable: list[Event]) -> None:
    from switchyard.db import connection

    # Not durable: Redis holds the live log; this copy only has to outlive Redis's trimming.
    with connection(durable=False) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO job_events (job_id, seq, type, data, ts) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(e.job_id, e.seq, e.type, json.dumps(e.data, default=str), e.ts) for e in durable],
        )


def replay(job_id: str, after_seq: int = 0) -> list[Event]:
    """Every logged event with ``seq > after_seq``, in order: the Redis log, else Postgres's copy."""
    logged = _logged(get_redis().xrange(constants.job_log_stream(job_id)))
    if _incomplete(logged, after_seq):
        logged = _merged(logged, _durable_events(job_id, after_seq))
    return [e for e in logged if e.seq > after_seq]


async def areplay(job_id: str, after_seq: int = 0) -> list[Event]:
    """``replay`` for asyncio code (the API's streams)."""
    import anyio.to_thread

    from switchyard.redis_conn import get_async_redis

    logged = _logged(await get_async_redis().xrange(constants.job_log_stream(job_id)))
    if _incomplete(logged, after_seq):
        durable = await anyio.to_thread.run_sync(_durable_events, job_id, after_seq)
        logged = _merged(logged, durable)
    return [e for e in logged if e.seq > after_seq]


def _logged(entries: list) -> list[Event]:
    return [Event.from_json(fields[b"e"]) for _id, fields in entries]


def _incomplete(logged: list[Event], after_seq: int) -> bool:
    # Trimmed or expired in Redis: the durable events from Postgres fill what they can.
    return not logged or logged[0].seq > after_seq + 1


def _merged(logged: list[Event], durable: list[Event]) -> list[Event]:
    seen = {e.seq for e in logged}
    return sorted([e for e in durable if e.seq not in seen] + logged, key=lambda e: e.seq)


def _durable_events(job_id: str, after_seq: int) -> list[Event]:
    from switchyard.db import connection

    with connection() as conn:
        rows = conn.execute(
            "SELECT seq, type, data, ts FROM job_events WHERE job_id = %s AND seq > %s ORDER BY seq",
            (job_id, after_seq),
        ).fetchall()
    return [Event(seq=r["seq"], job_id=job_id, type=r["type"], data=r["data"], ts=r["ts"]) for r in rows]


class _Cursor:
    """A subscriber's position: hands out each seq once, in order; a jump means pub/sub missed some."""

    def __init__(self, after_seq: int):
        self.last = after_seq
        self.done = False

    def fresh(self, batch: list[Event]) -> list[Event]:
        out = []
        for event in batch:
            if event.seq > self.last and not self.done:
                out.append(event)
                self.last = event.seq
                self.done = event.is_end
        return out

    def is_gap(self, event: Event) -> bool:
        return event.seq > self.last + 1


def subscribe(
    job_id: str, after_seq: int = 0, *, timeout: float | None = None, poll_s: float = 1.0
) -> Iterator[Event]:
    """Yield the job's events with ``seq > after_seq`` exactly once, in order, ending with ``end``.

    Works for a job that has not started, is running, or ended long ago: subscribe first (so nothing
    published from then on is missed), replay the log, then follow live messages, filling any gap from
    the log. ``timeout`` bounds the wait for the *next* event (``TimeoutError``); ``None`` waits forever.
    """
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(constants.job_channel(job_id))
    cursor = _Cursor(after_seq)
    try:
        yield from cursor.fresh(replay(job_id, cursor.last))
        waited = 0.0
        while not cursor.done:
            message = pubsub.get_message(timeout=poll_s)
            if message is None:
                waited += poll_s
                # Quiet channel: the log may hold what pub/sub dropped (a reconnect, say).
                batch = cursor.fresh(replay(job_id, cursor.last))
                if not batch and timeout is not None and waited >= timeout:
                    raise TimeoutError(f"no event for job {job_id} in {timeout}s")
            else:
                event = Event.from_json(message["data"])
                batch = cursor.fresh(replay(job_id, cursor.last) if cursor.is_gap(event) else [event])
            if batch:
                waited = 0.0
                yield from batch
    finally:
        pubsub.close()


async def asubscribe(job_id: str, after_seq: int = 0, *, poll_s: float = 1.0) -> AsyncIterator[Event]:
    """``subscribe`` for asyncio code: no thread per subscriber. Closing the iterator (a client that
    went away) releases its Redis connection at once."""
    from switchyard.redis_conn import get_async_redis

    pubsub = get_async_redis().pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(constants.job_channel(job_id))
    cursor = _Cursor(after_seq)
    try:
        for event in cursor.fresh(await areplay(job_id, cursor.last)):
            yield event
        while not cursor.done:
            message = await pubsub.get_message(timeout=poll_s)
            if message is None:
                batch = cursor.fresh(await areplay(job_id, cursor.last))
            else:
                event = Event.from_json(message["data"])
                batch = cursor.fresh(await areplay(job_id, cursor.last) if cursor.is_gap(event) else [event])
            for event in batch:
                yield event
    finally:
        await pubsub.aclose()
