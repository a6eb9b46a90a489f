"""generate through the LLM factory: a plain model and an agent graph (scripted model, no network)."""

from __future__ import annotations

from switchyard.evaluation.generate import fill_predictions, model_config
from switchyard.evaluation.schemas import GenerateSpec, Item

# The reflection graph's critique prompt quotes the question, so its rule comes first.
SCRIPT = {"provider": "scripted", "rules": [{"when": "Draft answer", "reply": "APPROVED"},
                                            {"when": "capital of Peru", "reply": "Lima."}],
          "responses": ["I do not know."]}


def test_model_generates_predictions_and_items_without_prompt_fail():
    items = [Item(id="a", prompt="What is the capital of Peru?"), Item(id="b", question="And of Mars?"),
             Item(id="c", references=["x"])]
    filled, failed = fill_predictions(items, GenerateSpec(model=SCRIPT, max_tokens=8), "default")
    assert [i.prediction for i in filled] == ["Lima.", "I do not know.", None]
    assert failed == {"c": "generate: missing prompt (or question)"}


def test_graph_generates_through_the_agent_pool_loader():
    filled, failed = fill_predictions([Item(id="a", prompt="What is the capital of Peru?", system="Be brief.")],
                                      GenerateSpec(model=SCRIPT, graph="reflection"), "default")
    assert failed == {} and filled[0].prediction == "Lima."


def test_output_budget_is_spelled_per_provider():
    assert model_config(GenerateSpec(model={"provider": "local", "base_model": "m"}, max_tokens=7),
                        "default")["max_new_tokens"] == 7
    assert model_config(GenerateSpec(model="openai:gpt-4o-mini", max_tokens=9), "default")["max_tokens"] == 9


def test_prompts_are_in_flight_together_and_keep_their_order(monkeypatch):
    """concurrency=4: four prompts meet at a barrier (one at a time, it would break after its timeout)."""
    import threading

    from switchyard.evaluation import generate

    barrier = threading.Barrier(4, timeout=60)

    def answerer(spec, tenant):
        def ask(prompt, system):
            barrier.wait()
            if prompt == "p2":
                raise RuntimeError("provider down")
            return prompt.upper()
        return ask

    monkeypatch.setattr(generate, "answerer", answerer)
    items = [Item(id=str(n), prompt=f"p{n}") for n in range(4)] + [Item(id="none")]
    seen: list[int] = []
    filled, failed = fill_predictions(items, GenerateSpec(model="scripted", concurrency=4), "default",
                                      lambda done, total: seen.append(done))
    assert [i.prediction for i in filled] == ["P0", "P1", None, "P3", None]
    assert failed == {"none": "generate: missing prompt (or question)", "2": "generate: RuntimeError: provider down"}
    assert seen == [2, 3, 4, 5]
