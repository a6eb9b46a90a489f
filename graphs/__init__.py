"""The built-in graph builders, one module per graph: ``build_<name>(llm, retriever, checkpointer, **kw)``.

Graphs are named in the core (``switchyard.agents.graph_catalog``, by dotted path, plus
``SWITCHYARD_GRAPHS``); its names are re-exported here for existing callers.
"""

from __future__ import annotations

from switchyard.agents.graph_catalog import GRAPHS, GraphSpec, UnknownGraphError, build_graph, get_spec, register

__all__ = ["GRAPHS", "GraphSpec", "UnknownGraphError", "build_graph", "get_spec", "register"]
