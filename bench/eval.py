"""Evaluation metrics: items/s through switchyard vs. the reference package called directly, same data.

    python bench/eval.py            # 2,000 text items, 300 caption items, 24 + 16 generations
    python bench/eval.py --quick    # a tenth, for CI (--no-serving: without the default chat model)

For each metric, switchyard's path (``switchyard.evaluation.metrics.score``: per-item checks, per-item
scores and the aggregate) is timed against the reference package doing only the aggregate (sacrebleu's
corpus_bleu/corpus_chrf, rouge-score's score_multi per item, pycocoevalcap's PTB tokenizer + scorer),
best of five runs each, the two alternating. The ratio is reference time / switchyard time (goal >= 0.9: the
platform costs at most ~10%). Generation: ``generate`` (the LLM factory's local provider), one prompt in
flight, against ``AdapterServer.generate`` called directly, on a tiny random Llama built here; then a
``generate`` job's tokens/s on the default chat model (SmolLM2-135M-Instruct) against the serving bench's
one-request path, with 1 and 8 prompts in flight (the server batches concurrent prompts).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # serving.py's request helper is the generation baseline

WORDS = ["the", "a", "man", "woman", "dog", "cat", "horse", "rides", "runs", "sits", "on", "in", "near", "beach",
         "snow", "street", "park", "red", "blue", "small", "large", "plate", "food", "table", "two", "three",
         "people", "playing", "with", "ball", "tree", "house", "car"]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def race(reference: Callable[[], object], ours: Callable[[], object], runs: int = 5) -> tuple[float, float]:
    """Best time of each, the two alternating run by run, so that load on a shared machine hits both."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, bucket in ((reference, times[0]), (ours, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def row(name: str, n: int, reference_s: float, ours_s: float, rows: list[str]) -> None:
    def rate(seconds: float) -> str:
        return f"{n / seconds:,.1f}" if n / seconds < 100 else f"{n / seconds:,.0f}"

    rows.append(f"| eval {name} items/s (n={n}) | {rate(reference_s)} | {rate(ours_s)} | {reference_s / ours_s:.2f}x "
                "| >= 0.9x |")
    print(rows[-1], flush=True)


def text_benchmarks(n: int, rows: list[str]) -> None:
    import sacrebleu
    from rouge_score import rouge_scorer

    from switchyard.evaluation.metrics import Options, score
    from switchyard.evaluation.schemas import Item

    rng = random.Random(0)
    hyps = [sentence(rng) for _ in range(n)]
    refs = [[sentence(rng) for _ in range(n)], [sentence(rng) for _ in range(n)]]
    items = [Item(id=str(i), prediction=h, references=[refs[0][i], refs[1][i]]) for i, h in enumerate(hyps)]

    for name, reference in (("bleu", lambda: sacrebleu.corpus_bleu(hyps, refs)),
                            ("chrf", lambda: sacrebleu.corpus_chrf(hyps, refs))):
        row(name, n, *race(reference, lambda name=name: score([name], items, Options())), rows)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    reference = lambda: [scorer.score_multi([refs[0][i], refs[1][i]], h) for i, h in enumerate(hyps)]  # noqa: E731
    row("rouge1+2+L", n, *race(reference, lambda: score(["rouge1", "rouge2", "rougeL"], items, Options())), rows)


def coco_benchmarks(n: int, rows: list[str]) -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from switchyard.evaluation.metrics import Options, score
    from switchyard.evaluation.schemas import Item

    rng = random.Random(1)
    data = {str(i): (sentence(rng), [sentence(rng) for _ in range(3)]) for i in range(n)}
    items = [Item(id=k, prediction=p, references=r) for k, (p, r) in data.items()]

    def reference(scorer_factory: Callable[[], object]) -> None:
        tok = PTBTokenizer()
        gts = tok.tokenize({k: [{"caption": c} for c in r] for k, (_, r) in data.items()})
        res = tok.tokenize({k: [{"caption": p}] for k, (p, _) in data.items()})
        scorer = scorer_factory()
        scorer.compute_score(gts, res) if not isinstance(scorer, Bleu) else scorer.compute_score(gts, res, verbose=0)
        if isinstance(scorer, Meteor):
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()

    for name, factory in (("bleu1-4 (coco)", lambda: Bleu(4)), ("cider", Cider), ("meteor", Meteor)):
        metrics = ["bleu1", "bleu2", "bleu3", "bleu4"] if name.startswith("bleu") else [name]
        row(name, n, *race(lambda factory=factory: reference(factory),
                           lambda metrics=metrics: score(metrics, items, Options()), runs=3), rows)


