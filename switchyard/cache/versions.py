"""Collection versions: an answer cached against a collection is never served once the collection changed.

A cache whose namespace names a collection (``keys.namespace_for(tenant, purpose, collection)``: RAG
answers) keys every entry on the collection's current version as well: the Redis entry key ends in
``:{version}`` and the semantic layer's ``llm_key`` includes it. The index pool calls
``collection_changed`` after an ``index.ingest`` that changed anything or an ``index.delete``: it moves
the version, so entries made against the old one simply miss (in every process at once, with no scan),
and then purges them (``layered.invalidate``) so they stop taking memory.

A version is a random token, not a counter: if Redis evicts the version key (``allkeys-lru``), reading
it gives ``"0"`` and a later change gives a new token, never one an old entry was keyed on. The entries
made at ``"0"`` before the first change are dropped by that change's purge.

A hit on a collection namespace reads the version and the entry in one round trip (a Lua script), and
skips the in-process LRU, which could not see another process's change. Without Redis the version is
unknown, so such a lookup is a miss and nothing is stored.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from switchyard.cache import keys

log = logging.getLogger("switchyard.cache")

INITIAL = "0"

# KEYS[1] version key; ARGV[1] entry key without its version, ARGV[2] TTL to slide to ("" = no slide).
# Returns {version, value or false}. The entry key is built here, from the version just read: one round
# trip, and no chance of pairing an entry with another version. (Plain Redis; not for Redis Cluster,
# where a script must name every key it touches.)
GET_AT_VERSION = """
local v = redis.call('GET', KEYS[1]) or '0'
local k = ARGV[1] .. ':' .. v
if ARGV[2] ~= '' then
  return {v, redis.call('GETEX', k, 'EX', ARGV[2])}
end
return {v, redis.call('GET', k)}
"""

_scripts: dict[int, Any] = {}


def get_at_version(client: Any, prefix: str, scope: tuple[str, str], key: str,
                   slide_s: int | None = None) -> tuple[str, bytes | None]:
    """``(version, value)`` of the entry ``key`` at the collection's current version."""
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(GET_AT_VERSION)
    version, value = script(keys=[keys.version_key(prefix, *scope)], args=[key, slide_s or ""])
    return (version.decode() if isinstance(version, bytes) else version), (value or None)


def current(client: Any, prefix: str, scope: tuple[str, str]) -> str:
    value = client.get(keys.version_key(prefix, *scope))
    return value.decode() if value else INITIAL


def bump(client: Any, prefix: str, tenant: str, collection: str) -> str:
    """Move the collection to a new version; returns it."""
    version = uuid.uuid4().hex[:16]
    client.set(keys.version_key(prefix, tenant, collection), version)
    return version


def collection_changed(tenant: str, collection: str) -> dict[str, Any]:
    """Call after a collection's documents changed (ingest, re-index, delete): answers cached against it
    miss from now on, and are purged. Best effort: never raises (the index job succeeded either way)."""
    from switchyard.cache.backends import cache_redis
    from switchyard.cache.config import get_cache_settings

    out: dict[str, Any] = {"version": None}
    try:
        out["version"] = bump(cache_redis(), get_cache_settings().prefix, tenant, collection)
    except Exception as exc:  # Redis down: the version stays; say how to drop the entries by hand
        log.warning("LLM cache: could not move the version of collection %s/%s (%s: %s); answers cached "
                    "against it may be served until `switchyard cache clear --collection %s`",
                    tenant, collection, type(exc).__name__, exc, collection)
        return out
    try:
        from switchyard.cache.layered import invalidate

        out["purged"] = invalidate(namespace=tenant, collection=collection)
    except Exception as exc:  # e.g. an index image without the cache extra: the version alone protects
        log.info("LLM cache: stale entries of %s/%s not purged (%s: %s); they can no longer be served",
                 tenant, collection, type(exc).__name__, exc)
    return out
