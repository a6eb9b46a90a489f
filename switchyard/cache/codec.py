"""Cached values: LangChain generations ⇄ bytes, zlib-compressed above a size.

Not LangChain's ``dumps``/``loads``: its reviver re-imports and validates every object by path, about
as slow as the Redis round trip itself, and the exact-hit latency goal is 1.3x a bare GET. Messages go
through langchain_core's own ``message_to_dict`` instead; orjson does the JSON. AI messages and their
generations come back through ``_Construct`` (pydantic's ``model_construct`` without its per-field
alias and default-factory introspection); other message types through ``messages_from_dict``.
The first byte says how the rest is stored: ``j`` plain JSON, ``z`` zlib-compressed JSON.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import orjson
from langchain_core.messages import AIMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)
_IMMUTABLE = (str, int, float, bool, type(None), tuple, frozenset)
_set = object.__setattr__

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


class _Construct(Generic[M]):
    """``cls.model_construct(**values)`` for trusted values, at a fraction of its cost.

    An AI message was validated when it was made; validating it again was half the cost of a hit, and
    ``model_construct`` itself still looks up aliases and asks ``inspect.signature`` whether each default
    factory takes the validated data (milliseconds when a field is missing). This fills ``__dict__`` the
    way ``model_construct`` does, in field order, from defaults read once. Models it cannot mirror exactly
    (aliases, private attributes, ``model_post_init``, mutable defaults) go through ``model_construct``;
    tests/unit/test_cache_keys.py pins the result equal to ``model_construct``'s.
    """

    def __init__(self, cls: type[M]):
        self.cls = cls
        fields = cls.__pydantic_fields__
        self.names = frozenset(fields)
        self.spec = [(name, f.default, f.default_factory) for name, f in fields.items()]
        self.allow_extra = cls.model_config.get("extra") == "allow"
        self.fast = not (cls.__pydantic_post_init__ or cls.__private_attributes__ or cls.__pydantic_root_model__
                         or any(f.alias or f.validation_alias for f in fields.values())
                         or any(d is not PydanticUndefined and not isinstance(d, _IMMUTABLE)
                                for _, d, _ in self.spec))

    def __call__(self, values: dict[str, Any]) -> M:
        """A model of ``values``' known fields (unknown keys are dropped, as ``model_construct`` drops them
        for ``extra="ignore"``; for ``extra="allow"`` they would be kept, so callers pass known fields only)."""
        if not self.fast:
            return self.cls.model_construct(**values)
        data: dict[str, Any] = {}
        for name, default, factory in self.spec:
            if name in values:
                data[name] = values[name]
            elif factory is not None:
                data[name] = factory()
            elif default is not PydanticUndefined:
                data[name] = default
        return self.from_dict(data, {k for k in values if k in self.names})

    def from_dict(self, data: dict[str, Any], fields_set: set[str] | None = None) -> M:
        """The model whose ``__dict__`` is ``data`` (every field, nothing else), taken as it is."""
        if not self.fast:
            return self.cls.model_construct(**data)
        model = self.cls.__new__(self.cls)
        _set(model, "__dict__", data)
        _set(model, "__pydantic_fields_set__", set(data) if fields_set is None else fields_set)
        _set(model, "__pydantic_extra__", {} if self.allow_extra else None)
        _set(model, "__pydantic_private__", None)
        return model


_ai_message = _Construct(AIMessage)
_chat_gen = _Construct(ChatGeneration)


def _chat_generation(message: dict[str, Any], info: dict[str, Any] | None) -> ChatGeneration:
    """AI messages without validation (see ``_Construct``); other message types go through LangChain."""
    if message.get("type") == "ai":
        data = message["data"]
        # ``message_to_dict`` stored every field, in field order: that dict is the model's ``__dict__``.
        msg = _ai_message.from_dict(data) if data.keys() == _ai_message.names else \
            _ai_message({k: v for k, v in data.items() if k in _ai_message.names})
        content = data["content"]
        return _chat_gen.from_dict({"text": content if isinstance(content, str) else msg.text,
                                    "generation_info": info, "type": "ChatGeneration", "message": msg},
                                   {"text", "generation_info", "message"})
    return ChatGeneration(message=messages_from_dict([message])[0], generation_info=info)


class _Ids:
    """Fresh message ids without a syscall per hit: a random per-process prefix and a counter (the prefix
    is drawn again in a forked child, so prefork workers never hand out the same id)."""

    def __init__(self) -> None:
        self.draw()
        os.register_at_fork(after_in_child=self.draw)

    def draw(self) -> None:
        self.prefix = os.urandom(12).hex()
        self.counter = itertools.count()


_ids = _Ids()


def _mark_message(message: dict[str, Any], mark: dict[str, Any]) -> None:
    data = message["data"]
    # A fresh id: LangGraph's add_messages would replace an earlier message that has the cached one.
    data["id"] = f"cache-{_ids.prefix}-{next(_ids.counter):x}"
    metadata = data.get("response_metadata")
    if metadata:  # decoded just now: ours to change in place
        metadata[MARKER] = mark
    else:
        data["response_metadata"] = {MARKER: mark}
    if message.get("type") == "ai":
        usage = data.get("usage_metadata") or {}
        saved = mark.setdefault("saved", {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
        for key in saved:
            saved[key] += int(usage.get(key) or 0)
        data["usage_metadata"] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def usage_of(generations: Sequence[Generation]) -> dict[str, int]:
    """Token usage the cached answer cost when it was made (what a hit saves)."""
    total = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for gen in generations:
        usage = getattr(getattr(gen, "message", None), "usage_metadata", None) or {}
        for key in total:
            total[key] += int(usage.get(key) or 0)
    return total
