"""Fine-tuning overhead: a switchyard job's training step vs a bare PyTorch + peft loop, same run.

    python bench/finetune.py                 # CPU: LoRA and QLoRA (NF4), small Llama-shaped model
    python bench/finetune.py --device cuda   # GPU: a TinyLlama-1.1B-shaped random model, LoRA bf16 vs QLoRA NF4
    python bench/finetune.py --device cuda --shape llama-7b --steps 10 --repeats 1   # Llama-2-7B shape

Both sides train the same model (freshly built, random weights), the same examples in the same order,
with the same optimizer, scheduler, batch size and accumulation. The "job" side is
``switchyard.finetune.train.fit`` — the loop a finetune worker runs, with stop checks, token accuracy,
metrics events and progress (published to Redis/Postgres when SWITCHYARD_DATABASE_URL and
SWITCHYARD_REDIS_URL are set, else to a detached context) — minus checkpoints. Runs alternate
bare/job; the printed ratio is the fastest job step time / the fastest bare step time (goal <= 1.05). On
the CPU both use one thread and are timed in process CPU time, so other work on a shared machine does not
count; on a GPU, wall time after ``torch.cuda.synchronize()``. No downloads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    # hidden, intermediate, layers, heads, kv heads, vocab
    "cpu": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                num_key_value_heads=4),
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4, model_vocab_size=32000, max_position_embeddings=2048),
    "llama-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=32, model_vocab_size=32000, max_position_embeddings=4096),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=None, help="bare/job pairs per method")
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--methods", default="lora,qlora")
    parser.add_argument("--shape", choices=["tinyllama-1.1b", "llama-7b"], default="tinyllama-1.1b",
                        help="model shape for --device cuda (random weights)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on both sides")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-ft-"))
    try:
        return bench(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def bench(args: argparse.Namespace, workdir: Path) -> int:
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # so the loop's device() picks the CPU on any machine
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from switchyard.finetune import data, presets, train
    from switchyard.finetune.models import build_tiny_llama
    from switchyard.finetune.schemas import Hyperparameters

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device visible", file=sys.stderr)
        return 2
    cuda = args.device == "cuda"
    steps = args.steps or (20 if cuda else 30)
    repeats = args.repeats or (2 if cuda else 3)
    seq_len = args.seq_len or (512 if cuda else 64)
    batch_size = args.batch_size or 4
    if not cuda:
        # One thread, timed in process CPU time: on a shared machine wall time measures the neighbours.
        torch.set_num_threads(1)

    started = time.perf_counter()
    shape = args.shape if cuda else "cpu"
    model_path = build_tiny_llama(workdir / "model", dtype="bfloat16" if cuda else "float32",
                                  init_device="cuda" if cuda else "cpu", **SHAPES[shape])
    if cuda:
        torch.cuda.empty_cache()
    print(f"built {args.device} model in {time.perf_counter() - started:.0f}s at {model_path}")
    tokenizer = train.load_tokenizer(str(model_path))
    vocab = len(tokenizer)
    generator = torch.Generator().manual_seed(0)
    # Synthetic examples of exactly seq_len tokens: a prompt half (masked) and a completion half.
    examples = []
    for i in range(batch_size * 8):
        ids = torch.randint(4, vocab, (seq_len,), generator=generator).tolist()
        half = seq_len // 2
        examples.append(data.Example(i + 1, ids, [data.IGNORE_INDEX] * half + ids[half:]))
    pad = train.pad_id(tokenizer)

    from transformers import AutoConfig

    hidden = AutoConfig.from_pretrained(model_path).hidden_size
    ctx, publishing = context()
    rows = []
    for method in args.methods.split(","):
        hp = Hyperparameters(n_epochs=1000, batch_size=batch_size, learning_rate=1e-4, max_steps=steps,
                             eval_interval=10**6, checkpoint_interval=10**6, warmup_ratio=0.0,
                             dtype="bfloat16" if cuda else "float32",
                             bnb_4bit_compute_dtype="bfloat16" if cuda else "float32",
                             gradient_checkpointing=args.gradient_checkpointing)
        cfg = presets.resolve(hp, model="bench", model_path=str(model_path), method=method, seed=0,
                              hidden_size=hidden, n_train_examples=len(examples), n_train_rows=len(examples),
                              longest=seq_len, model_max=None)
        bare_times, job_times, peaks = [], [], {}
        try:
            # one untimed warm-up of each side (allocator, kernels, lazy imports)
            run_bare(cfg, examples, pad, 2)
            run_job(cfg, examples, pad, ctx, 2)
            for _ in range(repeats):
                t, peak = run_bare(cfg, examples, pad, steps)
                bare_times.append(t)
                peaks["bare"] = peak
                t, peak = run_job(cfg, examples, pad, ctx, steps)
                job_times.append(t)
                peaks["job"] = peak
        except Exception as exc:  # one method failing (no bitsandbytes kernels, say) must not hide the other
            print(f"{method}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"{method}: bare {[round(t * 1000, 1) for t in bare_times]} ms/step, "
              f"job {[round(t * 1000, 1) for t in job_times]} ms/step", flush=True)
        # The fastest of the repeats: noise only ever adds time.
        bare, job = min(bare_times), min(job_times)
        tokens_per_step = batch_size * seq_len
        rows.append((method, cfg, bare, job, tokens_per_step, peaks))

    print()
    checkpointing = " +gradient checkpointing" if args.gradient_checkpointing else ""
    print(f"device={args.device} ({torch.cuda.get_device_name(0) if cuda else f'{torch.get_num_threads()} threads'})"
          f"  model: {shape} {SHAPES[shape]}{checkpointing}"
          f"  seq_len={seq_len} batch={batch_size} steps={steps} x{repeats}"
          f"  job events: {'Redis+Postgres' if publishing else 'detached context'}"
          f"  timing: {'wall (cuda sync)' if cuda else 'process CPU time, 1 thread'}, best of {repeats}")
    header = (f"{'method':<14}{'bare ms/step':>14}{'job ms/step':>13}{'ratio':>8}{'bare tok/s':>12}{'job tok/s':>11}"
              f"{'peak MiB (bare/job)':>22}")
    print(header)
    print("-" * len(header))
    for method, cfg, bare, job, tokens, peaks in rows:
        label = f"{method} {'bf16' if method == 'lora' else cfg.bnb_4bit_quant_type}" if cuda else method
        peak = f"{peaks['bare']:.0f}/{peaks['job']:.0f}"
        print(f"{label:<14}{bare * 1000:>14.1f}{job * 1000:>13.1f}{job / bare:>8.3f}{tokens / bare:>12.0f}"
              f"{tokens / job:>11.0f}{peak:>22}")
    print("goal: ratio <= 1.05 (the platform adds nothing to training)")
    if cuda:
        print("peak MiB = torch.cuda.max_memory_allocated during the timed steps, weights included; compare LoRA bf16"
              " vs QLoRA NF4 with the QLoRA paper (Dettmers et al. 2023) and Unsloth's published tokens/s and VRAM.")
    else:
        print("peak MiB = process peak RSS (monotonic across the run on CPU)")
    return 0


def context():
    """A publishing JobContext when a stack is configured (events really go out), else a detached one."""
    from switchyard.config import get_settings
    from switchyard.context import JobContext

    settings = get_settings()
    if settings.database_url and settings.redis_url:
        from switchyard import jobs

        job, _ = jobs.create("switchyard.finetune.train", {"bench": True}, producer="bench")
        return JobContext(job.id), True
    return JobContext.detached("bench"), False


def fresh_model(cfg):
    from switchyard.finetune import train

    return train.add_adapter(train.load_base(cfg.model_path, cfg.method, cfg), cfg)


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def clock() -> float:
    """Wall time on a GPU (the work is on the device); this process's CPU time on the CPU."""
    import torch

    return time.perf_counter() if torch.cuda.is_available() else time.process_time()


