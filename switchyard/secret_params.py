"""Secrets stay in configuration: job params that look like secrets are refused at validation.

A value is refused when its key is named like a credential (``api_key``, ``password``, ``secret``,
``token``, ``authorization``...; any nesting, any case, ``camelCase`` or ``kebab-case``) and is not
empty, or when a string value anywhere has the shape of a well-known credential (``sk-...``,
``Bearer ...``, GitHub, AWS, Slack and Hugging Face tokens, PEM private keys, a URL with a password).
Refused params never reach the ledger, events or logs from the ways in (``dispatch`` validates before
recording); a raw broker message that carries one is recorded with ``redact``-ed params.

Hand-written rather than a secret scanner such as detect-secrets: those judge whole files with entropy
heuristics that would flag ordinary params (content hashes, ids); this is a short, predictable list.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
MAX_REPORTED = 20

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_KEY = re.compile(
    r"^(?:.*_)?(?:api_?key|apikey|password|passwd|passphrase|secret|private_key|access_key|authorization"
    r"|credentials?|cookie)$"
    r"|^(?:(?:.*_)?(?:access|refresh|auth|api|bearer|session|id|oauth)_)?token$"
)
_SECRET_VALUES = [
    ("an API key (sk-...)", re.compile(r"sk-[A-Za-z0-9_\-]{16,}")),
    ("a bearer token", re.compile(r"(?i)bearer\s+\S{8,}")),
    ("a GitHub token", re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("an AWS access key id", re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}")),
    ("a Slack token", re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Hugging Face token", re.compile(r"hf_[A-Za-z0-9]{30,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*", re.DOTALL)),
    ("a URL with a password", re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:[^/\s@]+@\S*")),
]


def secret_key(key: str) -> bool:
    """Whether a params key names a credential (``api_key``, ``X-Api-Key``, ``openaiApiKey``...)."""
    normalized = re.sub(r"[^a-z0-9]+", "_", _CAMEL.sub("_", key).lower()).strip("_")
    return bool(_SECRET_KEY.match(normalized))


def secret_value(value: str) -> str | None:
    """What a string value looks like if it has a credential's shape (the whole value), else ``None``."""
    text = value.strip()
    for what, pattern in _SECRET_VALUES:
        if pattern.fullmatch(text):
            return what
    return None


def _walk(params: Any):
    """``(loc, key, value)`` for every value in a JSON tree, iteratively (any depth)."""
    stack: list[tuple[list[Any], Any, Any]] = [([], None, params)]
    while stack:
        loc, key, value = stack.pop()
        yield loc, key, value
        if isinstance(value, dict):
            stack.extend(([*loc, k], k, v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list | tuple):
            stack.extend(([*loc, i], None, v) for i, v in reversed(list(enumerate(value))))


def _problem(key: Any, value: Any) -> str | None:
    if isinstance(key, str) and value not in (None, "") and secret_key(key):
        return (f"{key!r} looks like a secret; secrets are not accepted in params: configure them "
                "(e.g. name a model from SWITCHYARD_LLM_MODELS) and refer to them by name")
    if isinstance(value, str):
        what = secret_value(value)
        if what:
            return f"value looks like {what}; secrets are not accepted in params: put it in configuration"
    return None


def find_secrets(params: Any) -> list[dict[str, Any]]:
    """pydantic-style field errors (``loc``, ``msg``, ``type="secret_refused"``) for every secret-looking
    value; the messages never repeat the value."""
    found: list[dict[str, Any]] = []
    for loc, key, value in _walk(params):
        problem = _problem(key, value)
        if problem:
            found.append({"loc": loc, "msg": problem, "type": "secret_refused"})
            if len(found) >= MAX_REPORTED:
                break
    return found


def redact(params: Any) -> Any:
    """``params`` with every secret-looking value replaced by ``"[redacted]"`` (unchanged, not copied,
    when there is none)."""
    if not find_secrets(params):
        return params
    try:
        return _redacted(params)
    except RecursionError:  # nested deeper than the interpreter recurses: keep none of it
        return {"redacted": "params withheld: they carried a secret"}


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and v not in (None, "") and secret_key(k) else _redacted(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, str) and secret_value(value):
        return REDACTED
    return value
