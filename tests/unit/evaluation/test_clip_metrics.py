"""CLIPScore / RefCLIPScore of a small CLIP built from a config, checked against a direct computation
with transformers (CLIPModel's forward pass), plus the CLIP probes and undecodable images."""

from __future__ import annotations

import base64
import io

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.schemas import Item


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, monkeypatch_module):
    from switchyard.evaluation.tiny import build_tiny_clip

    path = build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
    monkeypatch_module.setenv("SWITCHYARD_FILE_ROOTS", str(path.parent))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def png(color: tuple[int, int, int], shape: str = "square") -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (40, 40), "white")
    draw = ImageDraw.Draw(image)
    (draw.rectangle if shape == "square" else draw.ellipse)([8, 8, 32, 32], fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def direct(clip_dir, image: str, caption: str, references: list[str]) -> tuple[float, float]:
    """Hessel et al.'s definitions on embeddings from CLIPModel.forward (text_embeds, image_embeds)."""
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    from switchyard.evaluation.datasets import decode_image

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tokens = AutoTokenizer.from_pretrained(clip_dir)(["A photo depicts " + t for t in [caption, *references]],
                                                     padding=True, return_tensors="pt")
    pixels = AutoImageProcessor.from_pretrained(clip_dir)(images=[decode_image(image)], return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                    pixel_values=pixels["pixel_values"])
    text, picture = out.text_embeds, out.image_embeds[0]  # both unit-normalised by CLIPModel
    clip_s = 2.5 * max(float(text[0] @ picture), 0.0)
    ref = max(float((text[1:] @ text[0]).max()), 0.0)
    return clip_s, 2 * clip_s * ref / (clip_s + ref)


def test_clipscore_and_refclipscore_match_a_direct_computation(clip_dir):
    image = png((255, 0, 0))
    items = [Item(id="a", image=image, prediction="a red square", references=["a red cube", "a small square"]),
             Item(id="broken", image="data:image/png;base64,AAAA", prediction="x", references=["y"]),
             Item(id="no-image", prediction="x", references=["y"])]
    out = score(["clipscore", "refclipscore"], items, Options(clip_model=str(clip_dir)))
    clip_s, ref_clip_s = direct(clip_dir, image, "a red square", ["a red cube", "a small square"])
    assert out["clipscore"].per_item["a"] == pytest.approx(clip_s, abs=1e-5)
    assert out["refclipscore"].per_item["a"] == pytest.approx(ref_clip_s, abs=1e-5)
    assert "does not decode" in out["clipscore"].failed["broken"]
    assert "missing image" in out["clipscore"].failed["no-image"]


def test_probes_compositionality_and_zero_shot(clip_dir):
    items = [Item(id="c1", image=png((255, 0, 0)), prediction="a red square on a blue circle",
                  foil="a blue square on a red circle", labels=["square", "circle"], label="square"),
             Item(id="c2", image=png((0, 0, 255), "circle"), prediction="a blue circle", foil="a red circle",
                  labels=["square", "circle"], label="circle")]
    out = score(["clip_compositionality", "zero_shot_accuracy"], items, Options(clip_model=str(clip_dir)))
    for name in out:
        assert set(out[name].per_item) == {"c1", "c2"} and set(out[name].per_item.values()) <= {0.0, 1.0}
        assert out[name].aggregate == pytest.approx(sum(out[name].per_item.values()) / 2)


def test_shipped_probe_datasets_parse_and_score(clip_dir):
    from pathlib import Path

    from switchyard.evaluation.datasets import parse_items

    probes = Path(__file__).resolve().parents[3] / "demo" / "eval" / "probes"
    comp = parse_items((probes / "compositionality.jsonl").read_bytes())
    zero = parse_items((probes / "zero_shot.jsonl").read_bytes())
    options = Options(clip_model=str(clip_dir))
    assert len(score(["clip_compositionality"], comp, options)["clip_compositionality"].per_item) == len(comp)
    assert len(score(["zero_shot_accuracy"], zero, options)["zero_shot_accuracy"].per_item) == len(zero)
    clean = parse_items((probes / "robustness_clean.jsonl").read_bytes())
    typos = parse_items((probes / "robustness_typos.jsonl").read_bytes())
    drop = score(["chrf"], clean, Options())["chrf"].aggregate - score(["chrf"], typos, Options())["chrf"].aggregate
    assert drop > 0  # typos in the predictions cost chrF
    a, b = (parse_items((probes / f"bias_{x}.jsonl").read_bytes()) for x in "ab")
    assert [i.id for i in a] == [i.id for i in b] and all(x.text != y.text for x, y in zip(a, b, strict=True))
