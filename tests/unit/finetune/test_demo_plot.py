from __future__ import annotations

from switchyard.demo.finetune import plot_loss, sparkline


def test_loss_curve_png_and_sparkline(tmp_path):
    history = [{"step": i, "train_loss": 3.0 - i * 0.1, **({"eval_loss": 3.1 - i * 0.1} if i % 3 == 0 else {})}
               for i in range(1, 13)]
    path = plot_loss(history, tmp_path / "loss.png", "demo")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    assert sparkline([3.0, 2.0, 1.0]) == "█▄▁"
