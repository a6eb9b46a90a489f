"""A registered adapter in use: the LangChain chat model by name, and the `switchyard adapters` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from switchyard import client
from switchyard.finetune import adapters
from switchyard.finetune.models import build_tiny_llama, register_base_model

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "demo" / "finetune"


@pytest.fixture(scope="module")
def adapter_name(stack, start_worker, tmp_path_factory):
    path = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-cli"))
    register_base_model("tiny-llama-cli", path)
    worker = start_worker("finetune")
    try:
        job = client.enqueue("finetune.train", {
            "model": "tiny-llama-cli", "training_file": str(DEMO / "shout.jsonl"), "suffix": "shout",
            "method": {"type": "lora", "hyperparameters": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2}}})
        final = client.wait(job.id, timeout=180)
    finally:
        worker.terminate()
    assert final.status.value == "succeeded", final.error
    return final.result["fine_tuned_model"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "switchyard.cli", "adapters", *args], capture_output=True,
                          text=True, timeout=120, check=check)


def test_chat_model_answers_with_a_newly_registered_adapter_by_name(adapter_name):
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import HumanMessage, SystemMessage

    from switchyard.finetune.serving import ChatLocalAdapter

    class Tokens(BaseCallbackHandler):
        def __init__(self):
            self.tokens: list[str] = []

        def on_llm_new_token(self, token, **kwargs):
            self.tokens.append(token)

    llm = ChatLocalAdapter(adapter=adapter_name, max_new_tokens=8)
    messages = [SystemMessage("Shout it."), HumanMessage("Shout: good morning")]
    answer = llm.invoke(messages)
    assert isinstance(answer.content, str) and answer.response_metadata["model_name"] == adapter_name
    handler = Tokens()
    chunks = list(llm.stream(messages, config={"callbacks": [handler]}))
    assert "".join(c.content for c in chunks) == answer.content
    assert [t for t in handler.tokens if t] == [c.content for c in chunks if c.content]


def test_adapters_cli_lists_shows_exports_merges_and_deletes(adapter_name, tmp_path):
    listed = [json.loads(line)["name"] for line in cli("list", "--json").stdout.splitlines()]
    assert adapter_name in listed
    assert adapter_name in cli("list").stdout
    shown = json.loads(cli("show", adapter_name).stdout)
    assert shown["base_model"] == "tiny-llama-cli" and shown["method"] == "lora" and shown["metrics"]["step"] == 4

    cli("export", adapter_name, str(tmp_path / "exported"))
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["adapter_config.json",
                                                                         "adapter_model.safetensors"]

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cli("merge", adapter_name, str(tmp_path / "merged"))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    record = adapters.get_adapter(adapter_name)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(record.base_path),
                                           str(tmp_path / "exported")).eval()
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft_model(ids).logits, atol=1e-5)

    assert cli("register-base", "tiny-llama-cli-copy", record.base_path).stdout.startswith("tiny-llama-cli-copy ->")
    assert "tiny-llama-cli-copy" in cli("bases").stdout
    assert cli("register-base", "nope", str(tmp_path), check=False).returncode != 0

    assert "deleted" in cli("delete", adapter_name, "--yes").stdout
    missing = cli("show", adapter_name, check=False)
    assert missing.returncode != 0 and "no adapter named" in missing.stderr
    assert not Path(record.url).exists()
