"""PerProcess: one object per key in a process, made once under concurrency, and never shared with a
forked child."""

from __future__ import annotations

import os
import threading

from switchyard._singleton import PerProcess


def test_concurrent_first_callers_share_one_object():
    cache: PerProcess[object] = PerProcess()
    made, results, start = [], [], threading.Barrier(8)

    def make() -> object:
        made.append(1)
        return object()

    def call() -> None:
        start.wait()
        results.append(cache.get("k", make))

    workers = [threading.Thread(target=call) for _ in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(made) == 1 and len({id(r) for r in results}) == 1
    assert cache.get("other", object) is not results[0]


def test_a_forked_child_makes_its_own_and_clear_closes_only_its_own():
    cache: PerProcess[list] = PerProcess()
    parent = cache.get("k", list)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reports whether it got the parent's object, and what clear() closed
        closed: list = []
        mine = cache.get("k", list)
        cache.clear(closed.append)
        os.write(write, f"{mine is parent} {len(closed)} {closed[0] is mine}".encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert answer == "False 1 True"
    closed: list = []
    cache.clear(closed.append)
    assert closed == [parent] and cache.get("k", list) is not parent
