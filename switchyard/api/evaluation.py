"""Evaluation over HTTP: an eval job's per-item scores, comparisons, and human review.

Every data route is behind ``current_tenant`` and resolves jobs and reviews within that tenant
(another tenant's answers 404, as a missing one does). The rating page itself is a static shell with
no data in it: its script fetches the items and posts ratings with the API key the rater enters.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from switchyard.api.auth import current_tenant
from switchyard.api.errors import ERROR_RESPONSES, APIError

router = APIRouter(prefix="/eval", tags=["evaluation"], responses=ERROR_RESPONSES)

Tenant = Annotated[str, Depends(current_tenant)]


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    score: int
    comment: str | None = Field(default=None, max_length=2000)


class RatingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: str = Field(min_length=1, max_length=100, description="who rates (a name within the tenant)")
    ratings: list[Rating] = Field(min_length=1, max_length=1000)


def _not_found(message: str) -> APIError:
    return APIError(status.HTTP_404_NOT_FOUND, "not_found", message)


@router.get("/jobs/{job_id}/items", summary="An eval job's per-item scores, in dataset order")
def job_items(job_id: str, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    from switchyard.evaluation import store
    from switchyard.evaluation.compare import EvalJobNotFound, eval_job

    try:
        job = eval_job(job_id, tenant)
    except EvalJobNotFound as exc:
        raise _not_found(str(exc)) from None
    rows = store.load_items(job.id)
    page = rows[offset: offset + limit]
    return {"job_id": job.id, "status": job.status.value, "aggregate": (job.result or {}).get("aggregate"),
            "total": len(rows), "data": [{"id": r["item_id"], "prediction": r["prediction"], "scores": r["scores"],
                                          "errors": r["errors"]} for r in page]}


@router.get("/compare", summary="B − A per metric with paired bootstrap intervals and p-values")
def compare(tenant: Tenant, a: str, b: str, resamples: Annotated[int, Query(ge=100, le=10000)] = 1000,
            seed: int = 0, confidence: Annotated[float, Query(gt=0.5, lt=1)] = 0.95) -> dict[str, Any]:
    from switchyard.evaluation.compare import EvalJobNotFound, compare_jobs

    try:
        return compare_jobs(a, b, tenant=tenant, resamples=resamples, seed=seed, confidence=confidence).to_dict()
    except EvalJobNotFound as exc:
        raise _not_found(str(exc)) from None


@router.get("/reviews", summary="Human reviews, newest first")
def list_reviews(tenant: Tenant, review_status: Annotated[str | None, Query(alias="status")] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    from switchyard.evaluation import review

    return {"data": review.list_reviews(tenant, review_status, limit)}


@router.get("/reviews/{review_id}", summary="A review: progress, and agreement once complete")
def get_review(review_id: str, tenant: Tenant) -> dict[str, Any]:
    from switchyard.evaluation import review

    try:
        return review.get_review(review_id, tenant)
    except review.ReviewNotFound as exc:
        raise _not_found(str(exc)) from None


@router.get("/reviews/{review_id}/items", summary="The sampled items raters score")
def review_items(review_id: str, tenant: Tenant) -> dict[str, Any]:
    from switchyard.evaluation import review

    try:
        return {"review": review.get_review(review_id, tenant), "data": review.review_items(review_id, tenant)}
    except review.ReviewNotFound as exc:
        raise _not_found(str(exc)) from None


@router.post("/reviews/{review_id}/ratings", summary="Submit a rater's scores (a repeat replaces theirs)")
def submit_ratings(review_id: str, tenant: Tenant, body: RatingsIn) -> dict[str, Any]:
    from switchyard.evaluation.review import InvalidRating, ReviewNotFound, submit

    try:
        return submit(review_id, tenant, body.rater, [r.model_dump() for r in body.ratings])
    except ReviewNotFound as exc:
        raise _not_found(str(exc)) from None
    except InvalidRating as exc:
        raise APIError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_rating", str(exc)) from None


@router.get("/reviews/{review_id}/page", response_class=HTMLResponse, summary="The rating page (HTML)")
def review_page(review_id: str) -> HTMLResponse:
    from switchyard.evaluation.page import render

    return HTMLResponse(render(review_id))
