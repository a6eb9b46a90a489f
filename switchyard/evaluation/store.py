"""Every statement on the eval tables (``migrations/0007_eval_scores_reviews.sql``), and thin helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from switchyard.db import connection

DELETE_ITEMS_SQL = "DELETE FROM eval_items WHERE job_id = %s"
INSERT_ITEM_SQL = """
INSERT INTO eval_items (job_id, item_id, position, prediction, scores, stats, errors, item)
VALUES (%(job_id)s, %(item_id)s, %(position)s, %(prediction)s, %(scores)s, %(stats)s, %(errors)s, %(item)s)
"""
ITEMS_SQL = """
SELECT item_id, position, prediction, scores, stats, errors, item FROM eval_items
WHERE job_id = %(job_id)s AND (%(ids)s::text[] IS NULL OR item_id = ANY(%(ids)s)) ORDER BY position
"""

INSERT_REVIEW_SQL = """
INSERT INTO eval_reviews (id, job_id, tenant, spec, item_ids)
VALUES (%(id)s, %(job_id)s, %(tenant)s, %(spec)s, %(item_ids)s)
ON CONFLICT (job_id) DO UPDATE SET spec = EXCLUDED.spec
RETURNING *
"""
REVIEW_SQL = "SELECT * FROM eval_reviews WHERE id = %(id)s AND tenant = %(tenant)s"
REVIEW_OF_JOB_SQL = "SELECT * FROM eval_reviews WHERE job_id = %(job_id)s"
LIST_REVIEWS_SQL = """
SELECT * FROM eval_reviews WHERE tenant = %(tenant)s AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC LIMIT %(limit)s
"""
UPSERT_RATING_SQL = """
INSERT INTO eval_ratings (review_id, item_id, rater, score, comment)
VALUES (%(review_id)s, %(item_id)s, %(rater)s, %(score)s, %(comment)s)
ON CONFLICT (review_id, item_id, rater) DO UPDATE SET score = EXCLUDED.score, comment = EXCLUDED.comment,
    created_at = now()
"""
RATINGS_SQL = "SELECT item_id, rater, score, comment FROM eval_ratings WHERE review_id = %s ORDER BY created_at"
# Guarded: only a pending review completes, once, whoever submits the last rating.
COMPLETE_REVIEW_SQL = """
UPDATE eval_reviews SET status = 'complete', agreement = %(agreement)s, completed_at = now()
WHERE id = %(id)s AND status = 'pending' RETURNING *
"""


def save_items(job_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Replace the job's per-item rows (a redelivered job writes them again, never twice)."""
    params = [{**row, "job_id": job_id, "scores": Jsonb(row["scores"]), "stats": Jsonb(row["stats"]),
               "errors": Jsonb(row["errors"]), "item": Jsonb(row["item"])} for row in rows]
    with connection() as conn, conn.transaction():
        conn.execute(DELETE_ITEMS_SQL, (job_id,))
        with conn.cursor() as cur:
            cur.executemany(INSERT_ITEM_SQL, params)


def load_items(job_id: str, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(ITEMS_SQL, {"job_id": job_id, "ids": list(ids) if ids is not None else None}).fetchall()
