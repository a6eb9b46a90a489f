"""Build the handbook QA fine-tuning set from ``questions.jsonl`` and ``demo/corpus`` (run from the repo root:
``.venv/bin/python demo/finetune/handbook/build.py``; the outputs are committed, so the demo needs no build).

Each example is what ``rag_answer``'s generate step sends the model: its system prompt with numbered
passages (the section holding the answer among sections of other documents, in a seeded random order)
and the question. The target is the strict answer format the base model does not follow: the short
answer and the passage it comes from, ``600 requests per minute [2]``. Every fifth question, the first
among them, is held out (``test.jsonl``, scored by the demo and the tests), four more validate, the
other 28 train.
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


def sections() -> dict[tuple[str, str], str]:
    out = {}
    for path in sorted(CORPUS.glob("*.md")):
        for block in re.split(r"(?m)^## ", path.read_text())[1:]:
            heading, _, body = block.partition("\n")
            out[(path.name, heading.strip())] = f"{heading.strip()}\n\n{body.strip()}"
    return out


def example(item: dict, secs: dict, rng: random.Random, distractors: int = 2) -> dict:
    gold = (item["doc"], item["h"])
    others = [k for k in secs if k[0] != item["doc"]]
    picked = [gold, *rng.sample(others, distractors)]
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
    test = [it for i, it in enumerate(items) if i % 5 == 0]
    rest = [it for i, it in enumerate(items) if i % 5 != 0]
    valid, train = rest[:4], rest[4:]
    splits = {"train": [example(it, secs, rng) for it in train],
              "valid": [example(it, secs, rng) for it in valid],
              "test": [example(it, secs, rng) for it in test]}
    for name, rows in splits.items():
        (HERE / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(name, len(rows))


if __name__ == "__main__":
    main()