def generation_benchmark(n: int, rows: list[str]) -> None:
    """The ``generate`` path's own cost: one prompt at a time (concurrency 1) against the server called
    directly, on a tiny random Llama (so that the model's time does not hide the platform's)."""
    from switchyard.evaluation.generate import fill_predictions
    from switchyard.evaluation.schemas import GenerateSpec, Item
    from switchyard.finetune.models import build_tiny_llama
    from switchyard.finetune.serving import server_for

    model = build_tiny_llama(Path(tempfile.mkdtemp(prefix="bench-eval-")) / "tiny-llama")
    os.environ["SWITCHYARD_FILE_ROOTS"] = str(model.parent)
    rng = random.Random(2)
    prompts = [sentence(rng) for _ in range(n)]
    items = [Item(id=str(i), prompt=p) for i, p in enumerate(prompts)]
    spec = GenerateSpec(model={"provider": "local", "base_model": str(model)}, max_tokens=16, concurrency=1)
    server = server_for(model)
    server.generate([{"role": "user", "content": "warm up"}], max_new_tokens=2)
    direct = lambda: [server.generate([{"role": "user", "content": p}], max_new_tokens=16) for p in prompts]  # noqa: E731
    row("generate, 1 in flight (tiny llama)", n, *race(direct, lambda: fill_predictions(items, spec, "default"),
                                                       runs=3), rows)


def serving_benchmark(n: int, tokens: int, rows: list[str]) -> None:
    """A ``generate`` job's throughput on the default chat model against the serving bench's one-request
    path (``bench/serving.py``'s ``served``: the provider's server, one request after another), same
    questions and token budget, greedy. tokens/s counts the completions' tokens (re-tokenised for ours)."""
    from serving import QUESTIONS, served
    from transformers import AutoTokenizer

    from switchyard.evaluation.generate import fill_predictions
    from switchyard.evaluation.schemas import GenerateSpec, Item
    from switchyard.finetune.base_models import DEFAULT_CHAT_MODEL, ensure_converted
    from switchyard.finetune.serving import server_for

    path = ensure_converted(DEFAULT_CHAT_MODEL)
    os.environ["SWITCHYARD_FILE_ROOTS"] = str(path.parent)
    tokenizer = AutoTokenizer.from_pretrained(path)
    server = server_for(path)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]
    items = [Item(id=str(i), prompt=q) for i, q in enumerate(questions)]
    served(server, questions[0], 4)  # warm-up
    counted: dict[str, int] = {}

    def baseline() -> None:
        counted["baseline"] = sum(served(server, q, tokens)[0] for q in questions)

    def ours(concurrency: int) -> None:
        spec = GenerateSpec(model={"provider": "local", "base_model": str(path)}, max_tokens=tokens,
                            concurrency=concurrency)
        filled, failed = fill_predictions(items, spec, "default")
        assert not failed, failed
        counted[f"c{concurrency}"] = sum(len(tokenizer(i.prediction, add_special_tokens=False)["input_ids"])
                                         for i in filled)

    for concurrency in (1, 8):
        base_s, ours_s = race(baseline, lambda c=concurrency: ours(c), runs=2)
        rows.append(f"| eval generate ({DEFAULT_CHAT_MODEL}, {tokens} tokens, {concurrency} in flight) tokens/s "
                    f"(n={n}) | {counted['baseline'] / base_s:,.1f} (serving bench, one request at a time) | "
                    f"{counted[f'c{concurrency}'] / ours_s:,.1f} | {base_s / ours_s:.2f}x items/s | "
                    f"{'>= 0.9x' if concurrency == 1 else '>= 2x'} |")
        print(rows[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-serving", action="store_true", help="skip the default chat model's generate row")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    rows: list[str] = ["| benchmark | baseline (same run) | switchyard | ratio | goal |", "|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    text_benchmarks(2000 // scale, rows)
    coco_benchmarks(max(300 // scale, 20), rows)
    generation_benchmark(max(24 // scale, 4), rows)
    if not args.no_serving:
        serving_benchmark(max(16 // scale, 4), 48, rows)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
