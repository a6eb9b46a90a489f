"""RAG metrics: ``citation_support``, ``citation_support_judge`` and ``retrieval_recall@k``.

- ``citation_support``: the share of an answer's cited passages (``contexts``) that support it. A
  passage supports the answer when at least half of the answer's (Porter-stemmed) unigrams occur in it:
  rouge-score's ROUGE-1 precision of the answer against the passage, >= ``SUPPORT_THRESHOLD``. An
  answer that cites nothing scores 0.
- ``citation_support_judge``: the same share, with an LLM judge deciding each passage: the job's
  ``judge.model`` (default: the configured default model) through the LLM factory, as ``generate`` asks
  its model. The judge is asked for yes or no; the first standalone "yes" or "no" of its reply (after any
  ``<think>`` block) is the verdict. A judge error or a reply with neither fails that item, with the reason.
- ``retrieval_recall@k``: the share of the item's ``gold`` passage ids found in the first k ``retrieved``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from switchyard.evaluation.metrics import Options, Scored, usable
from switchyard.evaluation.schemas import RECALL_AT_K, GenerateSpec, Item, JudgeSpec

SUPPORT_THRESHOLD = 0.5
JUDGE_SYSTEM = ("You check whether a passage supports an answer. Reply with one word: yes or no.")
JUDGE_PROMPT = ("{question}Passage:\n{passage}\n\nAnswer:\n{answer}\n\n"
                "Does the passage support the answer (does it state or directly imply what the answer says)? "
                "Reply yes or no.")
_THINKING = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def _finish(result: Scored) -> Scored:
    if result.per_item:
        result.aggregate = sum(result.per_item.values()) / len(result.per_item)
    return result


def _cites(item: Item) -> str | None:
    if item.prediction is None:
        return "missing prediction"
    return None if item.contexts is not None else "missing contexts (the cited passages)"


def citation_support(items: Sequence[Item]) -> Scored:
    from rouge_score import rouge_scorer

    good, failed = usable(items, "citation_support", _cites)
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    result = Scored(failed=failed)
    for item in good:
        if not item.contexts:
            result.per_item[item.id] = 0.0
            continue
        # score(target, prediction): precision = share of the answer's unigrams found in the passage.
        supported = [scorer.score(passage, item.prediction)["rouge1"].precision >= SUPPORT_THRESHOLD
                     for passage in item.contexts]
        result.per_item[item.id] = sum(supported) / len(supported)
    return _finish(result)


def verdict(reply: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither ("Yes.", "**No**", "The answer is yes")."""
    found = _VERDICT.search(_THINKING.sub(" ", reply))
    return None if found is None else found.group(1).lower() == "yes"


def judge(spec: JudgeSpec | None, tenant: str) -> Callable[[str, str | None], str]:
    """The judge as a (prompt, system) → reply function, built as ``generate`` builds its model."""
    from switchyard.evaluation.generate import answerer

    spec = spec or JudgeSpec()
    return answerer(GenerateSpec(model=spec.model, max_tokens=spec.max_tokens), tenant)


def citation_support_judge(items: Sequence[Item], ask: Callable[[str, str | None], str]) -> Scored:
    good, failed = usable(items, "citation_support_judge", _cites)
    result = Scored(failed=failed)
    for item in good:
        question = f"Question:\n{item.question}\n\n" if item.question else ""
        supported: list[bool] = []
        for n, passage in enumerate(item.contexts, 1):
            prompt = JUDGE_PROMPT.format(question=question, passage=passage, answer=item.prediction)
            try:
                reply = ask(prompt, JUDGE_SYSTEM)
            except Exception as exc:  # one item's judge failure (a provider error) must not lose the others
                result.failed[item.id] = (f"citation_support_judge: judge failed on passage {n}: "
                                          f"{type(exc).__name__}: {exc}")
                break
            if (said := verdict(reply)) is None:
                result.failed[item.id] = (f"citation_support_judge: the judge's reply on passage {n} is not yes or "
                                          f"no: {reply[:80]!r}")
                break
            supported.append(said)
        else:
            result.per_item[item.id] = sum(supported) / len(supported) if supported else 0.0
    return _finish(result)


def recall_at_k(name: str, items: Sequence[Item]) -> Scored:
    k = int(RECALL_AT_K.match(name).group(1))

    def check(item: Item) -> str | None:
        if not item.gold:
            return "missing gold (the ids of the passages holding the answer)"
        return None if item.retrieved is not None else "missing retrieved (passage ids, best first)"

    good, failed = usable(items, name, check)
    result = Scored(failed=failed)
    for item in good:
        top = set(item.retrieved[:k])
        result.per_item[item.id] = sum(1 for g in set(item.gold) if g in top) / len(set(item.gold))
    return _finish(result)


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    out: dict[str, Scored] = {}
    for name in names:
        if name == "citation_support":
            out[name] = citation_support(items)
        elif name == "citation_support_judge":
            out[name] = citation_support_judge(items, judge(options.judge, options.tenant))
        else:
            out[name] = recall_at_k(name, items)
    return out
