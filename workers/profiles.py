"""One profile per pool (README.md "Pools and queues"): mostly data, turned into a worker command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PoolProfile:
    name: str
    queues: tuple[str, ...]
    pool: str  # Celery execution pool: prefork | threads | solo
    concurrency: int
    prefetch_multiplier: int = 1
    max_tasks_per_child: int | None = None
    beat: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)


def _cores() -> int:
    # The CPUs this process may run on (a container's cpuset), not the machine's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Variables the math libraries read their thread counts from when they load (torch reads OMP's).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def threads_per_child(concurrency: int, cores: int | None = None) -> int:
    """Intra-op threads for each child of a prefork pool: the cores shared out, so that ``concurrency``
    children computing at once never run more threads than there are cores (oversubscribed threads
    thrash caches and spin in each other's barriers)."""
    return max(1, (cores or _cores()) // max(1, concurrency))


def profiles() -> dict[str, PoolProfile]:
    return {
        # One process per GPU, one job at a time, a fresh process per job (frees GPU memory for sure).
        "finetune": PoolProfile("finetune", ("finetune",), "prefork", 1, max_tasks_per_child=1),
        "index": PoolProfile("index", ("index",), "prefork", _cores()),
        # Agent runs wait on LLMs and tools: threads, many at once.
        "agent": PoolProfile("agent", ("agent",), "threads", 16),
        "eval": PoolProfile("eval", ("eval",), "prefork", _cores()),
        # Also consumes Celery's default queue, forwarding raw send_task messages to their home queue.
        "control": PoolProfile("control", ("control", "celery"), "threads", 4, beat=True),
    }


def worker_argv(profile: PoolProfile, *, concurrency: int | None = None, nodename: str | None = None,
                loglevel: str = "INFO", beat: bool | None = None) -> list[str]:
    """The ``celery worker`` command line for a pool."""
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker",
        "-Q", ",".join(profile.queues),
        "-P", profile.pool,
        "-c", str(concurrency or profile.concurrency),
        "--prefetch-multiplier", str(profile.prefetch_multiplier),
        "-n", nodename or f"{profile.name}-{os.getpid()}@%h",
        "-l", loglevel,
        "--without-gossip", "--without-mingle",
    ]
    if profile.max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(profile.max_tasks_per_child)]
    if profile.beat if beat is None else beat:
        argv += ["-B", "-s", _beat_schedule_path()]
    return argv + list(profile.extra)


def beat_argv(loglevel: str = "INFO") -> list[str]:
    """``celery beat`` on its own, for deployments that keep it apart from the control worker."""
    return [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", loglevel,
            "-s", _beat_schedule_path()]


def _beat_schedule_path() -> str:
    from switchyard.config import get_settings

    state = get_settings().state_dir
    state.mkdir(parents=True, exist_ok=True)
    return str(state / f"celerybeat-schedule-{os.getpid()}")


def visible_gpus() -> list[str]:
    """GPU indices this machine exposes (``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``)."""
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        return [g for g in pinned.split(",") if g.strip()]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
    return []
