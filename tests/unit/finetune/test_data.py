from __future__ import annotations

import copy
import json

import pytest

from switchyard.finetune import data
from switchyard.finetune.data import IGNORE_INDEX, DataValidationError


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n"


CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Peru?"},
                     {"role": "assistant", "content": "Lima."}]}


def learned_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])


def test_three_formats_are_detected_per_line():
    records = data.parse_jsonl(jsonl(CHAT, {"prompt": "2+2=", "completion": " 4"},
                                     {"instruction": "Name the capital.", "input": "Peru", "output": "Lima"}))
    assert [r.line for r in records] == [1, 2, 3]
    assert records[0].messages[-1]["content"] == "Lima."
    assert records[1].prompt == "2+2=" and records[1].completion == " 4"
    assert [m["role"] for m in records[2].messages] == ["user", "assistant"]
    assert records[2].messages[0]["content"] == "Name the capital.\n\nPeru"


def test_bad_lines_are_all_reported_with_their_numbers():
    content = jsonl(CHAT, "{not json", [1, 2], {"messages": [{"role": "robot", "content": "x"}]},
                    {"messages": [{"role": "user", "content": "only a question"}]}, {"text": "unknown"},
                    {"prompt": "p", "completion": "   "})
    with pytest.raises(DataValidationError) as info:
        data.parse_jsonl(content, file="train.jsonl")
    lines = {e.line: e.message for e in info.value.errors}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7]
    assert "not valid JSON" in lines[2] and "JSON object" in lines[3] and "invalid role 'robot'" in lines[4]
    assert "no assistant message" in lines[5] and "unrecognised example" in lines[6] and "empty" in lines[7]
    assert str(info.value).startswith("train.jsonl: 6 invalid line(s): line 2: not valid JSON")


@pytest.mark.parametrize("content", [b"", b"\n \n", b"\xff\xfe"])
def test_empty_or_binary_file_fails(content):
    with pytest.raises(DataValidationError):
        data.parse_jsonl(content)


def test_chat_labels_cover_only_assistant_turns_ending_in_eos(tokenizer):
    multi = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello.", "weight": 0},
                          {"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima."}]}
    example = data.encode(data.parse_jsonl(jsonl(multi))[0], tokenizer, 512)
    # the first assistant turn has weight 0: shown, not learned
    assert learned_text(tokenizer, example) == "Lima.</s>"
    assert tokenizer.decode(example.input_ids).startswith("<s><|user|>\nHi\n<|assistant|>\nHello.</s>")
    assert example.input_ids[-1] == tokenizer.eos_token_id and example.labels[-1] == tokenizer.eos_token_id


def test_default_template_is_documented_and_used_without_one(tokenizer):
    assert tokenizer.chat_template == data.DEFAULT_CHAT_TEMPLATE
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<s><|user|>\nHi\n<|assistant|>\n"


def test_prompt_completion_is_raw_text_plus_eos(tokenizer):
    example = data.encode(data.parse_jsonl(jsonl({"prompt": "Shout: hi\nAnswer:", "completion": " HI!"}))[0],
                          tokenizer, 512)
    assert tokenizer.decode(example.input_ids) == "<s>Shout: hi\nAnswer: HI!</s>"
    assert learned_text(tokenizer, example) == " HI!</s>"


def test_a_model_template_is_used_and_its_eos_not_doubled(tokenizer):
    own = copy.deepcopy(tokenizer)
    own.chat_template = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}"
                         "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    example = data.encode(data.parse_jsonl(jsonl(CHAT))[0], own, 512)
    assert own.decode(example.input_ids) == "[system]Be brief.[user]Capital of Peru?[assistant]Lima.</s>"
    assert learned_text(own, example) == "Lima.</s>"


def test_a_template_without_eos_gets_eos_appended(tokenizer):
    own = copy.deepcopy(tokenizer)
    own.chat_template = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    example = data.encode(data.parse_jsonl(jsonl(CHAT))[0], own, 512)
    assert learned_text(own, example) == "Lima.</s>"


def test_too_long_lines_are_reported(tokenizer):
    records = data.parse_jsonl(jsonl({"prompt": "a", "completion": "b"}, {"prompt": "word " * 100, "completion": "x"}))
    with pytest.raises(DataValidationError) as info:
        data.encode_all(records, tokenizer, 32, "t.jsonl")
    assert [e.line for e in info.value.errors] == [2]
    assert "longer than max_length 32" in info.value.errors[0].message


def test_padding_is_masked_by_position_so_eos_as_pad_still_learns_eos(tokenizer):
    records = data.parse_jsonl(jsonl({"prompt": "a", "completion": " b"},
                                     {"prompt": "a longer prompt", "completion": " c"}))
    examples = data.encode_all(records, tokenizer, 64, "t")
    batch = data.collate(examples, pad_id=tokenizer.eos_token_id)  # pad == eos
    short = batch["labels"][0]
    n = len(examples[0].input_ids)
    assert int(short[n - 1]) == tokenizer.eos_token_id  # the real EOS is learned
    assert (short[n:] == IGNORE_INDEX).all() and (batch["attention_mask"][0, n:] == 0).all()


def test_packing_keeps_every_learned_token(tokenizer):
    records = data.parse_jsonl(jsonl(*[{"prompt": f"p{i}", "completion": f" c{i}"} for i in range(6)]))
    examples = data.encode_all(records, tokenizer, 64, "t")
    rows = data.pack(examples, 24)
    assert len(rows) < len(examples) and all(len(r.input_ids) <= 24 for r in rows)
    assert sum(r.n_trainable for r in rows) == sum(e.n_trainable for e in examples)


def test_validation_split_is_reproducible():
    records = data.parse_jsonl(jsonl(*[{"prompt": str(i), "completion": "x"} for i in range(20)]))
    train, valid = data.split(records, 0.2, seed=3)
    assert len(valid) == 4 and len(train) == 16
    assert [r.line for r in data.split(records, 0.2, seed=3)[1]] == [r.line for r in valid]
