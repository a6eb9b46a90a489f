"""The training loop: LoRA / QLoRA on a frozen base model, in named phases (after nanoGPT's ``train.py``).

    model, tokenizer = load_model(cfg)        # base (4-bit NF4 for qlora) + peft adapter
    state = fit(model, cfg, train, valid, ctx, checkpoint_dir=..., on_checkpoint=...)

Each optimizer step: stop check → learning rate → forward/backward with accumulation → clip → step →
log → eval + early stopping → checkpoint. The loss is summed over completion tokens of all micro-batches
and divided by their count, so gradient accumulation gives the same gradient as one large batch.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from switchyard.context import JobContext
from switchyard.errors import JobCancelled, WorkerShuttingDown
from switchyard.finetune import checkpoints
from switchyard.finetune.data import IGNORE_INDEX, Example, collate
from switchyard.finetune.presets import RunConfig

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

log = logging.getLogger("switchyard.finetune")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --- model ----------------------------------------------------------------------------------------------

def load_base(model_path: str, method: str, cfg: RunConfig | None = None) -> Any:
    """The frozen base model: full precision (LoRA) or 4-bit NF4 with double quantization (QLoRA)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dev = device()
    if method == "qlora":
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.bnb_4bit_quant_type if cfg else "nf4",
            bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant if cfg else True,
            bnb_4bit_compute_dtype=DTYPES[cfg.bnb_4bit_compute_dtype if cfg else "float32"],
        )
        return AutoModelForCausalLM.from_pretrained(model_path, quantization_config=quant,
                                                    device_map={"": str(dev)})
    dtype = DTYPES[cfg.dtype] if cfg else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(dev)


def add_adapter(base: Any, cfg: RunConfig) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        base.gradient_checkpointing_enable()
        base.enable_input_require_grads()
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, use_rslora=cfg.use_rslora, use_dora=cfg.use_dora,
                      bias="none", task_type="CAUSAL_LM")
    return get_peft_model(base, lora)


def load_tokenizer(model_path: str) -> Any:
    from transformers import AutoTokenizer

    from switchyard.finetune.data import ensure_chat_template

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    ensure_chat_template(tokenizer)
    return tokenizer


def pad_id(tokenizer: Any) -> int:
    # Padding is masked by position (data.collate), so reusing EOS as pad cannot hide real EOS labels.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# --- measurements ---------------------------------------------------------------------------------------

