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

import atexit
import contextlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import psycopg_pool
import redis.exceptions

from switchyard import constants
from switchyard._singleton import PerProcess
from switchyard.config import get_settings
from switchyard.redis_conn import get_redis

log = logging.getLogger("switchyard.events")

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
# ARGV: job_id, ts, maxlen, ttl, start, minimum, then (type, data JSON, global 0/1) for each event
# Each event's JSON is built here, after INCR, so seq order = log order = publish order.
# start and minimum guard the counter after Redis lost it (a restart without persistence): with no
# counter and no start ('') the script publishes nothing and returns nil, and the caller asks Postgres
# where the job's log stands (_seq_floor) and passes that as start; an existing counter below minimum
# (a seq this process wrote to Postgres while Redis was unreachable) is raised to it.
_PUBLISH_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if cur < 0 then
  if ARGV[5] == '' then return false end
  redis.call('SET', KEYS[1], ARGV[5])
elseif ARGV[6] ~= '' and cur < tonumber(ARGV[6]) then
  redis.call('SET', KEYS[1], ARGV[6])
end
local out = {}
for i = 7, #ARGV, 3 do
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


def publish(job_id: str, type: str, data: dict[str, Any] | None = None, *, persist: bool = True,
            first: bool = False, stored: bool = False, defer: bool = False, ts: float | None = None) -> Event:
    """Append one event to a job's log and publish it live. Returns the event with its ``seq``.

    ``persist=False`` skips the Postgres copy of a durable type (events of a job with no ledger row).
    ``first=True`` says the job has no events yet (its counter starts at 0; saves a look-up).
    ``stored=True`` (with ``first``): Postgres already holds this event as seq 1, written with the job's
    row (``jobs.create(first_event=...)``), with this ``ts``.
    ``defer=True``: the Postgres copy is left to this process's group commit instead of waited for.
    """
    return publish_many(job_id, [(type, data)], persist=persist, first=first, stored=stored, defer=defer,
                        ts=ts)[0]


def publish_many(job_id: str, items: list[tuple[str, dict[str, Any] | None]], *,
                 persist: bool = True, first: bool = False, stored: bool = False, defer: bool = False,
                 ts: float | None = None) -> list[Event]:
    """Append several events to a job's log in one round trip, consecutive and in order.

    While Redis cannot be reached, durable types still go to Postgres (``subscribe`` replays them from
    there) and the others are dropped: RELIABILITY.md, "Events during a Redis outage".

    ``defer=True`` hands the Postgres copy to the process's group commit (switchyard.ledger_writer) and
    returns without waiting for it (it rides the next commit of the process, at most ``DEFER_LINGER_S``
    later): for copies nobody reads at once, on paths where a round trip counts (a job's `running`).
    """
    for type, _data in items:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; expected one of {sorted(EVENT_TYPES)}")
    if _held_events.by_job:  # an event this process holds back (``hold``) goes out first
        if first:  # a new job: whatever the jobs held here announced may have caused it (sub-jobs)
            release_held()
        else:
            head = _held_events.take(job_id)
            if head is not None:
                try:
                    published = _publish_now(job_id, [*head.items, *items], persist, first, stored, defer, ts,
                                             held=len(head.items))
                finally:
                    _held_events.release(head)
                return published[len(head.items):]
    return _publish_now(job_id, items, persist, first, stored, defer, ts)


