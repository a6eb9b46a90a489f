"""Cached values: LangChain generations ⇄ bytes, zlib-compressed above a size.

Not LangChain's ``dumps``/``loads``: its reviver re-imports and validates every object by path, about
as slow as the Redis round trip itself, and the exact-hit latency goal is 1.3x a bare GET. Messages go
through langchain_core's own ``message_to_dict``/``messages_from_dict`` instead; orjson does the JSON.
The first byte says how the rest is stored: ``j`` plain JSON, ``z`` zlib-compressed JSON.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.messages import AIMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

_AI_FIELDS = frozenset(AIMessage.model_fields)
MARKER = "switchyard_cache"  # response_metadata key of a cache hit (switchyard.cache.streaming reads it)


def encode(generations: Sequence[Generation], compress_min_bytes: int = 1024) -> bytes:
    items: list[dict[str, Any]] = []
    for gen in generations:
        if isinstance(gen, ChatGeneration):
            items.append({"m": message_to_dict(gen.message), "i": gen.generation_info})
        else:
            items.append({"t": gen.text, "i": gen.generation_info})
    raw = orjson.dumps(items)
    if compress_min_bytes and len(raw) >= compress_min_bytes:
        return b"z" + zlib.compress(raw, 6)
    return b"j" + raw


def decode(value: bytes, mark: dict[str, Any] | None = None) -> list[Generation]:
    """The generations stored in ``value``. With ``mark`` (a cache hit), each message gets it in
    ``response_metadata[MARKER]``, a fresh id and zero usage, and ``mark["saved"]`` sums the usage the
    answer cost when it was made: done on the dicts, so a hit builds each message once."""
    raw = zlib.decompress(value[1:]) if value[:1] == b"z" else value[1:]
    out: list[Generation] = []
    for item in orjson.loads(raw):
        if "m" in item:
            if mark is not None:
                _mark_message(item["m"], mark)
            out.append(_chat_generation(item["m"], item["i"]))
        else:
            info = item["i"] if mark is None else {**(item["i"] or {}), MARKER: mark}
            out.append(Generation(text=item["t"], generation_info=info))
    return out


def _chat_generation(message: dict[str, Any], info: dict[str, Any] | None) -> ChatGeneration:
    """An AI message is rebuilt without validation (``model_construct``): it was validated when it was
    made, and validating again was half the cost of a hit. Other message types go through LangChain."""
    if message.get("type") == "ai":
        data = message["data"]
        msg = AIMessage.model_construct(**{k: v for k, v in data.items() if k in _AI_FIELDS})
        return ChatGeneration.model_construct(message=msg, text=msg.text, generation_info=info)
    return ChatGeneration(message=messages_from_dict([message])[0], generation_info=info)


def _mark_message(message: dict[str, Any], mark: dict[str, Any]) -> None:
    data = message["data"]
    # A fresh id: LangGraph's add_messages would replace an earlier message that has the cached one.
    data["id"] = f"cache-{uuid.uuid4()}"
    data["response_metadata"] = {**(data.get("response_metadata") or {}), MARKER: mark}
    usage = data.get("usage_metadata")
    if message.get("type") == "ai":
        saved = mark.setdefault("saved", {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
        for key in saved:
            saved[key] += int((usage or {}).get(key) or 0)
        data["usage_metadata"] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def usage_of(generations: Sequence[Generation]) -> dict[str, int]:
    """Token usage the cached answer cost when it was made (what a hit saves)."""
    total = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for gen in generations:
        usage = getattr(getattr(gen, "message", None), "usage_metadata", None) or {}
        for key in total:
            total[key] += int(usage.get(key) or 0)
    return total
