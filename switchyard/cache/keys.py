"""Cache keys: what makes two LLM calls "the same call", and the Redis key layout.

LangChain hands a cache two strings: ``prompt`` (its ``dumps`` of the whole message list) and
``llm_string`` (the model's serialized config plus the call's parameters: tools, stop, temperature).
The exact key hashes both, inside a namespace (tenant + purpose), so another tool list, another
temperature or another tenant never shares an entry.

Redis layout (all under ``prefix``, default ``switchyard:cache``)::

    {prefix}:e:{namespace}:{model}:{hash}     exact entry (value: codec bytes), with a TTL
    {prefix}:e:{namespace}:{model}:{hash}:{v} exact entry of a collection namespace, at collection version v
    {prefix}:lock:{namespace}:{model}:{hash}  stampede lock of that entry
    {prefix}:stats:{namespace}                hash of counters (hits, misses, latency, tokens, cost)
    {prefix}:cv:{tenant}/{collection}         the collection's version (``versions``)

``namespace`` and ``model`` are percent-quoted, so they hold no ``:`` and no glob characters and
invalidation can SCAN by pattern without a separate index (an index set would be evicted apart from
its keys under ``allkeys-lru``).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

DEFAULT_TENANT = "default"
DEFAULT_PURPOSE = "agent"

_MODEL_RE = re.compile(r"""["']?(?:model_name|model|model_id|adapter)["']?\s*[:,]\s*["']([^"']+)["']""")
_TEMPERATURE_RE = re.compile(r"""["']?temperature["']?\s*[:,]\s*([-+0-9.eE]+)""")


def namespace_for(tenant: str | None, purpose: str = DEFAULT_PURPOSE, collection: str | None = None) -> str:
    """``tenant/purpose[/collection]``: the unit of scoping and of invalidation.

    The tenant is the job's (``ctx.tenant``), never a value from params. RAG answers name their
    collection, so re-indexing it can drop exactly them (``invalidate(collection=...)``).
    """
    parts = [tenant or DEFAULT_TENANT, purpose]
    if collection:
        parts.append(collection)
    return "/".join(parts)


@lru_cache(maxsize=1024)  # namespaces and model names repeat on every call
def q(part: str) -> str:
    """A key segment without ``:`` or glob characters (``*?[]\\``)."""
    return quote(part, safe="/@._-")


def digest(*parts: str) -> str:
    """BLAKE2b-128 of the parts, each followed by a NUL (one ``encode`` and one ``update``: on the hit path)."""
    return hashlib.blake2b("\x00".join((*parts, "")).encode(), digest_size=16).hexdigest()


@lru_cache(maxsize=256)  # llm_strings repeat (one per model and tool set): parse each once
def model_name(llm_string: str) -> str:
    """The model's name as written in its ``llm_string`` (``unknown`` if none): the handle for
    invalidating one model's entries. The hash of the whole ``llm_string`` still decides a hit."""
    match = _MODEL_RE.search(llm_string)
    return match.group(1) if match else "unknown"


@lru_cache(maxsize=256)
def is_sampled(llm_string: str) -> bool:
    """True when the call names a temperature above 0 (its answers are samples, not the answer).

    A model that names no temperature is taken at its own default; set one explicitly (0 to cache,
    or ``SWITCHYARD_CACHE_CACHE_SAMPLED``) where the provider's default samples.
    """
    for value in _TEMPERATURE_RE.findall(llm_string):
        try:
            if float(value) > 0:
                return True
        except ValueError:
            continue
    return False


def collection_scope(namespace: str) -> tuple[str, str] | None:
    """``(tenant, collection)`` of a ``tenant/purpose/collection`` namespace, else ``None``."""
    parts = namespace.split("/")
    return (parts[0], parts[2]) if len(parts) >= 3 and parts[2] else None


def version_key(prefix: str, tenant: str, collection: str) -> str:
    return f"{prefix}:cv:{q(tenant)}/{q(collection)}"


def versioned(key: str, version: str) -> str:
    """The entry key at a collection version (``versions.GET_AT_VERSION`` builds the same in Lua)."""
    return f"{key}:{version}"


def exact_key(prefix: str, namespace: str, prompt: str, llm_string: str) -> str:
    return f"{prefix}:e:{q(namespace)}:{q(model_name(llm_string))}:{digest(namespace, llm_string, prompt)}"


class ExactKeys:
    """``exact_key`` and ``is_sampled`` for one prefix and namespace, on the hit path: what depends only
    on the model string (the key's head, the hash state after namespace and model string, sampling) is
    worked out once per model string, so a lookup hashes just the prompt."""

    def __init__(self, prefix: str, namespace: str):
        self.prefix = prefix
        self.namespace = namespace
        self._heads: dict[str, tuple[str, Any, bool]] = {}

    def _head(self, llm_string: str) -> tuple[str, Any, bool]:
        head = self._heads.get(llm_string)
        if head is None:
            if len(self._heads) >= 256:  # model strings repeat (one per model and tool set): rarely reached
                self._heads.clear()
            state = hashlib.blake2b(f"{self.namespace}\x00{llm_string}\x00".encode(), digest_size=16)
            head = self._heads[llm_string] = (
                f"{self.prefix}:e:{q(self.namespace)}:{q(model_name(llm_string))}:", state, is_sampled(llm_string))
        return head

    def key(self, prompt: str, llm_string: str) -> str:
        """Equal to ``exact_key(prefix, namespace, prompt, llm_string)``."""
        text, state, _ = self._head(llm_string)
        h = state.copy()
        h.update(f"{prompt}\x00".encode())
        return text + h.hexdigest()

    def sampled(self, llm_string: str) -> bool:
        return self._head(llm_string)[2]


def lock_key(entry_key: str) -> str:
    prefix, _, rest = entry_key.partition(":e:")
    return f"{prefix}:lock:{rest}"


def stats_key(prefix: str, namespace: str) -> str:
    return f"{prefix}:stats:{q(namespace)}"


def pattern(prefix: str, namespace: str | None = None, model: str | None = None,
            collection: str | None = None) -> str:
    """SCAN pattern of the exact entries to invalidate."""
    if collection:
        ns = f"{q(namespace)}/*/{q(collection)}" if namespace else f"*/{q(collection)}"
    else:
        ns = q(namespace) if namespace else "*"
    return f"{prefix}:e:{ns}:{q(model) if model else '*'}:*"


def namespace_of(key: str) -> str:
    return unquote(key.split(":e:", 1)[1].split(":", 1)[0])


def prompt_text(prompt: str) -> str:
    """The text a semantic key embeds: every message of the conversation, ``role: content`` per line.

    Multi-turn prompts embed the whole conversation, so a follow-up ("and in French?") is never
    matched against the same words in another conversation. A prompt that is not LangChain's
    serialized message list (plain LLMs, other callers) is used as it is.
    """
    try:
        data = json.loads(prompt)
    except ValueError:
        return prompt
    if not isinstance(data, list):
        return prompt
    lines = []
    for message in data:
        if not isinstance(message, dict):
            return prompt
        kwargs = message.get("kwargs") or {}
        role = (message.get("id") or ["", "message"])[-1].removesuffix("Message").lower() or "message"
        content = kwargs.get("content", "")
        if not isinstance(content, str):
            content = " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        calls = kwargs.get("tool_calls") or []
        if calls:
            content += " " + json.dumps(calls, sort_keys=True)
        lines.append(f"{role}: {content}")
    return "\n".join(lines)
