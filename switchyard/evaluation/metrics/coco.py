"""Caption metrics from pycocoevalcap, computed as COCOEvalCap does: PTB tokenisation first, then
``bleu1``..``bleu4`` (0–1, corpus level with the 'closest' reference length), ``cider`` (CIDEr-D, whose
document frequencies come from the whole set's references), ``meteor`` (METEOR 1.5, a Java process)
and ``spice`` (only where Stanford CoreNLP's jars are present; otherwise an ``unavailable`` entry).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Sequence
from pathlib import Path

from switchyard.evaluation.metrics import Options, Scored, needs_prediction_and_references, usable
from switchyard.evaluation.schemas import Item

BLEU_N = {"bleu1": 0, "bleu2": 1, "bleu3": 2, "bleu4": 3}
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def _tokenized(items: Sequence[Item]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = {item.id: [{"caption": r} for r in item.references] for item in items}
    res = {item.id: [{"caption": item.prediction}] for item in items}
    tokenizer = PTBTokenizer()
    return tokenizer.tokenize(gts), tokenizer.tokenize(res)


def spice_missing() -> str | None:
    """Why SPICE cannot run here, or ``None`` when its CoreNLP jars are in place."""
    import pycocoevalcap.spice as spice

    lib = Path(spice.__file__).parent / "lib"
    missing = [jar for jar in SPICE_JARS if not (lib / jar).is_file()]
    if shutil.which("java") is None:
        return "spice needs Java 8+ on PATH"
    if missing:
        return (f"spice needs Stanford CoreNLP 3.6.0 ({', '.join(missing)}) in {lib}; this host cannot "
                "download them. Copy them there from a machine that can (pycocoevalcap's "
                "spice/get_stanford_models.py fetches them) and spice is computed.")
    return None


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    good, failed = usable(items, "coco", needs_prediction_and_references)
    out = {name: Scored(failed=dict(failed)) for name in names}
    if "spice" in out and (reason := spice_missing()):
        out["spice"] = Scored(unavailable=reason)
    wanted = [n for n in names if not (n == "spice" and out[n].unavailable)]
    if not good or not wanted:
        return out
    gts, res = _tokenized(good)
    ids = list(gts)

    def record(name: str, aggregate: float, per_item: Sequence[float]) -> None:
        out[name].aggregate = float(aggregate)
        out[name].per_item = {i: float(v) for i, v in zip(ids, per_item, strict=True)}

    if any(n in BLEU_N for n in wanted):
        from pycocoevalcap.bleu.bleu import Bleu

        aggregate, per_item = Bleu(4).compute_score(gts, res, verbose=0)
        for name, n in BLEU_N.items():
            if name in wanted:
                record(name, aggregate[n], per_item[n])
    if "cider" in wanted:
        from pycocoevalcap.cider.cider import Cider

        record("cider", *Cider().compute_score(gts, res))
    if "meteor" in wanted:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        try:
            record("meteor", *meteor.compute_score(gts, res))
        finally:
            meteor.meteor_p.stdin.close()  # the wrapper only stops its Java process in __del__
            meteor.meteor_p.kill()
            meteor.meteor_p.wait()
    if "spice" in wanted:
        from pycocoevalcap.spice.spice import Spice

        with contextlib.redirect_stdout(io.StringIO()):  # the jar prints its progress
            aggregate, per_item = Spice().compute_score(gts, res)
        record("spice", aggregate, [s["All"]["f"] for s in per_item])
    return out
