"""A big ingest in parts, so the whole index pool embeds it at once.

Each child of the index pool computes with ``cores // concurrency`` threads (workers/signals.py), so one
ingest in one child would use a slice of the machine. A ``switchyard.index.ingest`` whose documents
weigh at least ``SWITCHYARD_INGEST_PART_MIN_CHARS`` per part is therefore split into up to the pool's
concurrency parts, balanced by size: sub-jobs ``switchyard.index.ingest_part``, each a job of its own
in the ledger (same tenant; producer ``switchyard.index``, idempotency key ``<parent>:part:<i>/<n>``,
``parent`` in its params), sent to the index queue.

The parent works too: it runs every part it can claim (last part first, as its siblings take the
queue's messages first part first) and waits for the others. So a pool of one still finishes (the
parent never waits on a queue only it could drain), and a part whose worker died is claimed again,
alone, once its lease expires (by the parent, or by whoever gets the reaper's re-send); the parts
already done stay done. A redelivered parent finds its parts by their keys instead of making new ones.

Progress: each part adds its counts to the parent's hash in Redis and publishes the sums as a
``progress`` event of the parent; the parent's result sums its parts' results.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from switchyard import constants, events, jobs
from switchyard.context import STOP_CHECK_INTERVAL_S, JobContext
from switchyard.db import connection
from switchyard.errors import JobCancelled, SwitchyardError
from switchyard.jobs import Job, JobStatus
from switchyard.redis_conn import get_redis
from switchyard.retrieval import sql
from switchyard.retrieval.config import get_retrieval_settings
from switchyard.retrieval.schemas import FileIn, IngestParams, IngestPartParams

log = logging.getLogger("switchyard.retrieval")

PART_TASK = "switchyard.index.ingest_part"
PART_PRODUCER = "switchyard.index"
# How long the parent sleeps between looks at parts other workers run (its own stop checks included).
WAIT_S = 0.1
PROGRESS_TTL_S = 7 * 24 * 3600
MAX_PARTS = 256  # more than any pool's concurrency; bounds the look-up of an earlier split
SUMMED = ("documents", "chunks_embedded", "chunks_unchanged", "chunks_deleted")


class PartFailed(SwitchyardError):
    """A part of a split ingest failed; the parent fails with its reason."""


def pool_concurrency() -> int:
    """How many jobs this worker's pool runs at once (1 outside a worker)."""
    value = os.environ.get(constants.POOL_CONCURRENCY_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def plan(params: IngestParams, concurrency: int | None = None) -> list[list[int]]:
    """Which items (documents, then files, by index) each part takes; one part means no split.

    Greedy by size, largest first into the lightest part (ties by index), so a plan is deterministic
    for a message and parts finish at about the same time.
    """
    weights = [len(d.text) for d in params.documents] + [_file_weight(f) for f in params.files]
    minimum = get_retrieval_settings().ingest_part_min_chars
    count = min(concurrency or pool_concurrency(), MAX_PARTS, sum(weights) // max(1, minimum), len(weights))
    if count < 2:
        return [list(range(len(weights)))]
    parts: list[list[int]] = [[] for _ in range(count)]
    load = [0] * count
    for item in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        lightest = min(range(count), key=lambda p: (load[p], p))
        parts[lightest].append(item)
        load[lightest] += weights[item]
    return [sorted(p) for p in parts]


def _file_weight(spec: FileIn) -> int:
    if spec.content is not None:
        return len(spec.content)
    if spec.content_base64 is not None:
        return len(spec.content_base64) * 3 // 4
    if spec.path is not None:
        try:
            return os.path.getsize(spec.path)  # only a weight: the part reads it under the file roots
        except OSError:
            return 0
    return 4096  # a URL: unknown until fetched


def part_params(params: IngestParams, items: Sequence[int], parent: str, index: int, count: int) -> dict[str, Any]:
    docs = len(params.documents)
    return IngestPartParams(
        collection=params.collection, model=params.model, chunk_tokens=params.chunk_tokens,
        chunk_overlap=params.chunk_overlap, parent=parent, part=index, parts=count,
        documents=[params.documents[i] for i in items if i < docs],
        files=[params.files[i - docs] for i in items if i >= docs],
    ).model_dump(mode="json", exclude_none=True)


def part_key(parent: str, index: int, count: int) -> str:
    return f"{parent}:part:{index}/{count}"


def ingest(params: IngestParams, ctx: JobContext) -> dict[str, Any]:
    """The documents and files of an ``index.ingest``: in parts when the message is big enough and the
    pool runs several jobs at once (or an earlier delivery of this job split it), else in one piece."""
    from switchyard.retrieval.ingest import ingest_documents, open_collection

    plan_ = plan(params) if ctx.job_id != JobContext.detached().job_id else [[]]  # no ledger row, no parts
    earlier = _earlier_split(ctx.job_id) if ctx.attempt > 1 else None
    if len(plan_) < 2 and earlier is None:
        return ingest_documents(params.collection, params.documents, tenant=ctx.tenant, ctx=ctx,
                                files=params.files, model=params.model, chunk_tokens=params.chunk_tokens,
                                chunk_overlap=params.chunk_overlap)
    if earlier is not None and earlier != len(plan_):
        plan_ = plan(params, earlier)
    # Created (or its model checked) once here, so the parts never race to create it.
    open_collection(ctx.tenant, params.collection, model=params.model, chunk_tokens=params.chunk_tokens,
                    chunk_overlap=params.chunk_overlap)
    return run_in_parts(params, ctx, plan_)


def _earlier_split(parent: str) -> int | None:
    """How many parts an earlier delivery of ``parent`` split it into (its worker may have had another
    concurrency); ``None`` if it did not."""
    first_keys = [part_key(parent, 0, n) for n in range(2, MAX_PARTS + 1)]
    with connection() as conn:
        row = conn.execute(sql.PART_KEYS, (PART_PRODUCER, first_keys)).fetchone()
    return None if row is None else int(row["idempotency_key"].rsplit("/", 1)[1])


def run_in_parts(params: IngestParams, ctx: JobContext, plan_: list[list[int]]) -> dict[str, Any]:
    """Record and send the parts (once per parent), run what this process can claim, wait for the rest;
    returns the summed result."""
    parts = _record_parts(params, ctx, plan_)
    ctx.message(f"split into {len(parts)} parts", parts=[p.id for p in parts])
    total_docs = len(params.documents) + len(params.files)
    ctx.progress(0, total_docs, chunks_done=0, chunks_total=None, parts=len(parts), parts_done=0)
    try:
        ended = _drive(parts, ctx)
    except JobCancelled:
        _cancel(parts)
        raise
    failed = [p for p in ended if p.status is not JobStatus.SUCCEEDED]
    if failed:
        if any(p.status is JobStatus.CANCELLED for p in failed):
            _cancel(parts)
            raise JobCancelled(ctx.job_id)
        first = failed[0]
        raise PartFailed(f"part {first.params.get('part')} ({first.id}) failed: "
                         f"{(first.error or {}).get('message', first.error)}")
    result: dict[str, Any] = {key: sum(p.result[key] for p in ended) for key in SUMMED}
    result["failed"] = [f for p in ended for f in p.result["failed"]]
    chunks = result["chunks_embedded"] + result["chunks_unchanged"]
    ctx.progress(total_docs, total_docs, chunks_done=chunks, chunks_total=chunks, parts=len(parts),
                 parts_done=len(parts))
    return result


def _record_parts(params: IngestParams, ctx: JobContext, plan_: list[list[int]]) -> list[Job]:
    from switchyard.dispatch import send

    count = len(plan_)
    items = [jobs.NewJob(PART_TASK, part_params(params, p, ctx.job_id, i, count), part_key(ctx.job_id, i, count))
             for i, p in enumerate(plan_)]
    made = jobs.create_many(items, producer=PART_PRODUCER, tenant=ctx.tenant)
    new = [job for job, created in made if created]
    for job in new:
        events.publish(job.id, "status", {"status": job.status.value, "source": PART_PRODUCER,
                                          "parent": ctx.job_id}, first=True)
        send(job)
    if new:
        jobs.mark_dispatched_many([job.id for job in new])
    return [job for job, _ in made]


def _drive(parts: list[Job], ctx: JobContext) -> list[Job]:
    """Run the parts this process can claim, newest first, until every part has ended."""
    from switchyard.runner import run_job

    pending = {p.id: p for p in parts}
    ended: dict[str, Job] = {}
    while pending:
        ctx.raise_if_stopped()
        with connection() as conn:
            rows = conn.execute(sql.PARTS_STATE, (list(pending),)).fetchall()
        if missing := set(pending) - {row["id"] for row in rows}:
            raise PartFailed(f"parts {sorted(missing)} are gone from the ledger")
        claimable = []
        for row in rows:
            status = JobStatus(row["status"])
            if status.is_terminal:
                ended[row["id"]] = jobs.get(row["id"])
                pending.pop(row["id"], None)
            elif row["claimable"]:
                claimable.append(pending[row["id"]])
        if not pending:
            break
        if claimable:
            part = max(claimable, key=lambda p: p.params.get("part", 0))
            run_job(_delivery(part, ctx), ingest_part_job)  # ends at once if a sibling claimed it first
            continue
        ctx.sleep(WAIT_S)
    return [ended[p.id] for p in parts]


def _delivery(part: Job, ctx: JobContext) -> Any:
    from switchyard.dispatch import send
    from switchyard.runner import Delivery

    return Delivery(task=PART_TASK, job_id=part.id, kwargs=part.params, producer=part.producer,
                    tenant=part.tenant, worker=ctx.worker, redeliver=lambda: send(part))


def _cancel(parts: list[Job]) -> None:
    from switchyard.dispatch import cancel

    for part in parts:
        try:
            cancel(part.id)
        except Exception:  # one part's cancel failing must not hide the parent's own outcome
            log.exception("could not cancel part %s", part.id)


# --- the part's side ----------------------------------------------------------------------------------

class PartContext(JobContext):
    """A part's own context whose progress also counts toward its parent's, and which stops when the
    parent is cancelled."""

    def __init__(self, ctx: JobContext, parent: str, part: int):
        self.__dict__.update(ctx.__dict__)
        self.parent = parent
        self.part = part
        self._parent_next_check = 0.0

    def progress(self, done: float, total: float | None = None, **extra: Any) -> None:
        super().progress(done, total, **extra)
        if not self._publish:
            return
        key = constants.ingest_parts_key(self.parent)
        mine = {"done": done, "total": total, "chunks_done": extra.get("chunks_done", 0),
                "chunks_total": extra.get("chunks_total", 0)}
        pipe = get_redis().pipeline(transaction=True)
        pipe.hset(key, str(self.part), json.dumps(mine))
        pipe.expire(key, PROGRESS_TTL_S)
        pipe.hgetall(key)
        reported = [json.loads(v) for v in pipe.execute()[-1].values()]
        sums = {name: sum(r[name] or 0 for r in reported) for name in mine}
        events.publish(self.parent, "progress", {
            **sums, "fraction": round(sums["done"] / sums["total"], 4) if sums["total"] else None,
            "parts_reporting": len(reported)})

    def stop_reason(self) -> type[Exception] | None:
        reason = super().stop_reason()
        now = time.monotonic()
        if reason is None and self._publish and now >= self._parent_next_check:
            self._parent_next_check = now + STOP_CHECK_INTERVAL_S
            if get_redis().exists(constants.cancel_key(self.parent)):
                self._stop = reason = JobCancelled
        return reason


def ingest_part_job(params: IngestPartParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.index.ingest_part``: one part of a split ``index.ingest`` (sent by its parent)."""
    from switchyard.retrieval.ingest import ingest_documents

    parent = jobs.find(params.parent)
    # Resolved within the job's tenant: a part only ever reports to a parent ingest of its own tenant.
    if parent is None or parent.tenant != ctx.tenant or parent.kind != "switchyard.index.ingest":
        raise PartFailed(f"no index.ingest job {params.parent!r} for tenant {ctx.tenant!r}")
    return ingest_documents(params.collection, params.documents, tenant=ctx.tenant,
                            ctx=PartContext(ctx, params.parent, params.part), files=params.files,
                            model=params.model, chunk_tokens=params.chunk_tokens,
                            chunk_overlap=params.chunk_overlap)

