"""Training data: three JSONL formats, validation with line numbers, and encoding with completion-only labels.

Formats (one JSON object per line, detected per line):

- chat: ``{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": "..."}, ...]}`` — OpenAI's
  fine-tuning format; an assistant message may carry ``"weight": 0`` to be shown but not learned;
- prompt/completion: ``{"prompt": "...", "completion": "..."}`` — raw text, no template;
- alpaca: ``{"instruction": "...", "input": "...", "output": "...", "system": "..."}`` — turned into chat.

Chat is rendered with the tokenizer's chat template, or else ``DEFAULT_CHAT_TEMPLATE``. Labels are
``-100`` everywhere except the assistant (completion) tokens, and every learned turn ends in EOS so the
tuned model stops. Padding is masked in the labels by position (not by token id), so a tokenizer whose
pad token is its EOS still learns to emit EOS.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

# The template for models that ship none. Each turn is "<|role|>\n{content}", turns are separated by a
# newline, and an assistant turn ends with the EOS token — the token generation stops on.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if not loop.first %}{{ '\\n' }}{% endif %}"
    "<|{{ message['role'] }}|>{{ '\\n' }}{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{% if messages %}{{ '\\n' }}{% endif %}<|assistant|>{{ '\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class DataValidationError(ValueError):
    """A training or validation file has bad lines; ``errors`` lists them with their line numbers."""

    def __init__(self, file: str, errors: list[LineError], limit: int = 20):
        self.file = file
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:limit])
        more = f"; and {len(errors) - limit} more" if len(errors) > limit else ""
        super().__init__(f"{file}: {len(errors)} invalid line(s): {shown}{more}")


@dataclass(frozen=True)
class Record:
    """One valid line, normalised: chat ``messages``, or raw ``prompt`` + ``completion``."""

    line: int
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    completion: str | None = None


@dataclass(frozen=True)
class Example:
    line: int
    input_ids: list[int]
    labels: list[int]

    @property
    def n_trainable(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


# --- parsing and validation (no tokenizer needed: the API runs this on upload) ----------------------

def parse_jsonl(content: bytes | str, file: str = "file") -> list[Record]:
    """Every line as a ``Record``; raises ``DataValidationError`` listing each bad line."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataValidationError(file, [LineError(0, f"not UTF-8 text ({exc.reason})")]) from None
    records: list[Record] = []
    errors: list[LineError] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        try:
            records.append(_record(number, obj))
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
    if not records and not errors:
        errors.append(LineError(0, "the file is empty: no training examples"))
    if errors:
        raise DataValidationError(file, errors)
    return records


def _record(line: int, obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        return Record(line, messages=_check_messages(obj["messages"]))
    if "prompt" in obj or "completion" in obj:
        prompt, completion = obj.get("prompt"), obj.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise ValueError("'prompt' and 'completion' must both be strings")
        if not completion.strip():
            raise ValueError("'completion' is empty: nothing to learn")
        return Record(line, prompt=prompt, completion=completion)
    if "instruction" in obj and "output" in obj:
        parts = [obj.get(k) for k in ("instruction", "input", "output", "system")]
        if not all(p is None or isinstance(p, str) for p in parts):
            raise ValueError("'instruction', 'input', 'output' and 'system' must be strings")
        instruction, user_input, output, system = parts
        if not output or not output.strip():
            raise ValueError("'output' is empty: nothing to learn")
        messages = [{"role": "system", "content": system, "weight": 0}] if system else []
        user = f"{instruction}\n\n{user_input}" if user_input else instruction
        messages.append({"role": "user", "content": user, "weight": 0})
        messages.append({"role": "assistant", "content": output, "weight": 1})
        return Record(line, messages=messages)
    raise ValueError("unrecognised example: expected 'messages', 'prompt'+'completion', "
                     "or 'instruction'+'output' (alpaca)")


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    learned = 0
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{i}] is not an object")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"messages[{i}] has invalid role {role!r}; expected one of {sorted(ROLES)}")
        if message.get("tool_calls") or message.get("function_call"):
            raise ValueError(f"messages[{i}]: tool_calls / function_call training is not supported")
        content = message.get("content")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}] ({role}) needs string 'content'")
        weight = message.get("weight", 1)
        if weight not in (0, 1):
            raise ValueError(f"messages[{i}]: 'weight' must be 0 or 1")
        if role == "assistant" and weight == 1:
            if not content.strip():
                raise ValueError(f"messages[{i}]: empty assistant message")
            learned += 1
        out.append({"role": role, "content": content, "weight": weight})
    if learned == 0:
        raise ValueError("no assistant message to learn from (need at least one with weight 1)")
    return out


