"""Webhook signatures, as Stripe does them: ``Switchyard-Signature: t=<unix>,v1=<hex HMAC-SHA256>``.

The signed message is ``"<t>.<raw body>"``; the timestamp bounds replays to a tolerance window, and a
signature never verifies for a body or timestamp other than its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from switchyard.errors import SignatureError

HEADER = "Switchyard-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str | None, tolerance_s: int = 300,
           now: float | None = None) -> int:
    """Check a signature header; returns its timestamp, or raises ``SignatureError`` saying why."""
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("malformed signature header: no timestamp") from None
    candidates = parts.get("v1", [])
    if not candidates:
        raise SignatureError("malformed signature header: no v1 signature")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance window")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match")
    return timestamp
