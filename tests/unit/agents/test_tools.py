from __future__ import annotations

from langchain_core.documents import Document

from graphs.tools import calculator, format_passages


def test_calculator_does_arithmetic_and_refuses_code():
    assert calculator.invoke({"expression": "(3 + 4) * 2 / sqrt(16)"}) == "3.5"
    assert calculator.invoke({"expression": "2 ** 10"}) == "1024"
    assert calculator.invoke({"expression": "__import__('os').system('true')"}).startswith("error:")
    assert calculator.invoke({"expression": "1 / 0"}).startswith("error:")


def test_passages_are_numbered_with_sources():
    text = format_passages([Document("A.", metadata={"source": "a.md"}), Document("B.", metadata={"title": "B"})])
    assert text == "[1] (source: a.md)\nA.\n\n[2] (source: B)\nB."
