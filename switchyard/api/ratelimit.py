"""A per-caller rate limit for every route: a token bucket in Redis, shared by all API replicas.

Who is counted: a configured API key (by a digest of it, never the key), else a webhook source
(``Switchyard-Source`` on ``/hooks/...``; the header is not yet authenticated here, so a flood of
forged requests can drain that source's bucket; the signature still refuses them), else the client
address. Each caller may send ``SWITCHYARD_RATE_LIMIT_BURST`` requests at once and
``SWITCHYARD_RATE_LIMIT_PER_S`` per second after that; past it: 429 with ``Retry-After``. Health
probes and ``/metrics`` are not counted. ``RATE_LIMIT_PER_S=0`` turns the limit off. If Redis cannot
be reached the request passes (logged): a rate limiter must not take the API down with it.

The bucket is a short Lua script (one atomic round trip, Redis's clock for every replica): rate-limit
libraries for ASGI (slowapi, limits) offer fixed/moving windows rather than a token bucket, and
compute Retry-After from a window, not from the bucket's refill.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import Any

import redis.asyncio
import redis.exceptions
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from switchyard import constants
from switchyard.api.errors import error_response
from switchyard.config import Settings, get_settings
from switchyard.redis_conn import redis_url

log = logging.getLogger("switchyard.api.ratelimit")

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns {allowed 0|1, seconds until a token (string)}.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""

_WARN_EVERY_S = 30.0


def caller_identity(scope: Scope, settings: Settings) -> str:
    """``key:<digest>``, ``hook:<source>`` or ``ip:<address>`` (see module doc)."""
    headers = Headers(scope=scope)
    auth = headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key")
    if key and key in settings.api_key_tenants():
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]
    if scope["path"].startswith("/hooks/"):
        source = (headers.get("switchyard-source") or "default").lower()
        return "hook:" + (source if source.replace("-", "").replace("_", "").isalnum() and len(source) <= 64
                          else "invalid")
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


class RateLimit:
    """Pure ASGI middleware (see module doc)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._client: redis.asyncio.Redis | None = None
        self._script: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_at = 0.0

    def _bucket(self) -> Any:
        # An asyncio Redis client belongs to the event loop that made it (one per server process;
        # in-process test clients may run a loop per client).
        loop = asyncio.get_running_loop()
        if self._script is None or self._loop is not loop:
            self._loop = loop
            self._client = redis.asyncio.Redis.from_url(redis_url(), socket_timeout=1.0,
                                                        socket_connect_timeout=1.0)
            self._script = self._client.register_script(TOKEN_BUCKET_LUA)
        return self._script

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = get_settings()
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or settings.rate_limit_per_s <= 0:
            await self.app(scope, receive, send)
            return
        who = caller_identity(scope, settings)
        try:
            allowed, wait = await self._bucket()(keys=[constants.rate_limit_key(who)],
                                                  args=[settings.rate_limit_per_s, max(1, settings.rate_limit_burst)])
        except (redis.exceptions.RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_S:
                self._warned_at = now
                log.warning("rate limit not enforced: Redis unavailable (%s)", type(exc).__name__)
            await self.app(scope, receive, send)
            return
        if int(allowed):
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(float(wait)))
        kind = who.split(":", 1)[0]
        caller = {"key": "this API key", "hook": "this webhook source", "ip": "this client"}[kind]
        await error_response(429, "rate_limited", f"rate limit exceeded for {caller}; retry in {retry_after}s",
                             headers={"Retry-After": str(retry_after)})(scope, receive, send)
