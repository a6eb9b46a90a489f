"""Structure-aware chunking, measured in all-MiniLM-L6-v2's own tokens (its tokenizer file only)."""

from __future__ import annotations

import itertools

import pytest

from switchyard.retrieval.chunking import Chunker, markdown_blocks, text_blocks
from switchyard.retrieval.embedding import get_embedder

DOC = """# Guide

Intro paragraph one. It has two sentences.

## Install

- step one
- step two

```sh
pip install thing
```

## Use

""" + " ".join(f"Sentence number {i} explains one more detail of the product." for i in range(60)) + """

### Deeper

Last words.
"""


@pytest.fixture(scope="module")
def tokens():
    return get_embedder().tokens


def test_blocks_keep_heading_paths_and_exact_spans():
    blocks = markdown_blocks(DOC)
    assert [b.heading_path for b in blocks] == [
        ("Guide",), ("Guide", "Install"), ("Guide", "Install"), ("Guide", "Use"), ("Guide", "Use", "Deeper")]
    assert [b.kind for b in blocks] == ["paragraph", "list", "code", "paragraph", "paragraph"]
    assert DOC[blocks[2].start:blocks[2].end] == "```sh\npip install thing\n```"


def test_chunks_respect_budget_headings_and_overlap(tokens):
    chunker = Chunker(tokens, budget=64, overlap=16)
    chunks = chunker.chunk(DOC, markdown_blocks(DOC))
    for c in chunks:
        assert tokens.lengths([c.embed_text])[0] <= 64 + 2  # join whitespace may add a token or two
        assert DOC[c.start:c.end] == c.text
    paths = [c.heading_path for c in chunks]
    assert paths[0] == ("Guide",) and paths[-1] == ("Guide", "Use", "Deeper")
    # The list and the code fence of one section share a chunk; no chunk spans two sections.
    install = [c for c in chunks if c.heading_path == ("Guide", "Install")]
    assert len(install) == 1 and "step two" in install[0].text and "pip install" in install[0].text
    long = [c for c in chunks if c.heading_path == ("Guide", "Use")]
    assert len(long) > 3
    for a, b in itertools.pairwise(long):
        assert b.start < a.end  # overlapping...
        assert DOC[b.start:a.end].strip().endswith(".")  # ...by whole sentences
        assert tokens.lengths([DOC[b.start:a.end]])[0] <= 16
    assert chunks[1].embed_text.startswith("Guide > Install\n\n")


def test_an_overlong_sentence_is_cut_at_token_boundaries(tokens):
    text = "word " * 500
    chunks = Chunker(tokens, budget=50, overlap=0).chunk(text, text_blocks(text))
    assert len(chunks) == 10
    assert all(c.tokens <= 50 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == text.replace(" ", "")


def test_plain_text_paragraphs_and_bad_settings(tokens):
    assert [b.start for b in text_blocks("a b\n\n\nc d.\n  \n e")] == [0, 6, 15]
    assert Chunker(tokens).chunk("", []) == []
    with pytest.raises(ValueError, match="overlap"):
        Chunker(tokens, budget=32, overlap=32)
