"""Worker-side metrics: live workers per pool and GPU memory, for the API's ``/metrics``.

Workers expose no HTTP port (a prefork pool would need Prometheus' multiprocess mode and a port per
process), and any API replica must answer a scrape the same. So, as for the ledger and the LLM cache,
numbers are read at scrape time from shared stores: each worker's main process writes a heartbeat hash
to Redis every ``HEARTBEAT_S`` (pool, pid, and the memory of its visible GPUs from ``nvidia-smi``) with
a TTL of three beats, so a dead worker drops out by itself. ``switchyard.api.worker_metrics`` reads
them (this module needs no prometheus_client: worker images may lack the ``api`` extra).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from typing import Any

from switchyard import constants

log = logging.getLogger("switchyard.metrics")

HEARTBEAT_S = 15.0
HEARTBEAT_TTL_S = int(3 * HEARTBEAT_S)
NVIDIA_SMI_QUERY = "index,uuid,memory.used,memory.total,utilization.gpu"
MIB = 1024 * 1024

# --- worker side -------------------------------------------------------------------------------------

def gpu_stats(devices: str | None = None) -> list[dict[str, Any]]:
    """Memory and utilisation of the GPUs this process may use (``CUDA_VISIBLE_DEVICES``), by NVML
    through ``nvidia-smi``; empty without a driver. nvidia-smi ignores CUDA_VISIBLE_DEVICES, hence -i."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    devices = os.environ.get("CUDA_VISIBLE_DEVICES") if devices is None else devices
    argv = [smi, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"]
    if devices:
        argv += ["-i", devices]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi failed: %s", exc)
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(csv_text: str) -> list[dict[str, Any]]:
    gpus = []
    for line in csv_text.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 5:
            continue
        index, uuid, used, total, util = fields
        try:
            gpus.append({"gpu": index, "uuid": uuid, "memory_used_bytes": float(used) * MIB,
                         "memory_total_bytes": float(total) * MIB,
                         "utilization_ratio": float(util) / 100 if util not in ("[N/A]", "") else None})
        except ValueError:
            continue
    return gpus


def heartbeat_fields(pool: str) -> dict[str, str]:
    fields = {"pool": pool, "pid": str(os.getpid()), "ts": f"{time.time():.3f}"}
    for gpu in gpu_stats():
        for name in ("memory_used_bytes", "memory_total_bytes", "utilization_ratio"):
            if gpu[name] is not None:
                fields[f"gpu:{gpu['gpu']}:{name}"] = repr(gpu[name])
    return fields


class Heartbeat:
    """A daemon thread in a worker's main process writing its metrics hash every ``HEARTBEAT_S``."""

    def __init__(self, node: str, pool: str):
        self.node, self.pool = node, pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def beat(self) -> None:
        from switchyard.redis_conn import get_redis

        key = constants.worker_metrics_key(self.node)
        pipe = get_redis().pipeline()
        pipe.delete(key).hset(key, mapping=heartbeat_fields(self.pool)).expire(key, HEARTBEAT_TTL_S)
        pipe.execute()

    def stop(self) -> None:
        """Leave the count at once (a clean shutdown should not linger for a TTL)."""
        from switchyard.redis_conn import get_redis

        self._stop.set()
        try:
            get_redis().delete(constants.worker_metrics_key(self.node))
        except Exception as exc:  # Redis gone: the key expires on its own
            log.debug("metrics heartbeat not removed: %s", exc)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:  # metrics are best effort; the next beat tries again
                log.debug("metrics heartbeat failed: %s", exc)
            self._stop.wait(HEARTBEAT_S)


def as_str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
