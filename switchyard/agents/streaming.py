"""LangGraph stream parts → job events (README.md "Events").

``graph.stream(..., stream_mode=[...], subgraphs=True)`` yields ``(namespace, mode, chunk)``:

| mode       | event    | data |
|------------|----------|------|
| `messages` | `token`  | `content` (a piece of the AI message), `id` (message id), `node`, `step`, `ns` — published by
|            |          | ``RunCallbackHandler`` in the model's thread (see ``switchyard.agents.token_events``) |
| `values`   | `values` | `values` (the state, JSON), `ns` |
| `updates`  | `update` | `node`, `update` (what the node wrote, JSON), `ns`; `__interrupt__` for a pause |
| `custom`   | `custom` | `data` (what the node wrote with ``get_stream_writer()``), `ns` |

Token pieces of one message id concatenate to that message's ``content``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

Emit = Callable[[str, dict[str, Any]], Any]

# What LangGraph is asked for, per requested mode ("messages-tuple" is the SDK's name for "messages").
_LANGGRAPH_MODE = {"messages-tuple": "messages"}


def langgraph_modes(requested: Iterable[str]) -> list[str]:
    """What to ask LangGraph for: always ``messages`` too, because that is what makes every model call
    stream (time to first token, cancel mid-generation); its tokens are published only if requested."""
    modes = {_LANGGRAPH_MODE.get(m, m) for m in requested} | {"messages"}
    return sorted(modes)


def to_jsonable(value: Any) -> Any:
    """State → JSON: messages as ``{"type", "content", ...}`` objects, documents, pydantic, dataclasses."""
    if isinstance(value, BaseMessage):
        data = value.model_dump(exclude_none=True)
        return {k: v for k, v in data.items() if v not in ({}, [])} | {"content": value.content}
    if isinstance(value, Document):
        return {"page_content": value.page_content, "metadata": to_jsonable(value.metadata)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class StreamBridge:
    """Publishes each requested stream part as an event."""

    def __init__(self, emit: Emit, requested: Iterable[str]):
        self.emit = emit
        self.requested = {_LANGGRAPH_MODE.get(m, m) for m in requested}

    def handle(self, part: tuple) -> None:
        ns, mode, chunk = part if len(part) == 3 else ((), *part)
        ns = list(ns)
        if mode not in self.requested:
            return
        if mode == "messages":
            return  # tokens: published by RunCallbackHandler; ToolMessages: in `updates`
        if mode == "values":
            self.emit("values", {"values": to_jsonable(chunk), "ns": ns})
        elif mode == "updates":
            for node, update in (chunk or {}).items():
                self.emit("update", {"node": node, "update": to_jsonable(update), "ns": ns})
        elif mode == "custom":
            self.emit("custom", {"data": to_jsonable(chunk), "ns": ns})
