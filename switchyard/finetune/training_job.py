"""One fine-tuning job, start to end: validate files, train, register the adapter.

``precheck`` runs in the worker before the job is claimed (status ``validating_files``): an unknown
model or a bad file fails the job with line numbers and it never reaches ``running``. ``train_job`` is
the task body; on a redelivery (``ctx.attempt > 1``) it resumes from the newest checkpoint.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.context import JobContext
from switchyard.errors import InputRefused, InvalidParamsError
from switchyard.finetune import data, files, presets
from switchyard.finetune.models import UnknownModelError, resolve_caller_model
from switchyard.finetune.schemas import TrainParams

TASK = "switchyard.finetune.train"


@dataclass
class Prepared:
    params: TrainParams
    model_path: Path
    tokenizer: Any
    cfg: presets.RunConfig
    train: list[data.Example]
    valid: list[data.Example]
    n_examples: int


def _invalid(field: str, message: str, errors: list[data.LineError] | None = None) -> InvalidParamsError:
    if errors is None:
        return InvalidParamsError(TASK, [{"loc": [field], "msg": message, "type": "invalid_file"}])
    return InvalidParamsError(TASK, [{"loc": [field, f"line {e.line}"], "msg": e.message,
                                      "type": "invalid_file"} for e in errors])


def _records(ref: str, field: str, tenant: str) -> list[data.Record]:
    try:
        return data.parse_jsonl(files.read_bytes(ref, tenant), file=ref)
    except (files.FileNotFound, InputRefused) as exc:  # InputRefused: a path or URL outside the policy
        raise _invalid(field, str(exc)) from None
    except data.DataValidationError as exc:
        raise _invalid(field, str(exc), exc.errors) from None


def prepare(params: TrainParams, seed: int, tenant: str) -> Prepared:
    """Everything before loading weights: model path, tokenizer, validated and encoded data, config.

    Files are resolved within ``tenant`` (the job's): another tenant's file id is "not found".

    Raises ``InvalidParamsError`` (field ``model``, ``training_file`` or ``validation_file``, with a
    ``line N`` entry per bad line) so the job fails in ``validating_files``.
    """
    from transformers import AutoConfig

    from switchyard.finetune.train import load_tokenizer

    try:
        model_path = resolve_caller_model(params.model)
    except UnknownModelError as exc:
        raise InvalidParamsError(TASK, [{"loc": ["model"], "msg": str(exc), "type": "model_not_found"}]) from None
    except InputRefused as exc:
        raise InvalidParamsError(TASK, [{"loc": ["model"], "msg": str(exc), "type": "input_refused"}]) from None
    hp = params.resolved_hyperparameters()
    model_config = AutoConfig.from_pretrained(model_path)
    tokenizer = load_tokenizer(str(model_path))
    model_max = getattr(model_config, "max_position_embeddings", None)
    limit = presets.auto_max_length(hp, model_max)

    train_records = _records(params.training_file, "training_file", tenant)
    valid_records = _records(params.validation_file, "validation_file", tenant) if params.validation_file else []
    if not valid_records and hp.validation_split:
        train_records, valid_records = data.split(train_records, hp.validation_split, seed)
    try:
        train = data.encode_all(train_records, tokenizer, limit, params.training_file)
    except data.DataValidationError as exc:
        raise _invalid("training_file", str(exc), exc.errors) from None
    try:
        valid = data.encode_all(valid_records, tokenizer, limit, params.validation_file or "validation split")
    except data.DataValidationError as exc:
        raise _invalid("validation_file", str(exc), exc.errors) from None

    longest = max(len(e.input_ids) for e in train + valid)
    # max_length "auto" may shrink to the data (less padding); packing fills rows up to it.
    provisional = presets.resolve(hp, model=params.model, model_path=str(model_path), method="lora", seed=seed,
                                  hidden_size=model_config.hidden_size, n_train_examples=len(train),
                                  n_train_rows=len(train), longest=longest, model_max=model_max)
    rows = data.pack(train, provisional.max_length) if hp.packing else train
    cfg = presets.resolve(hp, model=params.model, model_path=str(model_path),
                          method=params.method.adapter_type, seed=seed, hidden_size=model_config.hidden_size,
                          n_train_examples=len(train), n_train_rows=len(rows), longest=longest,
                          model_max=model_max)
    return Prepared(params, model_path, tokenizer, cfg, rows, valid, len(train))


def precheck(params: TrainParams, job: Any) -> None:
    """Validate the model and files before the job is claimed (see module docstring)."""
    prepare(params, seed_for(params, job.id), job.tenant)


def seed_for(params: TrainParams, job_id: str) -> int:
    # OpenAI picks a seed when none is given; ours is derived from the job id, so a resumed run matches.
    if params.seed is not None:
        return params.seed
    return int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) % (2**31)


def adapter_name(params: TrainParams, job_id: str) -> str:
    """OpenAI-style ``ft:<base>:<suffix>:<job>``."""
    base = Path(params.model).name if "/" in params.model else params.model
    short = hashlib.sha256(job_id.encode()).hexdigest()[:12]
    return f"ft:{base}:{params.suffix or 'switchyard'}:{short}"


def train_job(params: TrainParams, ctx: JobContext) -> dict[str, Any]:
    """The task body of ``switchyard.finetune.train``."""
    from switchyard.finetune import adapters, checkpoints
    from switchyard.finetune.train import add_adapter, fit, load_base, pad_id

    prep = prepare(params, seed_for(params, ctx.job_id), ctx.tenant)
    cfg = prep.cfg
    ctx.message(f"validated files: {prep.n_examples} training examples in {len(prep.train)} rows, "
                f"{len(prep.valid)} validation examples; {cfg.total_steps} steps",
                config=cfg.to_dict())
    model = add_adapter(load_base(str(prep.model_path), cfg.method, cfg), cfg)

    ckpt_dir = checkpoints.job_dir(ctx.job_id)
    resume = ctx.attempt > 1
    if not resume and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # a first attempt never resumes someone else's leftovers

    def on_checkpoint(step: int, path: Path, metrics: dict[str, Any]) -> None:
        checkpoints.record(ctx.job_id, step, path, metrics)

    state = fit(model, cfg, prep.train, prep.valid, ctx, pad=pad_id(prep.tokenizer), checkpoint_dir=ckpt_dir,
                resume=resume, on_checkpoint=on_checkpoint)
    ctx.raise_if_stopped()  # a cancel during the last step still wins over registering

    name = adapter_name(params, ctx.job_id)
    url = adapters.store(model, name)
    metrics = {**state.last_metrics, "trained_tokens": state.trained_tokens,
               "stopped_early": state.stopped_early, "history": state.history}
    adapters.register(
        name=name, job_id=ctx.job_id, tenant=ctx.tenant, base_model=params.model,
        base_path=str(prep.model_path), method=cfg.method, config=cfg.to_dict(), metrics=metrics, url=url,
    )
    # The final adapter is the last entry of the job's checkpoint list (as in OpenAI's API).
    checkpoints.record(ctx.job_id, state.step, Path(url), state.last_metrics)
    ctx.message(f"registered adapter {name}", adapter=name, url=url)
    return {
        "fine_tuned_model": name, "adapter_url": url,
        "trained_tokens": state.trained_tokens, "steps": state.step, "stopped_early": state.stopped_early,
        "metrics": state.last_metrics, "hyperparameters": cfg.openai_hyperparameters, "config": cfg.to_dict(),
        "seed": cfg.seed,
    }
