"""One body-size limit and one JSON depth limit for every route, as ASGI middleware.

- Body size: ``SWITCHYARD_API_MAX_BODY`` bytes, counted while reading (a ``Content-Length`` over it is
  refused before reading; a chunked or lying sender is cut off at the limit) → 413. Multipart uploads to
  ``/v1/files`` get the fine-tune pool's ``max_file_bytes`` instead and are streamed to the route, not
  buffered. Routes with a tighter limit of their own (webhooks: ``WEBHOOK_MAX_BODY``) keep it.
- JSON depth: a body that parses as JSON and nests deeper than ``SWITCHYARD_API_MAX_JSON_DEPTH`` → 422.

Both answer in the API's one error shape (``switchyard.api.errors``). FastAPI's own ``max_body_size``
is not used: its 413 is a plain-text body that replaces any response once ``Content-Length`` is over.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchyard.api.errors import error_response
from switchyard.config import get_settings

# Multipart uploads that may be larger than API_MAX_BODY (the fine-tune pool's upload limit).
UPLOAD_PATHS = frozenset({"/v1/files"})


def upload_limit() -> int:
    from switchyard.finetune.config import get_finetune_settings  # pydantic only: no torch

    return max(get_settings().api_max_body, get_finetune_settings().max_file_bytes)


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0, ``{}`` and ``[]`` are 1), iteratively."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def json_depth_problem(body: bytes, max_depth: int) -> str | None:
    """Why ``body`` is nested too deeply, or ``None`` (also when it is not JSON: the route says so)."""
    if body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        value = json.loads(body)
    except RecursionError:  # deeper than the decoder recurses: far past any sane limit
        return f"JSON nested deeper than {max_depth} levels"
    except ValueError:
        return None
    depth = json_depth(value)
    return f"JSON nested {depth} levels deep; the limit is {max_depth}" if depth > max_depth else None


def _too_large(limit: int) -> Any:
    return error_response(413, "payload_too_large", f"body exceeds {limit} bytes")


class RequestLimits:
    """Pure ASGI middleware (see module doc). Settings are read per request, so tests can change them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = upload_limit() if multipart and scope["path"] in UPLOAD_PATHS else settings.api_max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if multipart:  # streamed to the route; counted on the way
            await self.app(scope, _counting(receive, limit), send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nobody to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            more = message.get("more_body", False)
        problem = json_depth_problem(bytes(body), settings.api_max_json_depth)
        if problem:
            await error_response(422, "invalid_request", problem,
                                 details=[{"loc": ["body"], "msg": problem, "type": "json_too_deep"}],
                                 )(scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body once, then the real channel (a streaming response listens for disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """Raises a 413 ``HTTPException`` inside the route once the body passes ``limit``: FastAPI lets it
    through its body parsing, and the app's handler answers in the error shape."""
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise HTTPException(413, f"body exceeds {limit} bytes")
        return message

    return counting
