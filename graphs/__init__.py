"""The graph registry: graphs by name, each built by ``build_<name>(llm, retriever, checkpointer, **kw)``.

Builders are referenced by dotted path and imported on first use, so listing graphs imports no model.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from switchyard.errors import SwitchyardError


class UnknownGraphError(SwitchyardError):
    """No graph of that name is registered."""


@dataclass(frozen=True)
class GraphSpec:
    name: str
    builder: str  # "module:function"
    description: str


GRAPHS: dict[str, GraphSpec] = {}


def register(spec: GraphSpec) -> GraphSpec:
    GRAPHS[spec.name] = spec
    return spec


register(GraphSpec("rag_agent", "graphs.rag_agent:build_rag_agent",
                   "ReAct agent: retrieval with sources, calculator, read-only SQL; asks before side effects."))
register(GraphSpec("rag_answer", "graphs.rag_answer:build_rag_answer",
                   "retrieve → grade → (rewrite → retrieve | generate) → cite; no tool calling."))
register(GraphSpec("reflection", "graphs.reflection:build_reflection",
                   "draft → critique → revise, bounded."))
register(GraphSpec("supervisor", "graphs.supervisor:build_supervisor",
                   "Routes each request to a researcher (rag_answer) or an analyst (calculator, SQL) subgraph."))


def get_spec(name: str) -> GraphSpec:
    try:
        return GRAPHS[name]
    except KeyError:
        raise UnknownGraphError(f"unknown graph {name!r}; known: {sorted(GRAPHS)}") from None


def build_graph(name: str, llm: Any = None, retriever: Any = None, checkpointer: Any = None, **kw: Any):
    """Compile a registered graph. Keyword options a builder does not take are ignored, so callers can
    pass the run's common settings (``default_collection``, ``sql_databases``, ``tenant``) to any graph."""
    module, _, attr = get_spec(name).builder.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    accepted = inspect.signature(builder).parameters
    return builder(llm, retriever, checkpointer, **{k: v for k, v in kw.items() if k in accepted})


__all__ = ["GRAPHS", "GraphSpec", "UnknownGraphError", "build_graph", "get_spec", "register"]
