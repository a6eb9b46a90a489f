"""Structure-aware chunking with a token budget and overlap measured in the embedding model's tokens.

A document is first cut into *blocks* (Markdown's headings, paragraphs, lists, code fences and tables via
markdown-it-py; blank-line paragraphs for plain text), each carrying its heading path and character span.
Blocks are then packed into chunks section by section:

- a chunk never crosses a heading, so its heading path is exact and citable;
- blocks that fit are kept whole; a block over budget is split at sentences (lines, for lists, code and
  tables), and a sentence over budget at token boundaries;
- consecutive chunks of one section share up to ``overlap`` tokens of whole sentences.

The packing is written here because no installed library keeps both the heading path and the exact
character span of every chunk while counting a given tokenizer's tokens (LangChain's splitters are not
installed and lose positions under their Markdown header splitter).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from switchyard.retrieval.embedding import Tokens

CHUNKER_VERSION = 1  # part of every document's content hash: bump it when chunk boundaries change

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")
_LINE_KINDS = {"list", "code", "table"}


@dataclass(frozen=True)
class Block:
    start: int
    end: int
    heading_path: tuple[str, ...]
    kind: str = "paragraph"


@dataclass(frozen=True)
class Chunk:
    text: str
    heading_path: tuple[str, ...]
    start: int
    end: int
    tokens: int

    @property
    def embed_text(self) -> str:
        """What the model sees: the heading path gives a chunk the context its own text lacks."""
        if not self.heading_path:
            return self.text
        return " > ".join(self.heading_path) + "\n\n" + self.text


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    block: int


# --- blocks -----------------------------------------------------------------------------------------

def markdown_blocks(text: str) -> list[Block]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    line_starts.append(len(text))
    kinds = {"paragraph_open": "paragraph", "bullet_list_open": "list", "ordered_list_open": "list",
             "fence": "code", "code_block": "code", "table_open": "table", "blockquote_open": "paragraph",
             "html_block": "paragraph"}
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    tokens = _markdown().parse(text)
    for i, token in enumerate(tokens):
        if token.level != 0 or token.map is None:
            continue
        if token.type == "heading_open":
            level = int(token.tag[1:])
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            headings = [(lvl, t) for lvl, t in headings if lvl < level] + [(level, title)]
        elif token.type in kinds:
            first, last = token.map
            start, end = line_starts[first], line_starts[min(last, len(line_starts) - 1)]
            start, end = _trim(text, start, end)
            if end > start:
                blocks.append(Block(start, end, tuple(t for _, t in headings), kinds[token.type]))
    return blocks


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # Block structure only: inline parsing (emphasis, links) would cost half the time and is not needed.
    return MarkdownIt("commonmark").enable("table").disable("inline")


def text_blocks(text: str, heading_path: tuple[str, ...] = ()) -> list[Block]:
    blocks = []
    for m in re.finditer(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*\Z)", text, flags=re.S):
        blocks.append(Block(m.start(), m.end(), heading_path))
    return blocks


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# --- packing ----------------------------------------------------------------------------------------

@dataclass
class Chunker:
    tokens: Tokens
    budget: int = 200
    overlap: int = 32
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.budget < 8:
            raise ValueError(f"chunk budget must be at least 8 tokens, not {self.budget}")
        if not 0 <= self.overlap < self.budget:
            raise ValueError(f"chunk overlap must be in [0, budget), not {self.overlap}")

    @property
    def settings(self) -> dict:
        return {"budget": self.budget, "overlap": self.overlap, "version": CHUNKER_VERSION}

    def chunk(self, text: str, blocks: list[Block]) -> list[Chunk]:
        if not blocks:
            return []
        block_tokens = self.tokens.lengths([text[b.start:b.end] for b in blocks])
        path_budget = {p: self._text_budget(p) for p in {b.heading_path for b in blocks}}
        chunks: list[Chunk] = []
        section: list[_Unit] = []
        current_path: tuple[str, ...] | None = None
        for index, (block, n) in enumerate(zip(blocks, block_tokens, strict=True)):
            if block.heading_path != current_path:
                chunks.extend(self._pack(text, section, current_path or (), path_budget))
                section, current_path = [], block.heading_path
            budget = path_budget[block.heading_path]
            if n <= budget:
                section.append(_Unit(block.start, block.end, n, index))
            else:
                section.extend(self._split(text, block, index, budget))
        chunks.extend(self._pack(text, section, current_path or (), path_budget))
        return chunks

    def _text_budget(self, path: tuple[str, ...]) -> int:
        """The budget left for the text once the heading path is prepended (at least half of it)."""
        if not path:
            return self.budget
        used = self.tokens.lengths([" > ".join(path) + "\n\n"])[0]
        return max(self.budget - used, self.budget // 2)

    def _split(self, text: str, block: Block, index: int, budget: int) -> list[_Unit]:
        if block.kind in _LINE_KINDS:
            spans = [(m.start() + block.start, m.end() + block.start)
                     for m in re.finditer(r"[^\n]*\S[^\n]*", text[block.start:block.end])]
        else:
            spans = list(_sentence_spans(text, block.start, block.end))
        lengths = self.tokens.lengths([text[s:e] for s, e in spans])
        units = []
        for (start, end), n in zip(spans, lengths, strict=True):
            if n <= budget:
                units.append(_Unit(start, end, n, index))
                continue
            for s, e in self.tokens.spans(text[start:end], budget):
                units.append(_Unit(start + s, start + e, budget, index))
        return units

    def _pack(self, text: str, units: list[_Unit], path: tuple[str, ...],
              budgets: dict[tuple[str, ...], int]) -> Iterable[Chunk]:
        if not units:
            return []
        budget = budgets.get(path, self.budget)
        out: list[Chunk] = []
        current: list[_Unit] = []
        used = 0
        for unit in units:
            if current and used + unit.tokens > budget:
                out.append(self._make(text, current, path))
                current = self._overlap_tail(current, budget - unit.tokens)
                used = sum(u.tokens for u in current)
            current.append(unit)
            used += unit.tokens
        if current:
            out.append(self._make(text, current, path))
        return out

    def _overlap_tail(self, units: list[_Unit], room: int) -> list[_Unit]:
        tail: list[_Unit] = []
        total = 0
        for unit in reversed(units):
            if total + unit.tokens > min(self.overlap, room):
                break
            tail.insert(0, unit)
            total += unit.tokens
        return tail

    @staticmethod
    def _make(text: str, units: list[_Unit], path: tuple[str, ...]) -> Chunk:
        start, end = units[0].start, units[-1].end
        return Chunk(text[start:end], path, start, end, sum(u.tokens for u in units))


def _sentence_spans(text: str, start: int, end: int) -> Iterable[tuple[int, int]]:
    """Sentence spans by punctuation (a regex: no sentence model can be downloaded here)."""
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        s, e = _trim(text, pos, m.start())
        if e > s:
            yield s, e
        pos = m.end()
    s, e = _trim(text, pos, end)
    if e > s:
        yield s, e
