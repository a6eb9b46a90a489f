"""Metadata filters → one SQL/JSON path predicate (``metadata @@ '<jsonpath>'``).

The filter language is LangChain's (``{"team": "docs", "year": {"$gte": 2024}, "$or": [...]}``) with
``$eq $ne $in $nin $gt $gte $lt $lte $exists $and $or``. A JSON path predicate never raises on a
missing key or a value of another type (it is simply false), is served by the GIN ``jsonb_path_ops``
index, and is one bound parameter. In lax mode an array value matches if any element does, so
``{"tags": "faq"}`` finds documents tagged ``faq``.

Hand-written because langchain-postgres compiles to SQLAlchemy expressions over its own schema.
"""

from __future__ import annotations

import json
import math
from typing import Any

from switchyard.errors import SwitchyardError

_COMPARE = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class FilterError(SwitchyardError, ValueError):
    """A metadata filter is malformed."""


def compile_filter(filter: dict[str, Any]) -> str:
    if not isinstance(filter, dict) or not filter:
        raise FilterError("a filter is a non-empty object")
    return _and(filter)


def _and(filter: dict[str, Any]) -> str:
    parts = [_clause(key, value) for key, value in filter.items()]
    return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"


def _clause(key: str, value: Any) -> str:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) and v for v in value):
            raise FilterError(f"{key} takes a non-empty list of filters")
        joiner = " && " if key == "$and" else " || "
        return "(" + joiner.join(_and(v) for v in value) + ")"
    if key.startswith("$"):
        raise FilterError(f"unknown operator {key!r} at the top level")
    path = "$." + json.dumps(_text(key, key))
    if isinstance(value, dict) and value and all(k.startswith("$") for k in value):
        parts = [_operator(path, key, op, arg) for op, arg in value.items()]
        return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"
    return _operator(path, key, "$eq", value)


def _operator(path: str, key: str, op: str, arg: Any) -> str:
    if op in _COMPARE:
        if op in ("$gt", "$gte", "$lt", "$lte") and (isinstance(arg, bool) or not isinstance(arg, int | float | str)):
            raise FilterError(f"{key}: {op} takes a number or a string")
        return f"({path} {_COMPARE[op]} {_literal(key, arg)})"
    if op in ("$in", "$nin"):
        if not isinstance(arg, list) or not arg:
            raise FilterError(f"{key}: {op} takes a non-empty list")
        any_of = "(" + " || ".join(f"({path} == {_literal(key, v)})" for v in arg) + ")"
        return any_of if op == "$in" else f"!{any_of}"
    if op == "$exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{key}: $exists takes true or false")
        return f"exists({path})" if arg else f"!exists({path})"
    raise FilterError(f"{key}: unknown operator {op!r}; known: {sorted([*_COMPARE, '$in', '$nin', '$exists'])}")


def _literal(key: str, value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{key}: {value} is not a JSON number")
    if isinstance(value, str):
        value = _text(key, value)
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)  # JSON scalars are valid JSON path literals
    raise FilterError(f"{key}: compare with a string, number, boolean or null, not {type(value).__name__}")


def _text(key: str, text: str) -> str:
    # What JSON allows but Postgres text and jsonpath do not: a NUL character, a lone surrogate.
    if "\x00" in text:
        raise FilterError(f"{key!r}: a NUL character cannot be matched")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FilterError(f"{key!r}: not valid Unicode (a lone surrogate)") from None
    return text
