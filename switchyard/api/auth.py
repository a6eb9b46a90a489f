"""API authentication: ``Authorization: Bearer <key>`` (or ``X-API-Key``) mapped to a tenant.

With ``SWITCHYARD_API_KEYS`` unset the API is open, but only to loopback clients; anything else gets
401. Webhooks (``/hooks``) authenticate by HMAC signature instead; health and metrics are open.
"""

from __future__ import annotations

import ipaddress

from fastapi import HTTPException, Request, status

from switchyard.config import get_settings

LOOPBACK_TENANT = "default"


def _is_loopback(host: str | None) -> bool:
    if host in (None, "testclient", "localhost"):
        return host is not None
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def current_tenant(request: Request) -> str:
    """FastAPI dependency: the caller's tenant, or 401."""
    keys = get_settings().api_key_tenants()
    if not keys:
        client = request.client.host if request.client else None
        if _is_loopback(client):
            return LOOPBACK_TENANT
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "API keys are not configured; the API only answers loopback clients")
    key = presented_key(request)
    tenant = keys.get(key or "")
    if tenant is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key",
                            headers={"WWW-Authenticate": "Bearer"})
    return tenant