# --- encoding -----------------------------------------------------------------------------------------

def ensure_chat_template(tokenizer: Any) -> None:
    """Give a tokenizer without a chat template the documented default one."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=generation_prompt)


def _segments(record: Record, tokenizer: Any) -> list[tuple[str, bool]]:
    """The example as ``(text, learned)`` pieces whose concatenation is the rendered conversation."""
    if record.messages is None:
        bos = tokenizer.bos_token or ""
        return [(bos + (record.prompt or ""), False), (record.completion or "", True)]
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(record.messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, record.messages[:i], True) if i else _render(tokenizer, [], True)
        full = _render(tokenizer, record.messages[: i + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError("the chat template does not render turns as a growing prefix; "
                             "cannot tell prompt from completion")
        segments.append((prompt[len(done):], False))
        segments.append((full[len(prompt):], bool(message["weight"])))
        done = full
    return segments


def encode(record: Record, tokenizer: Any, max_length: int) -> Example:
    """Token ids and labels (completion tokens only, each learned turn ending in EOS)."""
    eos_id = tokenizer.eos_token_id
    input_ids: list[int] = []
    labels: list[int] = []
    segments = _segments(record, tokenizer)
    for text, learned in segments:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        if learned and eos_id is not None and eos_id not in ids:
            ids = [*ids, eos_id]  # the template did not close the turn with EOS: add it
        input_ids.extend(ids)
        labels.extend(ids if learned else [IGNORE_INDEX] * len(ids))
    if len(input_ids) > max_length:
        raise ValueError(f"{len(input_ids)} tokens, longer than max_length {max_length}")
    return Example(record.line, input_ids, labels)


def encode_all(records: list[Record], tokenizer: Any, max_length: int, file: str) -> list[Example]:
    examples, errors = [], []
    for record in records:
        try:
            examples.append(encode(record, tokenizer, max_length))
        except ValueError as exc:
            errors.append(LineError(record.line, str(exc)))
    if errors:
        raise DataValidationError(file, errors)
    return examples


def longest(records: list[Record], tokenizer: Any) -> int:
    """Tokens in the longest example (for the ``max_length: auto`` preset)."""
    return max(len(encode(r, tokenizer, 1 << 30).input_ids) for r in records)


def split(records: list[Record], share: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out ``share`` of the records (at least one) for validation, reproducibly."""
    if share <= 0 or len(records) < 2:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(len(records) * share))
    held = set(order[:n_valid])
    return [r for i, r in enumerate(records) if i not in held], [records[i] for i in sorted(held)]


# --- batching --------------------------------------------------------------------------------------------

def pack(examples: list[Example], max_length: int) -> list[Example]:
    """Greedily concatenate examples into rows of at most ``max_length`` tokens (fewer pad tokens).

    Packed examples attend to each other inside a row (no per-example masks: the SDPA path has none);
    each row still learns only completion tokens and EOS.
    """
    rows: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    for ex in sorted(examples, key=lambda e: -len(e.input_ids)):
        if ids and len(ids) + len(ex.input_ids) > max_length:
            rows.append(Example(len(rows) + 1, ids, labels))
            ids, labels = [], []
        ids, labels = ids + ex.input_ids, labels + ex.labels
    if ids:
        rows.append(Example(len(rows) + 1, ids, labels))
    return rows


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; padding is masked in ``attention_mask`` and ``labels`` by position."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        input_ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
