"""Language-model metrics on held-out ``text``: ``perplexity`` (torchmetrics) and ``token_accuracy``
(the share of next tokens the model ranks first), of a base model or the same base with a named adapter.

The model is the fine-tune pool's resident ``AdapterServer`` (``switchyard.finetune.serving``): the
base is loaded once per process and the adapter hot-swapped, as when it serves chat. The aggregate
perplexity is corpus-level (exp of the mean negative log-likelihood over all tokens, which is what
torchmetrics' ``Perplexity`` accumulates across updates); per item, each text's own perplexity.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from switchyard.evaluation.metrics import Options, Scored, usable
from switchyard.evaluation.schemas import Item


@lru_cache(maxsize=4)
def _tokenizer(base_path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_path)


def _model(options: Options) -> tuple[Any, str | None, str | None]:
    """(server, adapter name, adapter directory) for the job's ``lm``."""
    from switchyard.evaluation.resolve import model_dir, tenant_adapter
    from switchyard.finetune.serving import server_for

    if options.lm_adapter:
        from switchyard.finetune.adapters import local_dir

        record = tenant_adapter(options.lm_adapter, options.tenant)
        return server_for(record.base_path), record.name, str(local_dir(record))
    return server_for(model_dir(options.lm_base)), None, None


def _check(item: Item) -> str | None:
    return None if item.text and item.text.strip() else "missing text"


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    from torchmetrics.text import Perplexity

    good, failed = usable(items, "lm", _check)
    out = {name: Scored(failed=dict(failed)) for name in names}
    if not good:
        return out
    server, adapter, path = _model(options)
    tokenizer = _tokenizer(server.base_path)
    corpus = Perplexity()
    right = total = 0
    for item in good:
        ids = tokenizer(item.text, return_tensors="pt")["input_ids"]
        if ids.shape[1] < 2:
            for scored in out.values():
                scored.failed[item.id] = "lm: text has fewer than 2 tokens"
            continue
        logits = server.logits(item.text, adapter, path=path)  # same tokenizer, same ids as above
        preds, target = logits[:, :-1, :], ids[:, 1:]
        corpus.update(preds, target)
        if "perplexity" in out:
            out["perplexity"].per_item[item.id] = float(Perplexity()(preds, target))
        hits = int((preds.argmax(-1) == target).sum())
        right, total = right + hits, total + target.numel()
        if "token_accuracy" in out:
            out["token_accuracy"].per_item[item.id] = hits / target.numel()
    if "perplexity" in out and out["perplexity"].per_item:
        out["perplexity"].aggregate = float(corpus.compute())
    if "token_accuracy" in out and total:
        out["token_accuracy"].aggregate = right / total
    return out
