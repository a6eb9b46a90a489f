"""`switchyard worker finetune` runs one worker process per visible GPU, each pinned to its GPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def _children_env(pid: int) -> list[dict[str, str]]:
    """The environments of the celery worker main processes started under ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(kv.split("=", 1) for kv in f.read().decode(errors="replace").split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        found.append(env)
    return found


def test_finetune_pool_pins_one_worker_per_gpu(stack, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchyard.cli", "worker", "finetune"],
        env=stack.env(CUDA_VISIBLE_DEVICES="0,1", SWITCHYARD_STATE_DIR=str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        pinned: list[str] = []
        while time.monotonic() < deadline:
            pinned = sorted(env.get("CUDA_VISIBLE_DEVICES", "") for env in _children_env(proc.pid))
            if len(pinned) == 2:
                break
            time.sleep(0.2)
        assert pinned == ["0", "1"]
        logs = {p.name for p in (tmp_path / "logs").iterdir()}
        assert logs == {"finetune-gpu0.log", "finetune-gpu1.log"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
