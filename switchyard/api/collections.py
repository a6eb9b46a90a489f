"""Retrieval over HTTP: ``POST /collections/{name}/search`` (glue over ``switchyard.retrieval.search``).

The tenant is the caller's (API key; ``default`` on an open loopback API). A body ``tenant`` may only
repeat it (403 otherwise). A collection of another tenant answers 404, exactly as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from switchyard.api.auth import current_tenant
from switchyard.api.errors import APIError
from switchyard.retrieval.schemas import NAME_PATTERN, SearchRequest

router = APIRouter(tags=["collections"])

Tenant = Annotated[str, Depends(current_tenant)]


class SearchHit(BaseModel):
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    results: list[SearchHit]


@router.post("/collections/{name}/search", response_model=SearchResponse,
             summary="Search a collection (hybrid, vector or full-text), with metadata filters")
def search_collection(body: SearchRequest, tenant: Tenant,
                      name: str = Path(pattern=NAME_PATTERN)) -> dict[str, Any]:
    # Sync route: FastAPI runs it in a worker thread (the query embedding and Postgres block).
    from switchyard.retrieval import CollectionNotFound, search
    from switchyard.retrieval.filters import FilterError

    if body.tenant and body.tenant != tenant:
        raise APIError(403, "forbidden", f"this caller is tenant {tenant!r}, not {body.tenant!r}")
    try:
        results = search(name, body.query, k=body.k, mode=body.mode, tenant=tenant, filter=body.filter)
    except CollectionNotFound as exc:
        raise APIError(404, "not_found", str(exc)) from None
    except FilterError as exc:
        raise APIError(422, "invalid_filter", str(exc), details=[{"loc": ["body", "filter"], "msg": str(exc),
                                                                   "type": "value_error"}]) from None
    return {"results": [r.to_dict() for r in results]}
