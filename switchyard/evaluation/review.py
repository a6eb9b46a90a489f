"""Human review of an eval job's sample: raters fetch items, submit scores, and agreement is computed.

How it waits without holding a worker: the eval job ends ``succeeded`` as soon as its automatic
scores are stored, with ``result.review = {"id", "status": "pending", ...}``. The ledger has no
"waiting for humans" status, and a job that stayed ``running`` would need a lease (a worker) for days.
The review is its own record (``eval_reviews``): every rating is one statement, and the submission that
gives the last sampled item its ``raters``-th rating completes the review (a guarded UPDATE, so exactly
once) with Krippendorff's alpha (the ``krippendorff`` package, ordinal level) between raters.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from switchyard.db import connection
from switchyard.evaluation import store
from switchyard.evaluation.schemas import ReviewSpec


class ReviewNotFound(LookupError):
    """No review of that id for this tenant."""


class InvalidRating(ValueError):
    """A rating names an item outside the review's sample or a score off its scale."""


def open_review(job_id: str, tenant: str, spec: ReviewSpec, candidates: Sequence[str]) -> dict[str, Any]:
    """Sample ``spec.sample`` of ``candidates`` (seeded) and record a pending review for the job."""
    ids = list(candidates)
    sample = sorted(random.Random(spec.seed).sample(ids, min(spec.sample, len(ids))), key=ids.index)
    with connection() as conn:
        row = conn.execute(store.INSERT_REVIEW_SQL, {"id": f"rev-{secrets.token_hex(8)}", "job_id": job_id,
                                                     "tenant": tenant, "spec": Jsonb(spec.model_dump()),
                                                     "item_ids": sample}).fetchone()
    return {"id": row["id"], "status": row["status"], "items": len(row["item_ids"]), "raters": spec.raters,
            "page": f"/eval/reviews/{row['id']}/page"}


def get_review(review_id: str, tenant: str) -> dict[str, Any]:
    with connection() as conn:
        row = conn.execute(store.REVIEW_SQL, {"id": review_id, "tenant": tenant}).fetchone()
        if row is None:
            raise ReviewNotFound(f"no review {review_id}")
        ratings = conn.execute(store.RATINGS_SQL, (review_id,)).fetchall()
    return _describe(row, ratings)


def list_reviews(tenant: str, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    with connection() as conn:
        rows = conn.execute(store.LIST_REVIEWS_SQL, {"tenant": tenant, "status": status, "limit": limit}).fetchall()
    return [_describe(row, None) for row in rows]


def _describe(row: dict[str, Any], ratings: list[dict[str, Any]] | None) -> dict[str, Any]:
    out = {"id": row["id"], "job_id": row["job_id"], "status": row["status"], "spec": row["spec"],
           "items": len(row["item_ids"]), "agreement": row["agreement"], "created_at": row["created_at"].isoformat(),
           "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None}
    if ratings is not None:
        counts = {i: 0 for i in row["item_ids"]}
        for r in ratings:
            counts[r["item_id"]] = counts.get(r["item_id"], 0) + 1
        needed = row["spec"]["raters"]
        out["ratings"] = len(ratings)
        out["items_complete"] = sum(1 for c in counts.values() if c >= needed)
    return out


def review_items(review_id: str, tenant: str) -> list[dict[str, Any]]:
    """What a rater sees for each sampled item: prompt/question, prediction, references, image."""
    with connection() as conn:
        row = conn.execute(store.REVIEW_SQL, {"id": review_id, "tenant": tenant}).fetchone()
    if row is None:
        raise ReviewNotFound(f"no review {review_id}")
    ids = row["item_ids"]
    rows = {r["item_id"]: r for r in store.load_items(row["job_id"], ids)}
    keep = ("prompt", "question", "references", "answers", "image", "contexts")
    return [{"id": i, "prediction": rows[i]["prediction"], **{k: v for k, v in rows[i]["item"].items() if k in keep}}
            for i in ids if i in rows]


def submit(review_id: str, tenant: str, rater: str, ratings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Record ``rater``'s ratings (a repeat replaces theirs); completes the review when all are in."""
    with connection() as conn:
        row = conn.execute(store.REVIEW_SQL, {"id": review_id, "tenant": tenant}).fetchone()
        if row is None:
            raise ReviewNotFound(f"no review {review_id}")
        spec, sample = row["spec"], set(row["item_ids"])
        for rating in ratings:
            if rating["item_id"] not in sample:
                raise InvalidRating(f"item {rating['item_id']!r} is not in review {review_id}")
            if not spec["scale_min"] <= rating["score"] <= spec["scale_max"]:
                raise InvalidRating(f"score {rating['score']} is outside {spec['scale_min']}..{spec['scale_max']}")
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(store.UPSERT_RATING_SQL, [
                {"review_id": review_id, "item_id": r["item_id"], "rater": rater, "score": r["score"],
                 "comment": r.get("comment")} for r in ratings])
        all_ratings = conn.execute(store.RATINGS_SQL, (review_id,)).fetchall()
        counts: dict[str, int] = {}
        for r in all_ratings:
            counts[r["item_id"]] = counts.get(r["item_id"], 0) + 1
        if row["status"] == "pending" and all(counts.get(i, 0) >= spec["raters"] for i in sample):
            conn.execute(store.COMPLETE_REVIEW_SQL, {"id": review_id,
                                                     "agreement": Jsonb(agreement(all_ratings, row["item_ids"]))})
    return get_review(review_id, tenant)


def agreement(ratings: Sequence[dict[str, Any]], item_ids: Sequence[str]) -> dict[str, Any]:
    """Krippendorff's alpha (ordinal; missing ratings allowed) and the mean rating per item."""
    import krippendorff
    import numpy as np

    raters = sorted({r["rater"] for r in ratings})
    matrix = np.full((len(raters), len(item_ids)), np.nan)
    for r in ratings:
        matrix[raters.index(r["rater"]), list(item_ids).index(r["item_id"])] = r["score"]
    scores = [r["score"] for r in ratings]
    alpha: float | None = None
    note = None
    if len(raters) < 2:
        note = "one rater: agreement is undefined"
    elif len(set(scores)) < 2:
        note = "every rating is the same value: alpha is undefined (no variation to agree on)"
    else:
        alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal"))
    per_item = {i: float(np.nanmean(matrix[:, n])) for n, i in enumerate(item_ids)}
    out = {"krippendorff_alpha": alpha, "level": "ordinal", "raters": raters, "ratings": len(ratings),
           "mean_score": float(np.mean(scores)), "per_item_mean": per_item}
    if note:
        out["note"] = note
    return out
