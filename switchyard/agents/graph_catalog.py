"""Agent graphs by name: each a dotted path to a builder ``build_<name>(llm, retriever, checkpointer, **kw)``.

The core names graphs the way LangGraph's ``langgraph.json`` does, by ``"module:function"`` path, and
imports a builder only when a graph is built, so listing graphs imports no model and the core never
imports the ``graphs`` package. ``SWITCHYARD_GRAPHS`` adds or overrides graphs without editing switchyard.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from switchyard.config import get_settings
from switchyard.errors import SwitchyardError


class UnknownGraphError(SwitchyardError):
    """No graph of that name is registered."""


@dataclass(frozen=True)
class GraphSpec:
    name: str
    builder: str  # "module:function"
    description: str


# The built-in graphs (the `graphs` package); register() and SWITCHYARD_GRAPHS add to them.
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
register(GraphSpec("echo", "graphs.echo:build_echo",
                   "Answers with the last user message; no model call (benchmarks, health checks)."))
register(GraphSpec("supervisor", "graphs.supervisor:build_supervisor",
                   "Routes each request to a researcher (rag_answer) or an analyst (calculator, SQL) subgraph."))


def _configured_spec(name: str, value: str | dict[str, str]) -> GraphSpec:
    if isinstance(value, str):
        return GraphSpec(name, value, "")
    return GraphSpec(name, value["builder"], value.get("description", ""))


def graphs() -> dict[str, GraphSpec]:
    """Every graph by name: the registered ones, then those configured in ``SWITCHYARD_GRAPHS``."""
    configured = get_settings().graphs
    return {**GRAPHS, **{name: _configured_spec(name, value) for name, value in configured.items()}}


def get_spec(name: str) -> GraphSpec:
    known = graphs()
    try:
        return known[name]
    except KeyError:
        raise UnknownGraphError(f"unknown graph {name!r}; known: {sorted(known)}") from None


def build_graph(name: str, llm: Any = None, retriever: Any = None, checkpointer: Any = None, **kw: Any):
    """Compile a named graph. Keyword options a builder does not take are ignored, so callers can
    pass the run's common settings (``default_collection``, ``sql_databases``, ``tenant``) to any graph."""
    module, _, attr = get_spec(name).builder.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    accepted = inspect.signature(builder).parameters
    return builder(llm, retriever, checkpointer, **{k: v for k, v in kw.items() if k in accepted})


__all__ = ["GRAPHS", "GraphSpec", "UnknownGraphError", "build_graph", "get_spec", "graphs", "register"]
