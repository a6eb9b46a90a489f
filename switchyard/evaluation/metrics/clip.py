"""CLIP metrics: ``clipscore`` and ``refclipscore`` (Hessel et al. 2021) and two probes.

- ``clipscore`` = w · max(cos(E_image, E_text), 0) with w = 2.5, the caption prefixed with
  "A photo depicts " as in the authors' reference script; per item, averaged.
- ``refclipscore`` = the harmonic mean of clipscore and max(max_r cos(E_caption, E_reference_r), 0).
- ``clip_compositionality`` (probe): 1 when the image prefers the item's caption (``prediction``) over
  its attribute-swapped ``foil`` ("a red cube on a blue sphere" vs "a blue cube on a red sphere").
- ``zero_shot_accuracy`` (probe): 1 when the image's most similar "a photo of a {label}" is ``label``.

The embeddings come from transformers' ``CLIPModel`` (``get_image_features`` / ``get_text_features``);
the formulas on top are the paper's two lines. The model is a local directory (under the file roots)
or a registered base model, loaded once per worker process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from switchyard.evaluation.metrics import Options, Scored, usable
from switchyard.evaluation.schemas import Item

W = 2.5
PREFIX = "A photo depicts "
BATCH = 32


@lru_cache(maxsize=2)
def load_clip(path: str) -> tuple[Any, Any, Any]:
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path), AutoImageProcessor.from_pretrained(path)


class Clip:
    """Unit-normalised CLIP embeddings of texts and images."""

    def __init__(self, path: str):
        self.model, self.tokenizer, self.images = load_clip(path)
        self.max_length = self.model.config.text_config.max_position_embeddings

    def texts(self, texts: Sequence[str]) -> Any:
        import torch

        out = []
        for start in range(0, len(texts), BATCH):
            batch = self.tokenizer(list(texts[start:start + BATCH]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                out.append(self.model.get_text_features(input_ids=batch["input_ids"],
                                                        attention_mask=batch["attention_mask"]).pooler_output)
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def pictures(self, images: Sequence[Any]) -> Any:
        import torch

        out = []
        for start in range(0, len(images), BATCH):
            pixels = self.images(images=list(images[start:start + BATCH]), return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                out.append(self.model.get_image_features(pixel_values=pixels).pooler_output)
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)


def _decoded(items: Sequence[Item], failed: dict[str, str], name: str) -> tuple[list[Item], list[Any]]:
    from switchyard.evaluation.datasets import decode_image

    kept, images = [], []
    for item in items:
        try:
            images.append(decode_image(item.image))
            kept.append(item)
        except ValueError as exc:
            failed[item.id] = f"{name}: {exc}"
    return kept, images


def _needs(*fields: str):
    def check(item: Item) -> str | None:
        if not item.image:
            return "missing image"
        for f in fields:
            value = getattr(item, f)
            if value is None or (isinstance(value, list) and not value):
                return f"missing {f}"
        if "label" in fields and item.label not in (item.labels or []):
            return "label is not one of labels"
        return None
    return check


def _finish(result: Scored) -> Scored:
    if result.per_item:
        result.aggregate = sum(result.per_item.values()) / len(result.per_item)
    return result


def clip_scores(clip: Clip, names: Sequence[str], items: Sequence[Item]) -> dict[str, Scored]:
    need = ("prediction", "references") if "refclipscore" in names else ("prediction",)
    good, failed = usable(items, "clipscore", _needs(*need))
    good, images = _decoded(good, failed, "clipscore")
    out = {name: Scored(failed=dict(failed)) for name in names}
    if not good:
        return out
    captions = clip.texts([PREFIX + i.prediction for i in good])
    per = (W * (clip.pictures(images) * captions).sum(-1).clamp(min=0)).tolist()
    if "clipscore" in out:
        out["clipscore"].per_item = {i.id: s for i, s in zip(good, per, strict=True)}
    if "refclipscore" in out:
        # References are embedded as the candidates are (prefixed), as in the reference script.
        for n, item in enumerate(good):
            refs = clip.texts([PREFIX + r for r in item.references])
            ref = max(float((refs @ captions[n]).max()), 0.0)
            out["refclipscore"].per_item[item.id] = 2 * per[n] * ref / (per[n] + ref) if per[n] + ref > 0 else 0.0
    return {name: _finish(scored) for name, scored in out.items()}


def compositionality(clip: Clip, items: Sequence[Item]) -> Scored:
    good, failed = usable(items, "clip_compositionality", _needs("prediction", "foil"))
    good, images = _decoded(good, failed, "clip_compositionality")
    result = Scored(failed=failed)
    if good:
        pictures = clip.pictures(images)
        right = (pictures * clip.texts([i.prediction for i in good])).sum(-1)
        swapped = (pictures * clip.texts([i.foil for i in good])).sum(-1)
        result.per_item = {i.id: float(r > s) for i, r, s in zip(good, right, swapped, strict=True)}
    return _finish(result)


def zero_shot(clip: Clip, items: Sequence[Item]) -> Scored:
    good, failed = usable(items, "zero_shot_accuracy", _needs("labels", "label"))
    good, images = _decoded(good, failed, "zero_shot_accuracy")
    result = Scored(failed=failed)
    if good:
        pictures = clip.pictures(images)
        for n, item in enumerate(good):
            prompts = clip.texts([f"a photo of a {label}" for label in item.labels])
            best = int((prompts @ pictures[n]).argmax())
            result.per_item[item.id] = float(item.labels[best] == item.label)
    return _finish(result)


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    from switchyard.evaluation.resolve import model_dir

    clip = Clip(str(model_dir(options.clip_model)))
    out: dict[str, Scored] = {}
    hessel = [n for n in names if n in ("clipscore", "refclipscore")]
    if hessel:
        out.update(clip_scores(clip, hessel, items))
    if "clip_compositionality" in names:
        out["clip_compositionality"] = compositionality(clip, items)
    if "zero_shot_accuracy" in names:
        out["zero_shot_accuracy"] = zero_shot(clip, items)
    return out
