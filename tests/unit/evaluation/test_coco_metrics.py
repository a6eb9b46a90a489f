"""Caption metrics against pycocoevalcap driven directly, as COCOEvalCap does (PTB tokens, then scorers)."""

from __future__ import annotations

import pytest

from switchyard.evaluation.metrics import Options, score
from switchyard.evaluation.schemas import Item

CAPTIONS = {
    "1": ("A man is riding a horse on the beach.",
          ["a man rides a horse along the beach", "a person on horseback by the sea"]),
    "2": ("Two dogs playing in the snow",
          ["two dogs play in snow", "dogs running through the snow", "a pair of dogs outside"]),
    "3": ("a plate of food with broccoli", ["a plate with broccoli and rice", "food on a white plate"]),
}


def test_bleu_cider_meteor_match_pycocoevalcap_and_spice_is_unavailable():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    items = [Item(id=k, prediction=p, references=r) for k, (p, r) in CAPTIONS.items()]
    items.append(Item(id="bad", prediction="no references"))
    out = score(["bleu1", "bleu4", "cider", "meteor", "spice"], items, Options())

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in r] for k, (_, r) in CAPTIONS.items()})
    res = tok.tokenize({k: [{"caption": p}] for k, (p, _) in CAPTIONS.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_items = Cider().compute_score(gts, res)
    meteor, meteor_items = Meteor().compute_score(gts, res)
    assert out["bleu1"].aggregate == pytest.approx(bleu[0]) and out["bleu4"].aggregate == pytest.approx(bleu[3])
    assert out["cider"].aggregate == pytest.approx(cider)
    assert out["meteor"].aggregate == pytest.approx(meteor)
    assert [out["cider"].per_item[k] for k in gts] == pytest.approx(list(cider_items))
    assert [out["meteor"].per_item[k] for k in gts] == pytest.approx(meteor_items)
    assert "bad" in out["cider"].failed and "missing references" in out["cider"].failed["bad"]
    assert out["spice"].aggregate is None and "Stanford CoreNLP" in out["spice"].unavailable
