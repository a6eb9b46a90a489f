"""Two adapters trained on different tasks, served by one resident base model and swapped per request."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from switchyard.finetune.schemas import TrainParams
from switchyard.finetune.serving import AdapterServer
from switchyard.finetune.train import add_adapter, fit, load_base, pad_id
from switchyard.finetune.training_job import prepare

DEMO = Path(__file__).resolve().parents[3] / "demo" / "finetune"
PROMPT = [{"role": "user", "content": "What is the capital of Peru?"}]


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory, recording):
    out = {}
    for name, file in (("capitals", "capitals.jsonl"), ("shout", "shout.jsonl")):
        params = TrainParams(model=str(tiny_model), training_file=str(DEMO / file), method={
            "type": "lora", "hyperparameters": {"max_steps": 12, "n_epochs": 3, "batch_size": 4,
                                                "learning_rate": 2e-2}})
        prep = prepare(params, seed=1, tenant="default")
        model = add_adapter(load_base(str(tiny_model), "lora", prep.cfg), prep.cfg)
        fit(model, prep.cfg, prep.train, prep.valid, recording(), pad=pad_id(prep.tokenizer))
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        out[name] = path
    return out


def test_adapters_swap_per_request_on_one_resident_base(tiny_model, trained):
    server = AdapterServer(tiny_model, max_resident=4)
    text = "<s><|user|>\nWhat is the capital of Peru?\n<|assistant|>\n"
    base = server.logits(text)
    capitals = server.logits(text, "capitals", path=trained["capitals"])
    shout = server.logits(text, "shout", path=trained["shout"])
    assert not torch.equal(capitals, base) and not torch.equal(shout, base) and not torch.equal(capitals, shout)
    # switching back and forth reloads neither the base nor the adapters, and answers the same
    assert torch.equal(server.logits(text, "capitals"), capitals)
    assert torch.equal(server.logits(text, "shout"), shout)
    assert server.base_loads == 1 and server.adapter_loads == 2 and server.resident == ["capitals", "shout"]
    # the base with adapters disabled is bit-identical to the untouched base model
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        untouched = fresh(**server._tokenizer(text, return_tensors="pt")).logits
    assert torch.equal(server.logits(text), untouched)
    assert torch.equal(base, untouched)


def test_resident_adapters_are_lru_bounded(tiny_model, trained):
    server = AdapterServer(tiny_model, max_resident=1)
    server.generate(PROMPT, "capitals", path=trained["capitals"], max_new_tokens=4)
    server.generate(PROMPT, "shout", path=trained["shout"], max_new_tokens=4)
    assert server.resident == ["shout"] and server.base_loads == 1
    server.generate(PROMPT, "capitals", path=trained["capitals"], max_new_tokens=4)
    assert server.resident == ["capitals"] and server.adapter_loads == 3 and server.base_loads == 1


def test_streaming_matches_generate(tiny_model, trained):
    server = AdapterServer(tiny_model)
    whole = server.generate(PROMPT, "capitals", path=trained["capitals"], max_new_tokens=12)
    pieces = list(server.stream(PROMPT, "capitals", path=trained["capitals"], max_new_tokens=12))
    assert "".join(pieces) == whole and len(pieces) >= 1
    assert "".join(server.stream(PROMPT, None, max_new_tokens=12)) == server.generate(PROMPT, None, max_new_tokens=12)


def test_concurrent_requests_are_batched_with_mixed_adapters(tiny_model, trained):
    """Requests on the base and on two adapters, sent at once, run as one batch (peft's mixed-adapter
    inference) and each gets the answer it gets alone; a sampled row leaves the greedy rows greedy."""
    alone = AdapterServer(tiny_model, batch_wait_ms=0)
    plan = [(None, None), ("capitals", trained["capitals"]), ("shout", trained["shout"]),
            ("capitals", trained["capitals"])]
    expected = [alone.generate(PROMPT, name, path=path, max_new_tokens=10) for name, path in plan]
    batched = AdapterServer(tiny_model, batch_wait_ms=500)
    requests = [batched.submit(PROMPT, name, path=path, max_new_tokens=10) for name, path in plan]
    sampled = batched.submit(PROMPT, "shout", path=trained["shout"], max_new_tokens=10, temperature=1.5, top_p=0.9)
    assert ["".join(r) for r in requests] == expected
    assert "".join(sampled) is not None and sampled.finish_reason in ("length", "stop")
    assert batched.batches == [5] and batched.base_loads == 1


def test_stop_strings_and_limits_are_per_request(tiny_model):
    server = AdapterServer(tiny_model, batch_wait_ms=100)
    whole = server.generate(PROMPT, None, max_new_tokens=16)
    stop = whole[len(whole) // 2: len(whole) // 2 + 2]
    short, cut = server.submit(PROMPT, None, max_new_tokens=3), server.submit(PROMPT, None, max_new_tokens=16,
                                                                              stop=[stop])
    assert "".join(cut) == whole[: whole.index(stop)] and cut.finish_reason == "stop"
    assert whole.startswith("".join(short)) and short.completion_tokens == 3 and short.finish_reason == "length"
