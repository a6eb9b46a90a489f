"""Compiled graphs kept per process, so a run does not build its graph again.

Building a graph cost every run 0.4–15 ms of CPU before its first step (``bench/agent.py``: echo 0.4–0.7 ms,
rag_agent 9.5–15.4, supervisor 11.5–12.4): ``StateGraph`` reads the state's type hints and ``compile``
validates the graph. A compiled LangGraph graph is reentrant (LangGraph's own server shares one
between runs), and what differs between runs is given at build time, so it is part of the key:

- the graph's name and builder (``SWITCHYARD_GRAPHS`` may point a name at another builder);
- the model's name as the run gave it (``None``: the default);
- the tenant: its retriever, its LLM cache namespace and the SQL tool's views are built in;
- the objects the build reads the process's configuration from (settings, LLM, agent and LLM cache
  settings) and the checkpointer. Reloading settings makes new objects, so a run after a reload builds
  anew.

Only graphs on the process's defaults are kept: a caller's inline model config is screened, and a
``local:<adapter>`` model checked against the tenant, by ``get_chat_model`` on every run, so those runs
build their graph as before. The cache is bounded (least recently used out), and one per process
(``PerProcess``): a forked child starts empty, since a parent's graphs hold the parent's checkpointer and
its connections.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from switchyard._singleton import PerProcess

MAX_GRAPHS = 256


class CompiledGraphs:
    """``get(key, inputs, build)``: the graph built for ``key`` with the same ``inputs`` objects (compared by
    identity), else ``build()``'s, kept."""

    def __init__(self, max_graphs: int = MAX_GRAPHS):
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[Hashable, tuple[tuple[Any, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, inputs: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._graphs.get(key)
            if entry is not None and len(entry[0]) == len(inputs) and all(
                    kept is now for kept, now in zip(entry[0], inputs, strict=True)):
                self._graphs.move_to_end(key)
                return entry[1]
        # Built outside the lock: two first runs of the same graph may both build; either result is right.
        graph = build()
        with self._lock:
            self._graphs[key] = (inputs, graph)
            self._graphs.move_to_end(key)
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        return graph

    def clear(self) -> None:
        with self._lock:
            self._graphs.clear()

    def __len__(self) -> int:
        return len(self._graphs)


def configuration() -> tuple[Any, ...]:
    """The settings objects a build reads (each cached until a reload makes a new one)."""
    from switchyard.agents.config import get_agent_settings
    from switchyard.config import get_settings
    from switchyard.llm.factory import get_llm_settings

    objects: tuple[Any, ...] = (get_settings(), get_llm_settings(), get_agent_settings())
    try:
        from switchyard.cache.config import get_cache_settings  # the LLM cache attached to the model
    except ImportError:  # the `cache` extra is not installed
        return objects
    return (*objects, get_cache_settings())


def shared_model(model: Any) -> bool:
    """Whether a run's model argument is the process's configuration (a graph built with it may be kept):
    the default, or a name. Not a caller's inline config, nor a tenant's ``local:<adapter>``: both are
    screened or checked on every run."""
    return model is None or (isinstance(model, str) and not model.startswith("local:"))


_per_process: PerProcess[CompiledGraphs] = PerProcess()


def compiled_graphs() -> CompiledGraphs:
    """This process's kept graphs."""
    return _per_process.get("graphs", CompiledGraphs)
