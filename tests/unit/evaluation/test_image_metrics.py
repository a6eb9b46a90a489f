"""fid and inception_score: torchmetrics with a TorchScript Inception from a local file, checked against
torchmetrics called directly on the same network; without the file, an `unavailable` entry naming it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.schemas import Item


def picture(seed: int, size: int = 40) -> object:
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def uint8_batch(images) -> object:
    import numpy as np
    import torch

    return torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2)


def direct(weights: Path, generated, references, seed: int = 0) -> tuple[float, float]:
    """FID and IS from torchmetrics on the same TorchScript network, written out here."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore

    net = torch.jit.load(str(weights))

    class Pool3(torch.nn.Module):
        def forward(self, x):
            return net(x, return_features=True)

    class LogProbabilities(torch.nn.Module):
        def forward(self, x):
            return net(x, no_output_bias=True).log()

    with torch.no_grad():
        fid = FrechetInceptionDistance(feature=Pool3())
        fid.update(uint8_batch(references), real=True)
        fid.update(uint8_batch(generated), real=False)
        inception = InceptionScore(feature=LogProbabilities())
        inception.update(uint8_batch(generated))
        torch.manual_seed(seed)
        return float(fid.compute()), float(inception.compute()[0])


@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    from switchyard.evaluation.tiny import build_tiny_inception

    path = build_tiny_inception(tmp_path / "inception.pt")
    monkeypatch.setenv("SWITCHYARD_EVAL_INCEPTION_WEIGHTS", str(path))
    return path


def test_fid_and_inception_score_match_torchmetrics_on_the_same_network(weights):
    generated = [picture(n) for n in range(12)]
    references = [picture(100 + n) for n in range(12)]
    items = [Item(id=f"g{n}", image=data_url(g), reference_image=data_url(r))
             for n, (g, r) in enumerate(zip(generated, references, strict=True))]
    items.append(Item(id="broken", image="data:image/png;base64,bm90IGFuIGltYWdl", reference_image=items[0].image))
    items.append(Item(id="no-image", reference_image=items[0].image))
    out = score(["fid", "inception_score"], items, Options(seed=3))
    fid, inception = direct(weights, generated, references, seed=3)
    assert out["fid"].aggregate == pytest.approx(fid, rel=1e-5)
    assert out["inception_score"].aggregate == pytest.approx(inception, rel=1e-6)
    assert out["fid"].aggregate > 0 and out["inception_score"].aggregate > 1
    assert out["fid"].count == 12 and out["fid"].per_item == {}  # set-level: no per-item score
    assert "does not decode" in out["fid"].failed["broken"]
    assert out["inception_score"].failed["no-image"] == "inception_score: missing image"


def test_fid_reference_directory_under_the_file_roots(weights, tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    references = [picture(200 + n) for n in range(5)]
    for n, image in enumerate(references):
        image.save(folder / f"{n:02d}.png")
    (folder / "notes.txt").write_text("not an image, skipped by its suffix")
    generated = [picture(n) for n in range(5)]
    items = [Item(id=str(n), image=data_url(g)) for n, g in enumerate(generated)]
    out = score(["fid"], items, Options(reference_images=str(folder)))
    assert out["fid"].aggregate == pytest.approx(direct(weights, generated, references)[0], rel=1e-5)
    too_few = score(["fid"], items[:1], Options(reference_images=str(folder)))["fid"]
    assert too_few.aggregate is None and "at least 2 generated images" in too_few.unavailable


def test_without_weights_the_metrics_are_unavailable_naming_the_file(monkeypatch, tmp_path):
    items = [Item(id="a", image=data_url(picture(0)))]
    monkeypatch.delenv("SWITCHYARD_EVAL_INCEPTION_WEIGHTS", raising=False)
    out = score(["fid", "inception_score"], items, Options())
    for name in ("fid", "inception_score"):
        assert out[name].aggregate is None and out[name].per_item == {}
        assert "SWITCHYARD_EVAL_INCEPTION_WEIGHTS" in out[name].unavailable
        assert "inception-2015-12-05.pt" in out[name].unavailable
    monkeypatch.setenv("SWITCHYARD_EVAL_INCEPTION_WEIGHTS", str(tmp_path / "nowhere.pt"))
    assert "nowhere.pt does not exist" in score(["fid"], items, Options())["fid"].unavailable
    (tmp_path / "state.pth").write_bytes(b"not torchscript")
    monkeypatch.setenv("SWITCHYARD_EVAL_INCEPTION_WEIGHTS", str(tmp_path / "state.pth"))
    assert "cannot load Inception weights as TorchScript" in score(["fid"], items, Options())["fid"].unavailable
