from __future__ import annotations

import pytest

from switchyard.context import JobContext


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from switchyard.finetune.models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from switchyard.finetune.train import load_tokenizer

    return load_tokenizer(str(tiny_model))


class RecordingContext(JobContext):
    """A detached context that keeps what the job emitted, and can be told to stop at a step."""

    def __init__(self, stop_at: int | None = None, reason: type[Exception] | None = None, attempt: int = 1):
        super().__init__("unit", attempt=attempt, publish=False)
        self.events: list[tuple[str, dict]] = []
        self.stop_at, self.reason, self.checks = stop_at, reason, 0

    def emit(self, type, data=None, *, defer=False):
        self.events.append((type, data or {}))

    def stop_reason(self):
        self.checks += 1
        # the loop checks once before each step: check number n+1 is the boundary after step n
        if self.stop_at is not None and self.checks > self.stop_at:
            return self.reason
        return None

    def of(self, type: str) -> list[dict]:
        return [d for t, d in self.events if t == type]


@pytest.fixture(scope="session")
def recording():
    return RecordingContext
