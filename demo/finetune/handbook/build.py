"""Build the handbook QA fine-tuning set from ``questions.jsonl`` and ``demo/corpus`` (run from the repo root:
``.venv/bin/python demo/finetune/handbook/build.py``; the outputs are committed, so the demo needs no build).

The skill taught is the one a 135M model can learn in a few dozen steps: answer a question by copying
the answer span from the given passages, and cite the passage it came from. Each example is what
``rag_answer``'s generate step sends the model: its system prompt with numbered passages (the section
holding the answer among 1-3 sections of other documents, in a seeded random order) and the question.
The target is the span itself, verbatim from the passage, then its number: ``600 requests per minute [2]``.
The base model answers in free sentences instead, so it rarely matches.

The held-out set tests the skill on contexts the adapter never saw: every question about ``TEST_DOCS``
(api.md and security.md) is held out (``test.jsonl``), and no training or validation example shows a
passage of those documents, not even as a distractor. Four questions of the other documents validate;
the rest train.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from langchain_core.documents import Document

from graphs.rag_answer import ANSWER_PROMPT
from graphs.tools import format_passages

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "corpus"
TEST_DOCS = frozenset({"api.md", "security.md"})
N_VALID = 4


def sections() -> dict[tuple[str, str], str]:
    out = {}
    for path in sorted(CORPUS.glob("*.md")):
        for block in re.split(r"(?m)^## ", path.read_text())[1:]:
            heading, _, body = block.partition("\n")
            out[(path.name, heading.strip())] = f"{heading.strip()}\n\n{body.strip()}"
    return out


def example(item: dict, secs: dict, pool: list[tuple[str, str]], rng: random.Random) -> dict:
    gold = (item["doc"], item["h"])
    if item["a"] not in " ".join(secs[gold].split()):  # the skill is copying: the answer must be a span
        raise ValueError(f"{item['a']!r} is not a span of {gold}")
    others = [k for k in pool if k[0] != item["doc"]]
    picked = [gold, *rng.sample(others, rng.randint(1, 3))]
    rng.shuffle(picked)
    docs = [Document(secs[k], metadata={"source": f"demo/corpus/{k[0]}"}) for k in picked]
    n = picked.index(gold) + 1
    return {"messages": [{"role": "system", "content": ANSWER_PROMPT.format(passages=format_passages(docs))},
                         {"role": "user", "content": item["q"]},
                         {"role": "assistant", "content": f"{item['a']} [{n}]"}]}


def main() -> None:
    rng = random.Random(11)
    secs = sections()
    items = [json.loads(line) for line in (HERE / "questions.jsonl").read_text().splitlines() if line.strip()]
    test = [it for it in items if it["doc"] in TEST_DOCS]
    rest = [it for it in items if it["doc"] not in TEST_DOCS]
    rng.shuffle(rest)
    valid, train = rest[:N_VALID], rest[N_VALID:]
    seen = [k for k in secs if k[0] not in TEST_DOCS]  # training never shows a held-out document
    splits = {"train": [example(it, secs, seen, rng) for it in train],
              "valid": [example(it, secs, seen, rng) for it in valid],
              "test": [example(it, secs, list(secs), rng) for it in test]}
    for name, rows in splits.items():
        (HERE / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(name, len(rows))


if __name__ == "__main__":
    main()
