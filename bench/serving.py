"""The local provider against a bare ``model.generate`` on the same model and prompts (greedy).

    .venv/bin/python bench/serving.py [--tokens 48] [--concurrency 8] [--repeat 3]

1. One request: tokens/s and time to first token of ``AdapterServer`` (queue, batching window, per-row
   stop checks and incremental decoding) against ``model.generate`` with a streamer (goal >= 0.9x).
2. ``--concurrency`` requests at once through the provider (dynamic batching: one batch) against the
   same prompts as sequential bare ``generate`` calls: total tokens/s (goal >= 2x).
3. Peak memory (process RSS; CUDA peak allocated on a GPU).

The model is the default chat model (``smollm2-135m-instruct``, converted once into STATE_DIR/models).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import threading
import time
from typing import Any

QUESTIONS = [
    "Explain how a note-taking app can keep notes in sync across devices.",
    "Describe three ways a team can organise shared notebooks.",
    "Write a short guide to searching notes quickly.",
    "What should an administrator check before removing a workspace member?",
    "Explain the difference between exporting a notebook and backing it up.",
    "Describe how offline mode should handle conflicting edits.",
    "Write advice for keeping a mobile app's battery use low.",
    "Explain why API rate limits exist and how clients should respect them.",
]


class _FirstToken:
    """A transformers streamer that notes when the first generated token arrives (the first put is the
    prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2 and self.first is None:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def bare(model: Any, tokenizer: Any, question: str, tokens: int) -> tuple[int, float, float]:
    """(generated tokens, seconds, seconds to first token) of one plain ``generate``."""
    import torch

    inputs = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True).to(model.device)
    streamer = _FirstToken()
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False, streamer=streamer,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    elapsed = time.perf_counter() - start
    return out.shape[1] - inputs["input_ids"].shape[1], elapsed, (streamer.first or start) - start


def served(server: Any, question: str, tokens: int) -> tuple[int, float, float]:
    start = time.perf_counter()
    first = None
    request = server.submit([{"role": "user", "content": question}], None, max_new_tokens=tokens)
    for _ in request:
        first = first or time.perf_counter()
    elapsed = time.perf_counter() - start
    return request.completion_tokens, elapsed, (first or start) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from switchyard.finetune.base_models import DEFAULT_CHAT_MODEL, ensure_converted
    from switchyard.finetune.serving import AdapterServer
    from switchyard.finetune.train import device

    path = ensure_converted(DEFAULT_CHAT_MODEL)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device()).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    server = AdapterServer(path)
    question = QUESTIONS[0]
    bare(model, tokenizer, question, 4), served(server, question, 4)  # warm-up: first-call allocations

    # 1. one request, alternating so that machine noise hits both alike
    rows: dict[str, list[tuple[int, float, float]]] = {"bare": [], "served": []}
    for _ in range(args.repeat):
        rows["bare"].append(bare(model, tokenizer, question, args.tokens))
        rows["served"].append(served(server, question, args.tokens))
    rate = {k: statistics.median(n / s for n, s, _ in v) for k, v in rows.items()}
    ttft = {k: statistics.median(f for _, _, f in v) * 1000 for k, v in rows.items()}
    print(f"model {DEFAULT_CHAT_MODEL} on {device()}, {args.tokens} new tokens, greedy, median of {args.repeat}")
    print(f"one request    bare generate {rate['bare']:7.1f} tok/s  ttft {ttft['bare']:6.1f} ms | "
          f"provider {rate['served']:7.1f} tok/s  ttft {ttft['served']:6.1f} ms | "
          f"throughput {rate['served'] / rate['bare']:.2f}x (goal >= 0.9x), ttft {ttft['served'] / ttft['bare']:.2f}x")

    # 2. N requests: sequential bare calls vs all at once through the provider
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.concurrency)]
    start = time.perf_counter()
    bare_tokens = sum(bare(model, tokenizer, q, args.tokens)[0] for q in prompts)
    bare_rate = bare_tokens / (time.perf_counter() - start)
    results: list[tuple[int, float, float]] = []
    batches_before = len(server.batches)
    start = time.perf_counter()
    threads = [threading.Thread(target=lambda q=q: results.append(served(server, q, args.tokens))) for q in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served_rate = sum(n for n, _, _ in results) / (time.perf_counter() - start)
    print(f"{args.concurrency} requests    sequential bare {bare_rate:7.1f} tok/s ({bare_tokens} tokens) | "
          f"provider, concurrent {served_rate:7.1f} tok/s (batches {server.batches[batches_before:]}) | "
          f"{served_rate / bare_rate:.2f}x (goal >= 2x)")

    # 3. memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda = ""
    if torch.cuda.is_available():
        cuda = f", CUDA peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    print(f"peak memory    process RSS {peak:.0f} MiB (two copies of the model: bare and served){cuda}")


if __name__ == "__main__":
    main()
