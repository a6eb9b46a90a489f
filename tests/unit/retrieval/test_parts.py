"""How a big ingest is split (switchyard.retrieval.parts) and how pool children share the cores."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from switchyard import constants
from switchyard.retrieval.parts import part_key, plan
from switchyard.retrieval.schemas import IngestParams, IngestPartParams
from workers import signals
from workers.profiles import THREAD_VARIABLES, threads_per_child


def message(sizes: list[int], files: int = 0) -> IngestParams:
    return IngestParams(collection="c", documents=[{"id": f"d{i}", "text": "x" * n} for i, n in enumerate(sizes)],
                        files=[{"name": f"f{i}.md", "content": "y" * 30_000} for i in range(files)])


def test_a_big_message_splits_into_balanced_parts_up_to_the_pool_size():
    sizes = [1000 * (i % 7 + 1) for i in range(400)]
    parts = plan(message(sizes), concurrency=4)
    assert len(parts) == 4
    assert sorted(i for p in parts for i in p) == list(range(400))  # each document in exactly one part
    loads = [sum(sizes[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(sizes)
    assert parts == plan(message(sizes), concurrency=4)  # a redelivered parent makes the same split


def test_small_messages_and_pools_of_one_run_in_one_piece():
    assert plan(message([5000, 5000]), concurrency=8) == [[0, 1]]  # under two parts' worth of text
    assert plan(message([30_000] * 10), concurrency=1) == [list(range(10))]
    assert len(plan(message([30_000] * 3), concurrency=8)) == 3  # never more parts than items


def test_files_are_split_by_their_size_beside_documents():
    parts = plan(message([30_000], files=3), concurrency=2)
    assert sorted(i for p in parts for i in p) == [0, 1, 2, 3] and len(parts) == 2
    assert part_key("job", 1, 2) == "job:part:1/2"


def test_part_params_carry_the_parent_and_refuse_unknown_fields():
    part = IngestPartParams(collection="c", parent="p", part=0, parts=2, documents=[{"id": "a", "text": "t"}])
    assert part.parent == "p"
    with pytest.raises(ValueError):
        IngestPartParams(collection="c", parent="p", part=0, parts=2, tenant="other")


def test_children_share_the_cores_without_oversubscribing():
    assert threads_per_child(4, cores=16) == 4
    assert threads_per_child(2, cores=2) == 1
    assert threads_per_child(8, cores=2) == 1  # never zero


@pytest.mark.parametrize(("pool", "expected"), [("prefork", "1"), ("threads", None)])
def test_worker_init_sets_thread_variables_for_prefork_children(monkeypatch, pool, expected):
    import os

    for name in (*THREAD_VARIABLES, constants.POOL_CONCURRENCY_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("workers.profiles._cores", lambda: 2)
    signals._share_cores(sender=SimpleNamespace(concurrency=2, pool_cls=pool))
    assert os.environ[constants.POOL_CONCURRENCY_ENV] == "2"
    assert all(os.environ.get(name) == expected for name in THREAD_VARIABLES)


@pytest.mark.parametrize(("queues", "preload"), [({"index": None}, True), ({"agent": None}, False)])
def test_only_index_pool_children_preload_the_model(monkeypatch, queues, preload):
    monkeypatch.delenv(constants.POOL_CONCURRENCY_ENV, raising=False)
    monkeypatch.setattr(signals, "_preload_embedder", None)
    app = SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues)))
    signals._share_cores(sender=SimpleNamespace(concurrency=2, pool_cls="threads", app=app))
    assert signals._preload_embedder is preload


def test_an_operator_thread_setting_wins(monkeypatch):
    import os

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv(constants.POOL_CONCURRENCY_ENV, raising=False)
    signals._share_cores(sender=SimpleNamespace(concurrency=2, pool_cls="prefork"))
    assert os.environ["OMP_NUM_THREADS"] == "3"
