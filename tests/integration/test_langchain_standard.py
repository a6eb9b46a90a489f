"""LangChain's standard suites against real Postgres + pgvector: the VectorStore (sync and async) and
the retriever (over the bundled all-MiniLM-L6-v2)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from switchyard.retrieval import ingest_documents
from switchyard.retrieval.langchain import SwitchyardRetriever, SwitchyardVectorStore

# The suites' async tests carry no asyncio mark and the project runs pytest-asyncio in strict mode;
# marking the module also marks the sync tests, which pytest-asyncio then warns about harmlessly.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:The test <Function .* is marked with '@pytest.mark.asyncio'"),
]


class TestSwitchyardVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, stack) -> SwitchyardVectorStore:
        # A fresh collection per test, so each starts empty.
        return SwitchyardVectorStore(f"lc-{uuid.uuid4().hex[:10]}", self.get_embeddings(), tenant="lc-tests")


RETRIEVER_COLLECTION = f"lc-retriever-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", autouse=True)
def _retriever_corpus(stack):
    docs = [{"id": f"fact-{i}", "text": text} for i, text in enumerate([
        "Switchyard routes index jobs to a prefork pool of CPU workers.",
        "Embeddings are cached by model and text hash, so identical text is embedded once.",
        "Hybrid search fuses vector and full-text rankings with reciprocal rank fusion.",
        "A collection belongs to one tenant and never leaks into another tenant's search.",
        "Re-ingesting an unchanged document costs nothing: its content hash matches.",
    ])]
    ingest_documents(RETRIEVER_COLLECTION, docs, tenant="lc-tests")


class TestSwitchyardRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[SwitchyardRetriever]:
        return SwitchyardRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"collection": RETRIEVER_COLLECTION, "tenant": "lc-tests", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "how does hybrid search rank results?"
