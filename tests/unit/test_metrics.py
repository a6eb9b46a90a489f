"""Worker-side metrics: nvidia-smi parsing and the heartbeat's fields (no GPU, no Redis needed)."""

from __future__ import annotations

from switchyard import metrics

SMI = """0, GPU-1b2c, 30720, 143771, 87
1, GPU-9f00, 0, 143771, [N/A]
garbage line
"""


def test_parse_nvidia_smi_reads_memory_in_bytes_and_utilisation():
    gpus = metrics.parse_nvidia_smi(SMI)
    assert [g["gpu"] for g in gpus] == ["0", "1"]
    assert gpus[0]["memory_used_bytes"] == 30720 * 1024 * 1024
    assert gpus[0]["memory_total_bytes"] == 143771 * 1024 * 1024
    assert gpus[0]["utilization_ratio"] == 0.87 and gpus[1]["utilization_ratio"] is None


def test_heartbeat_fields_carry_pool_pid_and_each_gpu(monkeypatch):
    monkeypatch.setattr(metrics, "gpu_stats", lambda: metrics.parse_nvidia_smi(SMI))
    fields = metrics.heartbeat_fields("finetune")
    assert fields["pool"] == "finetune" and int(fields["pid"]) > 0
    assert float(fields["gpu:0:memory_used_bytes"]) == 30720 * 1024 * 1024
    assert "gpu:1:utilization_ratio" not in fields


def test_no_driver_means_no_gpus(monkeypatch):
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    assert metrics.gpu_stats() == []
