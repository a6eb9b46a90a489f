"""The kwargs of ``switchyard.eval.run`` (the message contract) and the names of the metrics.

A message that fails this schema (an unknown metric, a dataset that is not a list of items with ids,
a metric whose model is not named) fails its job in validation, before any work. Anything that is
wrong with one item only (a missing field, an empty reference list, an image that does not decode)
fails that item, with its id and the reason, while the other items are scored.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# name -> (family module under switchyard.evaluation.metrics, what it needs). The scale is in docs/eval.md.
METRICS: dict[str, str] = {
    "bleu": "text", "chrf": "text", "rouge1": "text", "rouge2": "text", "rougeL": "text", "exact_match": "text",
    "bleu1": "coco", "bleu2": "coco", "bleu3": "coco", "bleu4": "coco", "cider": "coco", "meteor": "coco",
    "spice": "coco",
    "vqa_accuracy": "vqa",
    "clipscore": "clip", "refclipscore": "clip", "clip_compositionality": "clip", "zero_shot_accuracy": "clip",
    "perplexity": "lm", "token_accuracy": "lm",
    "fid": "image", "inception_score": "image",
    "citation_support": "rag", "citation_support_judge": "rag",
}
# retrieval_recall@k takes its k in the name (retrieval_recall@5).
RECALL_AT_K = re.compile(r"^retrieval_recall@([1-9][0-9]{0,3})$")
MAX_ITEMS = 100_000


def metric_family(name: str) -> str | None:
    """The family module of a metric name, or ``None`` when the name is unknown."""
    if RECALL_AT_K.match(name):
        return "rag"
    return METRICS.get(name)


class Item(BaseModel):
    """One dataset item. Which fields a metric needs is its own business: a missing one fails the item."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="unique within the dataset; failed items are reported by it")
    prediction: str | None = None
    references: list[str] | None = None
    question: str | None = None
    answers: list[str] | None = Field(default=None, description="VQA: the human answers (usually 10)")
    image: str | None = Field(default=None, description="a path, a data: URL or base64")
    reference_image: str | None = Field(default=None, description="fid: a real image of the reference set "
                                                                  "(path, data: URL or base64)")
    prompt: str | None = Field(default=None, description="what `generate` answers")
    system: str | None = Field(default=None, description="`generate`: a system message sent before the prompt")
    text: str | None = Field(default=None, description="held-out text for perplexity and token accuracy")
    contexts: list[str] | None = Field(default=None, description="RAG: the passages the answer cites")
    retrieved: list[str] | None = Field(default=None, description="RAG: retrieved passage ids, best first")
    gold: list[str] | None = Field(default=None, description="RAG: ids of the passages that hold the answer")
    foil: str | None = Field(default=None, description="compositionality probe: the attribute-swapped caption")
    labels: list[str] | None = Field(default=None, description="zero-shot probe: the candidate class names")
    label: str | None = Field(default=None, description="zero-shot probe: the right class name")

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class GenerateSpec(BaseModel):
    """Produce each item's ``prediction`` from its ``prompt`` (or ``question``) before scoring."""

    model_config = ConfigDict(extra="forbid")

    model: str | dict[str, Any] | None = Field(
        default=None, description="a model name of the LLM factory (SWITCHYARD_LLM_MODELS), 'provider:model', "
                                  "or an inline config; default: the configured default model")
    adapter: str | None = Field(default=None, description="a registered adapter of the job's tenant")
    graph: str | None = Field(default=None, description="a registered agent graph answering the prompt")
    max_tokens: int = Field(default=64, ge=1, le=4096)
    concurrency: int = Field(default=8, ge=1, le=64, description="prompts in flight at once (the local "
                                                                "provider batches them into one generate)")

    @model_validator(mode="after")
    def _one_source(self) -> GenerateSpec:
        if self.adapter and self.model is not None:
            raise ValueError("name either an adapter or a model, not both")
        return self


class LMSpec(BaseModel):
    """The causal LM that ``perplexity`` and ``token_accuracy`` measure."""

    model_config = ConfigDict(extra="forbid")

    base_model: str | None = Field(default=None, description="a registered base model or a local directory")
    adapter: str | None = Field(default=None, description="a registered adapter of the tenant (on its base)")

    @model_validator(mode="after")
    def _named(self) -> LMSpec:
        if not self.base_model and not self.adapter:
            raise ValueError("lm needs a base_model or an adapter")
        return self


class JudgeSpec(BaseModel):
    """The LLM that ``citation_support_judge`` asks whether each cited passage supports the answer."""

    model_config = ConfigDict(extra="forbid")

    model: str | dict[str, Any] | None = Field(
        default=None, description="a model name of the LLM factory, 'provider:model' or an inline config; "
                                  "default: the configured default model")
    max_tokens: int = Field(default=8, ge=1, le=256, description="the reply budget (the answer is yes or no)")


class ReviewSpec(BaseModel):
    """Ask humans to rate a sample of the items (see docs/eval.md, "Human review")."""

    model_config = ConfigDict(extra="forbid")

    sample: int = Field(default=20, ge=1, le=1000, description="how many items raters see")
    raters: int = Field(default=2, ge=1, le=20, description="ratings needed per item before it completes")
    scale_min: int = 1
    scale_max: int = 5
    instructions: str = "Rate how well the prediction answers the prompt and matches the references."
    seed: int = 0

    @model_validator(mode="after")
    def _scale(self) -> ReviewSpec:
        if self.scale_max <= self.scale_min:
            raise ValueError("scale_max must be above scale_min")
        return self


class EvalParams(BaseModel):
    """``switchyard.eval.run``: a dataset and the metrics to score it with."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    dataset: list[Item] | None = Field(default=None, max_length=MAX_ITEMS)
    dataset_file: str | None = Field(default=None, description="an uploaded file id of the tenant (JSONL)")
    metrics: list[str] = Field(min_length=1, max_length=64)
    generate: GenerateSpec | None = None
    lm: LMSpec | None = None
    clip_model: str | None = Field(default=None, description="CLIP for clipscore: a local directory or a "
                                                             "registered base model")
    reference_images: str | None = Field(default=None, description="fid: a directory of reference images "
                                                                  "under SWITCHYARD_FILE_ROOTS")
    judge: JudgeSpec | None = Field(default=None, description="citation_support_judge's model")
    review: ReviewSpec | None = None
    seed: int = 0

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str]) -> list[str]:
        unknown = [m for m in metrics if metric_family(m) is None]
        if unknown:
            known = [*sorted(METRICS), "retrieval_recall@K"]
            raise ValueError(f"unknown metric(s) {unknown}; known: {known}")
        return list(dict.fromkeys(metrics))

    @model_validator(mode="after")
    def _consistent(self) -> EvalParams:
        if (self.dataset is None) == (self.dataset_file is None):
            raise ValueError("give exactly one of dataset and dataset_file")
        if self.dataset is not None:
            ids = [item.id for item in self.dataset]
            if len(set(ids)) != len(ids):
                raise ValueError("item ids must be unique")
            if not ids:
                raise ValueError("the dataset is empty")
        if any(metric_family(m) == "lm" for m in self.metrics) and self.lm is None:
            raise ValueError("perplexity and token_accuracy need `lm` (base_model and/or adapter)")
        if any(metric_family(m) == "clip" for m in self.metrics) and not self.clip_model:
            raise ValueError("CLIP metrics (clipscore, refclipscore and the CLIP probes) need `clip_model`")
        return self