def peak_memory_mb() -> float:
    """CUDA peak allocated on a GPU, else the process's peak RSS."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def token_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss over completion tokens, correctly predicted completion tokens), as tensors.

    Labels are shifted (as transformers' own causal-LM loss does) rather than the logits, so the logits
    are never copied; nothing here waits for the device. Logits are computed only where a completion
    token is predicted (``logits_to_keep`` as a boolean mask): the vocabulary projection over the prompt
    would be a fifth of a small model's training compute, and its float copy the largest tensor.
    """
    shifted = F.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)[:, 1:]
    learned = shifted != IGNORE_INDEX
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=learned).logits
    labels = shifted[learned]
    flat = logits.reshape(-1, logits.size(-1))
    loss = F.cross_entropy(flat.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    with torch.no_grad():
        correct = ((flat.argmax(-1) == labels) & (labels != IGNORE_INDEX)).sum()
    return loss, correct


@torch.no_grad()
def evaluate(model: Any, rows: list[Example], batch_size: int, pad: int) -> dict[str, float]:
    model.eval()
    total_loss, tokens, correct = 0.0, 0, 0
    for start in range(0, len(rows), batch_size):
        batch = {k: v.to(device()) for k, v in collate(rows[start:start + batch_size], pad).items()}
        loss, c = token_loss(model, batch)
        n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        total_loss, tokens, correct = total_loss + float(loss), tokens + n, correct + int(c)
    model.train()
    return {"eval_loss": total_loss / max(tokens, 1), "eval_token_accuracy": correct / max(tokens, 1)}


# --- the loop -------------------------------------------------------------------------------------------

@dataclass
class TrainState:
    step: int = 0
    trained_tokens: int = 0
    best_eval_loss: float = math.inf
    evals_without_improvement: int = 0
    stopped_early: bool = False
    last_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _batches(rows: list[Example], batch_size: int, seed: int) -> Callable[[int], list[Example]]:
    """Micro-batch ``m`` of the run: epochs are reshuffled with ``seed + epoch``, so a resumed run sees
    exactly the batches the first attempt would have seen."""
    per_epoch = math.ceil(len(rows) / batch_size)
    orders: dict[int, list[int]] = {}

    def get(m: int) -> list[Example]:
        epoch, index = divmod(m, per_epoch)
        if epoch not in orders:
            order = list(range(len(rows)))
            random.Random(seed + epoch).shuffle(order)
            orders.clear()
            orders[epoch] = order
        picked = orders[epoch][index * batch_size:(index + 1) * batch_size]
        return [rows[i] for i in picked]

    return get


class _Emitter:
    """Publishes the loop's events from one background thread, in order, so that a training step never
    waits on Redis or Postgres. ``close()`` drains it; the loop closes it before it returns or raises."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="switchyard-finetune-events", daemon=True)
        self._thread.start()

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._queue.put((fn, args, kwargs))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
            except Exception:  # a lost event must not kill the training run
                log.exception("could not publish a training event")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _optimizer_and_scheduler(model: Any, cfg: RunConfig) -> tuple[Any, Any]:
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer,
                              num_warmup_steps=int(cfg.warmup_ratio * cfg.total_steps),
                              num_training_steps=cfg.total_steps)
    return optimizer, scheduler


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@dataclass
class _Loop:
    """One training run's moving parts, so that each phase of a step is a short named method and
    ``fit`` reads as the loop itself (after nanoGPT's ``train.py``)."""

    model: Any
    cfg: RunConfig
    ctx: JobContext
    pad: int
    batch: Callable[[int], list[Example]]
    optimizer: Any
    scheduler: Any
    emit: _Emitter
    checkpoint_dir: Path | None
    on_checkpoint: Callable[[int, Path, dict[str, Any]], None] | None
    state: TrainState = field(default_factory=TrainState)
    best_weights: dict[str, torch.Tensor] | None = None
    window_tokens: int = 0
    window_start: float = field(default_factory=time.perf_counter)

    def resume(self) -> None:
        """Adapter weights, optimizer, scheduler, step and RNG from the newest checkpoint, if any."""
        if self.checkpoint_dir is None or (last := checkpoints.latest(self.checkpoint_dir)) is None:
            return
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        saved = checkpoints.load_state(last)
        set_peft_model_state_dict(self.model, load_file(last / "adapter_model.safetensors", device=str(device())))
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        for key, value in saved["train_state"].items():
            setattr(self.state, key, value)
        self.emit(self.ctx.message, f"resumed from checkpoint at step {self.state.step} of {self.cfg.total_steps}",
                  step=self.state.step, attempt=self.ctx.attempt)

    def announce(self) -> None:
        trainable, total = self.model.get_nb_trainable_parameters()
        self.emit(self.ctx.metrics, step=self.state.step, trainable_params=trainable, total_params=total,
                  trainable_share=round(trainable / total, 6), total_steps=self.cfg.total_steps)

    def stop_check(self) -> None:
        """Cancel ends the job here; a worker shutdown checkpoints first, then requeues. LeaseLost
        propagates untouched: another worker owns the job now."""
        try:
            self.ctx.raise_if_stopped()
        except (JobCancelled, WorkerShuttingDown) as exc:
            if isinstance(exc, WorkerShuttingDown):
                self.checkpoint(self.state.last_metrics)
            verb = "cancelled" if isinstance(exc, JobCancelled) else "worker shutting down; checkpointed"
            self.emit(self.ctx.message, f"{verb} at step {self.state.step} of {self.cfg.total_steps}",
                      step=self.state.step)
            raise

    def step(self) -> dict[str, Any]:
        """Forward/backward with accumulation, clip, optimizer step; the step's metrics."""
        cfg, state, accum = self.cfg, self.state, self.cfg.gradient_accumulation_steps
        lr = self.scheduler.get_last_lr()[0]  # the scheduler sets it; read it for the log
        micro = [self.batch(state.step * accum + i) for i in range(accum)]
        # the loss is normalised by the step's completion tokens (the first token of a row is never
        # predicted, so it is never a learned label)
        step_tokens = sum(ex.n_trainable - (ex.labels[0] != IGNORE_INDEX) for rows in micro for ex in rows)
        sums = []
        for rows in micro:
            tensors = {k: v.to(device()) for k, v in collate(rows, self.pad).items()}
            loss, correct = token_loss(self.model, tensors)
            (loss / max(step_tokens, 1)).backward()
            sums.append(torch.stack([loss.detach(), correct.to(loss.dtype)]))
            self.window_tokens += sum(len(ex.input_ids) for ex in rows)
        step_loss, step_correct = torch.stack(sums).sum(0).tolist()  # one wait for the device per step

        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.trained_tokens += step_tokens
        return {"step": state.step, "total_steps": cfg.total_steps,
                "train_loss": round(step_loss / max(step_tokens, 1), 6),
                "train_token_accuracy": round(step_correct / max(step_tokens, 1), 6),
                "learning_rate": lr}

    def evaluate(self, metrics: dict[str, Any], valid_rows: list[Example]) -> None:
        """Eval loss on the validation rows; early stopping keeps the best weights seen."""
        cfg, state = self.cfg, self.state
        metrics.update({k: round(v, 6) for k, v in evaluate(self.model, valid_rows, cfg.batch_size, self.pad).items()})
        if metrics["eval_loss"] < state.best_eval_loss - cfg.early_stopping_threshold:
            state.best_eval_loss, state.evals_without_improvement = metrics["eval_loss"], 0
            if cfg.early_stopping_patience:
                self.best_weights = _trainable_state(self.model)
        else:
            state.evals_without_improvement += 1
        if cfg.early_stopping_patience and state.evals_without_improvement >= cfg.early_stopping_patience:
            state.stopped_early = True

    def log(self, metrics: dict[str, Any], log_every: int) -> None:
        state = self.state
        if state.step % log_every == 0 or "eval_loss" in metrics or state.step == self.cfg.total_steps:
            elapsed = time.perf_counter() - self.window_start
            metrics["tokens_per_second"] = round(self.window_tokens / elapsed, 1) if elapsed > 0 else None
            metrics["peak_memory_mb"] = round(peak_memory_mb(), 1)
            self.window_tokens, self.window_start = 0, time.perf_counter()
            self.emit(self.ctx.metrics, **metrics)
            self.emit(self.ctx.progress, state.step, self.cfg.total_steps)
        state.last_metrics = metrics
        state.history.append({k: metrics[k] for k in ("step", "train_loss", "eval_loss") if k in metrics})

    def checkpoint(self, metrics: dict[str, Any]) -> None:
        if self.checkpoint_dir is None:
            return
        state = self.state
        path = checkpoints.save(self.model, self.checkpoint_dir / f"step-{state.step:06d}", {
            "step": state.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(), "train_state": dict(vars(state)), "config": self.cfg.to_dict(), "metrics": metrics,
        })
        if self.on_checkpoint is not None:
            self.on_checkpoint(state.step, path, metrics)

    def restore_best(self) -> None:
        """Early stopping keeps the best evaluated adapter, not the last."""
        if self.best_weights is None:
            return
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                if name in self.best_weights:
                    param.copy_(self.best_weights[name])


def fit(
    model: Any,
    cfg: RunConfig,
    train_rows: list[Example],
    valid_rows: list[Example],
    ctx: JobContext,
    *,
    pad: int,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    on_checkpoint: Callable[[int, Path, dict[str, Any]], None] | None = None,
) -> TrainState:
    """Train ``model`` (a peft model) to ``cfg.total_steps``; checkpoints, metrics events, stop checks."""
    torch.manual_seed(cfg.seed)
    optimizer, scheduler = _optimizer_and_scheduler(model, cfg)
    loop = _Loop(model, cfg, ctx, pad, _batches(train_rows, cfg.batch_size, cfg.seed), optimizer, scheduler,
                 _Emitter(), checkpoint_dir, on_checkpoint)
    state, log_every = loop.state, max(1, cfg.total_steps // 200)
    try:
        if resume:
            loop.resume()
        loop.announce()
        model.train()
        loop.window_start = time.perf_counter()
        while state.step < cfg.total_steps:
            loop.stop_check()
            metrics = loop.step()
            if valid_rows and (state.step % cfg.eval_interval == 0 or state.step == cfg.total_steps):
                loop.evaluate(metrics, valid_rows)
            loop.log(metrics, log_every)
            if state.step % cfg.checkpoint_interval == 0 and state.step < cfg.total_steps:
                loop.checkpoint(metrics)
            if state.stopped_early:
                loop.emit(ctx.message, f"early stopping at step {state.step}: eval loss has not improved for "
                                       f"{state.evals_without_improvement} evaluations", step=state.step)
                break
    finally:
        loop.emit.close()
    loop.restore_best()
    return state