def _publish_now(job_id: str, items: list[tuple[str, dict[str, Any] | None]], persist: bool, first: bool,
                 stored: bool, defer: bool, ts: float | None, *, held: int = 0) -> list[Event]:
    """``publish_many`` itself. ``held``: how many leading items were held back (``hold``); their Postgres
    copy goes with the copy of the caller's own durable events when they are written now (one statement),
    else it is deferred (the caller's are not durable: a progress event)."""
    minimum = _floors.pop(job_id, "")
    ts = time.time() if ts is None else ts
    try:
        published = _publish_redis(job_id, items, "0" if first else "", minimum, ts)
        if published is None:  # Redis has no counter for this job (new job, or Redis lost it)
            published = _publish_redis(job_id, items, str(_seq_floor(job_id, persist)), minimum, ts)
    except REDIS_DOWN as exc:
        if minimum:
            _floors.setdefault(job_id, minimum)  # still owed to Redis
        if stored and first:  # seq 1 is in Postgres already; what comes next continues above it
            _remember(job_id, 1)
            kept = Event(seq=1, job_id=job_id, type=items[0][0], data=items[0][1] or {}, ts=ts)
            return [kept, *_publish_postgres(job_id, items[1:], persist, exc)]
        return _publish_postgres(job_id, items, persist, exc)
    _remember(job_id, published[-1].seq)
    durable = [e for e in published if e.type in DURABLE_TYPES]
    if stored and first and published[0].seq == 1:
        durable = durable[1:] if durable and durable[0].seq == 1 else durable
    if durable and persist:
        if held and not defer and durable[-1].seq <= published[held - 1].seq:
            defer = True  # only held events are durable here: their copy is deferred, as when alone
        if defer:
            from switchyard.ledger_writer import ledger_writer

            ledger_writer().defer(persist_rows_sql(len(durable)), _copy_params(durable))
        else:
            _persist_retrying(durable)
    return published


# --- held events: a job's `running` goes out with its next event, in one call ------------------------------

# How long ``hold`` keeps an event back at most, waiting for the job's next event to go out with it.
HOLD_S = 0.01


@dataclass(eq=False)
class _Held:
    job_id: str
    items: list[tuple[str, dict[str, Any] | None]]
    due: float
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while it is being published
    done: bool = False


class _HeldEvents:
    """This process's held events (at most one per job) and the thread that publishes those due.

    ``cond`` guards ``by_job`` and the two flusher fields: ``flusher_pid`` is the process whose flusher
    thread runs (a forked child has none and starts its own), ``flusher_idle`` is True while that thread
    waits for a notify (nothing held for a second)."""

    def __init__(self) -> None:
        self.by_job: dict[str, _Held] = {}
        self.cond = threading.Condition()
        self.flusher_pid: int | None = None
        self.flusher_idle = False

    def hold(self, job_id: str, item: tuple[str, dict[str, Any] | None], linger_s: float) -> None:
        """Keep ``item`` back as the job's held event, due in ``linger_s``; start or wake the flusher."""
        with self.cond:
            self.by_job[job_id] = _Held(job_id, [item], time.monotonic() + linger_s)
            if self.flusher_pid != os.getpid():  # none yet, or a forked child
                self.flusher_pid = os.getpid()
                self.flusher_idle = False
                threading.Thread(target=self.flush_loop, name="switchyard-held-events", daemon=True).start()
            elif self.flusher_idle:  # the flusher sleeps until told
                self.flusher_idle = False
                self.cond.notify()

    def take(self, job_id: str) -> _Held | None:
        """The job's held event, locked for its publisher; ``None`` once another thread has published it
        (after waiting for that thread: the caller's own event must not overtake it)."""
        head = self.by_job.get(job_id)
        if head is None:
            return None
        head.lock.acquire()
        if head.done:
            head.lock.release()
            return None
        return head

    def release(self, head: _Held) -> None:
        """After ``take``: mark ``head`` published, forget it, and let the threads waiting in ``take`` on."""
        head.done = True
        with self.cond:
            if self.by_job.get(head.job_id) is head:
                del self.by_job[head.job_id]
        head.lock.release()

    def flush_loop(self) -> None:
        # Polls every HOLD_S while events are being held (no wake-up per hold: in a busy worker each one
        # costs a GIL hand-off), and sleeps until the next hold after a second with none.
        idle_since = time.monotonic()
        while True:
            with self.cond:
                now = time.monotonic()
                if self.by_job:
                    idle_since = now
                elif now - idle_since > 1.0:
                    self.flusher_idle = True
                    self.cond.wait()
                    continue
                due = [h.job_id for h in self.by_job.values() if h.due <= now]
            for job_id in due:
                try:
                    release_held(job_id)
                except Exception:  # Redis and Postgres both unreachable: this `running` is lost, not the job
                    log.exception("publishing the held event of job %s failed", job_id)
            time.sleep(HOLD_S)

    def reset_after_fork(self) -> None:
        self.cond = threading.Condition()
        self.by_job.clear()  # the parent's jobs: not this process's to publish
        self.flusher_idle = False


