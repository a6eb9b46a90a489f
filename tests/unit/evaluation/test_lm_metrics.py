"""perplexity and token_accuracy of a tiny random Llama, checked against transformers' own loss."""

from __future__ import annotations

import math

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.schemas import Item

TEXTS = ["The capital of France is Paris.", "Shout: good morning", "0123456789 + - * /"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from switchyard.finetune.models import build_tiny_llama

    path = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-lm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWITCHYARD_FILE_ROOTS", str(path.parent))
        yield path


def test_perplexity_and_token_accuracy_match_transformers(llama):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = [Item(id=f"t{i}", text=t) for i, t in enumerate(TEXTS)] + [Item(id="empty", text="  ")]
    out = score(["perplexity", "token_accuracy"], items, Options(lm_base=str(llama)))
    model = AutoModelForCausalLM.from_pretrained(llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(llama)
    nll = tokens = right = 0.0
    for i, text in enumerate(TEXTS):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            result = model(input_ids=ids, labels=ids)
        n = ids.shape[1] - 1
        assert out["perplexity"].per_item[f"t{i}"] == pytest.approx(math.exp(float(result.loss)), rel=1e-4)
        hits = int((result.logits[0, :-1].argmax(-1) == ids[0, 1:]).sum())
        assert out["token_accuracy"].per_item[f"t{i}"] == pytest.approx(hits / n)
        nll, tokens, right = nll + float(result.loss) * n, tokens + n, right + hits
    assert out["perplexity"].aggregate == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    assert out["token_accuracy"].aggregate == pytest.approx(right / tokens)
    assert "missing text" in out["perplexity"].failed["empty"]