def _reset_peak():
    import gc

    import torch

    gc.collect()  # peft models hold reference cycles: free the previous run's model before measuring
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_job(cfg, examples, pad, ctx, steps):
    from dataclasses import replace

    from switchyard.finetune import train

    model = fresh_model(cfg)
    _reset_peak()
    _sync()
    start = clock()
    train.fit(model, replace(cfg, total_steps=steps), examples, [], ctx, pad=pad)
    _sync()
    elapsed = (clock() - start) / steps
    peak = train.peak_memory_mb()
    del model
    return elapsed, peak


def run_bare(cfg, examples, pad, steps):
    """What one writes by hand: shuffle, collate, forward with labels, backward, clip, step."""
    import random

    import torch
    from transformers import get_scheduler

    from switchyard.finetune import train
    from switchyard.finetune.data import collate

    model = fresh_model(cfg)
    dev = train.device()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=0, num_training_steps=steps)
    order = list(range(len(examples)))
    random.Random(cfg.seed).shuffle(order)
    model.train()
    _reset_peak()
    _sync()
    start = clock()
    m = 0
    for _ in range(steps):
        for _ in range(cfg.gradient_accumulation_steps):
            picked = [examples[order[(m * cfg.batch_size + j) % len(order)]] for j in range(cfg.batch_size)]
            m += 1
            batch = {k: v.to(dev) for k, v in collate(picked, pad).items()}
            loss = model(**batch).loss / cfg.gradient_accumulation_steps
            loss.backward()
            loss.item()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    _sync()
    elapsed = (clock() - start) / steps
    peak = train.peak_memory_mb()
    del model
    return elapsed, peak


if __name__ == "__main__":
    sys.exit(main())