_held_events = _HeldEvents()


def hold(job_id: str, type: str, data: dict[str, Any] | None = None, *, linger_s: float = HOLD_S) -> None:
    """Publish one event of a job with the job's next one, in one call, or alone after ``linger_s``.

    For a job's `running` status (runner._claim): a short job's first event (a progress) carries it,
    which saves a round trip to Redis per job. Order is kept: any publish of the same job
    in this process sends it first (same call), a new job's first event (``first=True``: a sub-job the
    held job made) waits until every held event is out, and ``release_held`` sends it at once. Its
    Postgres copy follows the call that carries it (deferred when published alone). A process killed
    while it holds the event never publishes it: that attempt ends without an `end` either, and the
    job runs again (its new attempt publishes its own `running`)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; expected one of {sorted(EVENT_TYPES)}")
    release_held(job_id)  # one held event per job
    _held_events.hold(job_id, (type, data), linger_s)


def release_held(job_id: str | None = None) -> None:
    """Publish now what this process holds back: ``job_id``'s event, or every job's."""
    for key in [job_id] if job_id is not None else list(_held_events.by_job):
        head = _held_events.take(key)
        if head is None:
            continue
        try:
            _publish_now(key, head.items, True, False, False, True, None)
        finally:
            _held_events.release(head)


os.register_at_fork(after_in_child=_held_events.reset_after_fork)
atexit.register(release_held)


REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
BACKENDS_DOWN = (*REDIS_DOWN, psycopg.OperationalError, psycopg_pool.PoolTimeout)
# After Redis lost a job's counter, its next seq starts this far above the last one Postgres knows:
# the events in between (non-durable types, kept in Redis only) are gone, and a live subscriber may
# have seen their seqs; numbers must never repeat. A subscriber treats the jump as a gap it cannot fill.
SEQ_JUMP_AFTER_LOSS = 1_000_000
# How long a subscriber waits for Redis to confirm its subscription before it replays anyway.
SUBSCRIBE_CONFIRM_S = 2.0
# Per process: the last seq published per job (bounded), and floors owed to Redis after an outage.
_last_seq: dict[str, int] = {}
_floors: dict[str, str] = {}
_LAST_SEQ_MAX = 10_000

# Postgres's durable copy of events (table job_events, owned here).
MAX_SEQ_SQL = "SELECT max(seq) AS seq FROM job_events WHERE job_id = %s"
PERSIST_EVENTS_SQL = (
    "INSERT INTO job_events (job_id, seq, type, data, ts) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)
APPEND_EVENT_SQL = (
    "INSERT INTO job_events (job_id, seq, type, data, ts)"
    " SELECT %(id)s, greatest(coalesce(max(seq), 0), %(known)s) + 1, %(type)s, %(data)s, %(ts)s"
    " FROM job_events WHERE job_id = %(id)s ON CONFLICT DO NOTHING RETURNING seq"
)

def persist_rows_sql(n: int) -> str:
    """``PERSIST_EVENTS_SQL`` for ``n`` events in one statement (a deferred copy is one write of the group
    commit). Rows of plain parameters: cheaper to send than arrays, and a job publishes 1 to 3 at a time,
    so the few shapes stay prepared."""
    return ("INSERT INTO job_events (job_id, seq, type, data, ts) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s)"] * n) + " ON CONFLICT DO NOTHING")
DURABLE_EVENTS_SQL = "SELECT seq, type, data, ts FROM job_events WHERE job_id = %s AND seq > %s ORDER BY seq"
DURABLE_EVENTS_BEFORE_SQL = """
SELECT seq, type, data, ts FROM job_events
WHERE job_id = %(job_id)s AND type = ANY(%(types)s) AND seq < %(before)s
ORDER BY seq DESC LIMIT %(limit)s
"""


def _copy_params(durable: list[Event]) -> list[Any]:
    return [v for e in durable for v in (e.job_id, e.seq, e.type, json.dumps(e.data, default=str), e.ts)]


def _publish_redis(job_id: str, items: list[tuple[str, dict[str, Any] | None]], start: str,
                   minimum: str, ts: float) -> list[Event] | None:
    global _script
    settings = get_settings()
    client = get_redis()
    if _script is None or _script.registered_client is not client:
        _script = client.register_script(_PUBLISH_LUA)
    args: list[Any] = [job_id, repr(ts), settings.event_log_maxlen, settings.event_log_ttl_s, start,
                       minimum]
    for type, data in items:
        args += [type, json.dumps(data or {}, separators=(",", ":"), default=str),
                 "1" if type in GLOBAL_TYPES else "0"]
    keys = [constants.job_seq_key(job_id), constants.job_log_stream(job_id), constants.job_channel(job_id),
            constants.JOBS_CHANNEL]
    raw = _script(keys=keys, args=args)
    return None if raw is None else [Event.from_json(r) for r in raw]


def _remember(job_id: str, seq: int) -> None:
    if len(_last_seq) >= _LAST_SEQ_MAX:
        _last_seq.pop(next(iter(_last_seq)))
    _last_seq[job_id] = seq


def _seq_floor(job_id: str, persist: bool) -> int:
    """Where a job's counter resumes when Redis has none: 0 for a job with no events anywhere, else past
    every seq it may have had (Postgres's durable copy, this process's memory) plus a safety jump."""
    known = _last_seq.get(job_id, 0)
    if persist:
        from switchyard.db import connection

        with connection() as conn:
            row = conn.execute(MAX_SEQ_SQL, (job_id,)).fetchone()
        known = max(known, row["seq"] or 0)
    return known + SEQ_JUMP_AFTER_LOSS if known else 0


def _publish_postgres(job_id: str, items: list[tuple[str, dict[str, Any] | None]], persist: bool,
                      exc: Exception) -> list[Event]:
    """Redis is down: append the durable events to Postgres's copy (seq after every one this process or
    Postgres knows), drop the rest. Returns what was kept (a dropped event comes back with seq 0)."""
    from switchyard.db import connection

    log.warning("Redis unreachable (%s): job %s's %s kept in Postgres only", exc, job_id,
                [t for t, _ in items])
    out: list[Event] = []
    ts = time.time()
    for type, data in items:
        if type not in DURABLE_TYPES or not persist:
            out.append(Event(seq=0, job_id=job_id, type=type, data=data or {}, ts=ts))
            continue
        with connection() as conn:
            # One statement picks the next seq and inserts; a concurrent writer's conflict is retried.
            while True:
                row = conn.execute(
                    APPEND_EVENT_SQL,
                    {"id": job_id, "known": _last_seq.get(job_id, 0), "type": type,
                     "data": json.dumps(data or {}, default=str), "ts": ts},
                ).fetchone()
                if row is not None:
                    break
        event = Event(seq=row["seq"], job_id=job_id, type=type, data=data or {}, ts=ts)
        _remember(job_id, event.seq)
        # The next publish through Redis must continue above this seq, even if Redis kept its counter.
        _floors[job_id] = str(event.seq)
        out.append(event)
    return out


def _persist_retrying(durable: list[Event]) -> None:
    """The Postgres copy, retried through a Postgres restart (up to ``ledger_retry_s``): an event that
    only Redis holds dies with the next Redis restart, and a subscriber would wait for it forever."""
    deadline = time.monotonic() + get_settings().ledger_retry_s
    delay = 0.2
    while True:
        try:
            return _persist(durable)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("keeping events of job %s in Postgres failed (%s); retrying", durable[0].job_id, exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _persist(durable: list[Event]) -> None:
    from switchyard.db import connection

    # Not durable: Redis holds the live log; this copy only has to outlive Redis's trimming. One
    # statement for all of them: executemany would go through a pipeline (enter, sync, exit), which
    # costs the worker more CPU than the statement itself for a job's two final events.
    with connection(durable=False) as conn:
        for start in range(0, len(durable), _PERSIST_CHUNK):  # Postgres takes at most 65535 parameters
            chunk = durable[start:start + _PERSIST_CHUNK]
            conn.execute(persist_rows_sql(len(chunk)), _copy_params(chunk))


_PERSIST_CHUNK = 1000


def replay(job_id: str, after_seq: int = 0) -> list[Event]:
    """Every logged event with ``seq > after_seq``, in order: the Redis log, else Postgres's copy (alone
    while Redis is down)."""
    try:
        logged = _logged(get_redis().xrange(constants.job_log_stream(job_id)))
    except REDIS_DOWN:
        logged = []
    if _incomplete(logged, after_seq):
        logged = _merged(logged, _durable_events(job_id, after_seq))
    return [e for e in logged if e.seq > after_seq]


async def areplay(job_id: str, after_seq: int = 0) -> list[Event]:
    """``replay`` for asyncio code (the API's streams)."""
    import anyio.to_thread

    from switchyard.redis_conn import get_async_redis

    try:
        logged = _logged(await get_async_redis().xrange(constants.job_log_stream(job_id)))
    except REDIS_DOWN:
        logged = []
    if _incomplete(logged, after_seq):
        durable = await anyio.to_thread.run_sync(_durable_events, job_id, after_seq)
        logged = _merged(logged, durable)
    return [e for e in logged if e.seq > after_seq]


def _logged(entries: list) -> list[Event]:
    return [Event.from_json(fields[b"e"]) for _id, fields in entries]


def _incomplete(logged: list[Event], after_seq: int) -> bool:
    # Trimmed or expired in Redis, or with a hole (events kept in Postgres only while Redis was down,
    # or a counter that jumped after Redis lost it): the durable events from Postgres fill what they can.
    if not logged or logged[0].seq > after_seq + 1:
        return True
    return any(later.seq - earlier.seq > 1 for earlier, later in itertools.pairwise(logged))


def _merged(logged: list[Event], durable: list[Event]) -> list[Event]:
    seen = {e.seq for e in logged}
    return sorted([e for e in durable if e.seq not in seen] + logged, key=lambda e: e.seq)


def _durable_events(job_id: str, after_seq: int) -> list[Event]:
    from switchyard.db import connection

    with connection() as conn:
        rows = conn.execute(DURABLE_EVENTS_SQL, (job_id, after_seq)).fetchall()
    return [Event(seq=r["seq"], job_id=job_id, type=r["type"], data=r["data"], ts=r["ts"]) for r in rows]


def durable_events_before(job_id: str, types: list[str], before_seq: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` of a job's durable events of ``types`` with seq below ``before_seq``, newest first
    (rows of seq, type, data, ts: a paged listing such as the fine-tuning API's)."""
    from switchyard.db import connection

    with connection() as conn:
        return conn.execute(DURABLE_EVENTS_BEFORE_SQL, {"job_id": job_id, "types": types, "before": before_seq,
                                                        "limit": limit}).fetchall()


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
    channel = constants.job_channel(job_id).encode()
    pubsub = _open_pubsub(job_id)
    cursor = _Cursor(after_seq)
    try:
        yield from cursor.fresh(_replay_or_nothing(job_id, cursor.last))
        waited = 0.0
        while not cursor.done:
            message = None
            if pubsub is None:  # Redis is down: read Postgres's copy until it is back
                time.sleep(poll_s)
                pubsub = _open_pubsub(job_id)
            else:
                try:
                    message = pubsub.get_message(timeout=poll_s)
                except REDIS_DOWN:  # redis-py's own reconnect attempts gave up
                    _close_quietly(pubsub)
                    pubsub = None
            if message is None:
                waited += poll_s
                # Quiet channel: the log may hold what pub/sub dropped (a reconnect, say).
                batch = cursor.fresh(_replay_or_nothing(job_id, cursor.last))
                if not batch and timeout is not None and waited >= timeout:
                    raise TimeoutError(f"no event for job {job_id} in {timeout}s")
            else:
                if message["channel"] != channel:  # a reused connection's earlier channel (_open_pubsub)
                    continue
                event = Event.from_json(message["data"])
                batch = cursor.fresh(_replay_or_nothing(job_id, cursor.last) if cursor.is_gap(event) else [event])
            if batch:
                waited = 0.0
                yield from batch
    finally:
        if pubsub is not None:
            _release_pubsub(pubsub)


def _replay_or_nothing(job_id: str, after_seq: int) -> list[Event]:
    """``replay`` for a subscriber: nothing yet while Redis and Postgres are down (a restart); the
    subscriber has not advanced, so it asks again and misses nothing."""
    try:
        return replay(job_id, after_seq)
    except BACKENDS_DOWN:
        return []


async def _areplay_or_nothing(job_id: str, after_seq: int) -> list[Event]:
    try:
        return await areplay(job_id, after_seq)
    except BACKENDS_DOWN:
        return []


def _open_pubsub(job_id: str):  # -> redis.client.PubSub | None
    """A pub/sub subscribed to the job's channel, or ``None`` while Redis cannot be reached.

    Returns once Redis has confirmed the subscription: the replay that follows is sent on another
    connection, and only a confirmed subscription guarantees that an event published after the replay
    read the log arrives live (else an `end` in that window would wait for the quiet-channel poll).

    The connection is one a finished subscriber of this process gave back (``_release_pubsub``) when there
    is one: opening a fresh one per subscriber cost a TCP connect and redis-py's handshake (HELLO, CLIENT
    SETINFO) on every job a producer waits for. What the earlier subscriber's channel still had in flight
    arrives before this subscription's confirmation and is dropped with it (``_confirmed``).
    """
    pubsub = _idle_pubsub()
    if pubsub is None:
        pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(constants.job_channel(job_id))
        _confirmed(pubsub, constants.job_channel(job_id).encode())
    except REDIS_DOWN:
        _close_quietly(pubsub)
        return None
    return pubsub


# Per process: subscribed-to-nothing pub/sub connections, for the next subscriber (bounded).
_idle: PerProcess[list] = PerProcess()
_IDLE_MAX = 16


def _idle_list() -> list:
    return _idle.get("pubsubs", list)


def _idle_pubsub():  # -> redis.client.PubSub | None
    idle = _idle_list()
    client = get_redis()
    while True:
        try:
            pubsub = idle.pop()  # list.pop is atomic: concurrent subscribers never share one
        except IndexError:
            return None
        if pubsub.connection_pool is client.connection_pool and pubsub.connection is not None:
            return pubsub
        _close_quietly(pubsub)  # another client's (settings changed), or its connection was dropped


def _release_pubsub(pubsub) -> None:
    """Unsubscribe (the reply is read by the next user, see ``_open_pubsub``) and keep the connection for
    the next subscriber of this process; close it if Redis failed or enough are kept already."""
    idle = _idle_list()
    if len(idle) >= _IDLE_MAX or pubsub.connection is None:
        _close_quietly(pubsub)
        return
    try:
        pubsub.unsubscribe()
    except REDIS_DOWN:
        _close_quietly(pubsub)
        return
    idle.append(pubsub)


def _confirmed(pubsub, channel: bytes) -> None:
    """Read the subscribe reply off the pub/sub connection (Redis sends it before any message), dropping
    what a reused connection still held of its earlier channel."""
    pubsub.ignore_subscribe_messages = False
    try:
        deadline = time.monotonic() + SUBSCRIBE_CONFIRM_S
        while time.monotonic() < deadline:  # past it: replay and the quiet-channel poll cover the window
            reply = pubsub.get_message(timeout=SUBSCRIBE_CONFIRM_S)
            if reply is not None and reply["type"] == "subscribe" and reply["channel"] == channel:
                return
    finally:
        pubsub.ignore_subscribe_messages = True


async def _aconfirmed(pubsub) -> None:
    pubsub.ignore_subscribe_messages = False
    try:
        deadline = time.monotonic() + SUBSCRIBE_CONFIRM_S
        while time.monotonic() < deadline:
            reply = await pubsub.get_message(timeout=SUBSCRIBE_CONFIRM_S)
            if reply is not None and reply["type"] == "subscribe":
                return
    finally:
        pubsub.ignore_subscribe_messages = True


def _close_quietly(pubsub) -> None:
    with contextlib.suppress(*REDIS_DOWN):
        pubsub.close()


async def asubscribe(job_id: str, after_seq: int = 0, *, poll_s: float = 1.0) -> AsyncIterator[Event]:
    """``subscribe`` for asyncio code: no thread per subscriber. Closing the iterator (a client that
    went away) releases its Redis connection at once."""
    import asyncio

    from switchyard.redis_conn import get_async_redis

    async def open_pubsub():
        pubsub = get_async_redis().pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(constants.job_channel(job_id))
            await _aconfirmed(pubsub)
        except REDIS_DOWN:
            await pubsub.aclose()
            return None
        return pubsub

    pubsub = await open_pubsub()
    cursor = _Cursor(after_seq)
    try:
        for event in cursor.fresh(await _areplay_or_nothing(job_id, cursor.last)):
            yield event
        while not cursor.done:
            message = None
            if pubsub is None:  # Redis is down: read Postgres's copy until it is back
                await asyncio.sleep(poll_s)
                pubsub = await open_pubsub()
            else:
                try:
                    message = await pubsub.get_message(timeout=poll_s)
                except REDIS_DOWN:
                    await pubsub.aclose()
                    pubsub = None
            if message is None:
                batch = cursor.fresh(await _areplay_or_nothing(job_id, cursor.last))
            else:
                event = Event.from_json(message["data"])
                batch = cursor.fresh(await _areplay_or_nothing(job_id, cursor.last) if cursor.is_gap(event)
                                     else [event])
            for event in batch:
                yield event
    finally:
        if pubsub is not None:
            await pubsub.aclose()


# --- reads for /metrics (switchyard.api.health), on the caller's connection -------------------------------

# Every job's last event is durable (``end``, in job_events), so the highest durable seq of a job
# counts its events; live jobs may have newer, non-durable ones (tokens), read from Redis by the caller.
EVENTS_BY_KIND_SQL = """
SELECT j.kind, coalesce(sum(e.last_seq), 0) AS n FROM jobs j
JOIN (SELECT job_id, max(seq) AS last_seq FROM job_events GROUP BY job_id) e ON e.job_id = j.id
GROUP BY j.kind
"""
LIVE_JOBS_SQL = """
SELECT j.id, j.kind, coalesce((SELECT max(seq) FROM job_events e WHERE e.job_id = j.id), 0) AS last_seq
FROM jobs j WHERE j.status IN ('validating_files', 'queued', 'running')
"""


def durable_counts_by_kind(conn: Any) -> dict[str, int]:
    """Events of ended and live jobs by job kind, as far as Postgres's copy knows."""
    return {r["kind"]: int(r["n"]) for r in conn.execute(EVENTS_BY_KIND_SQL)}


def live_jobs_last_durable_seq(conn: Any) -> list[dict[str, Any]]:
    """Rows of id, kind, last_seq for jobs not yet ended."""
    return conn.execute(LIVE_JOBS_SQL).fetchall()
