"""Files into text and structure blocks: Markdown, plain text, HTML (BeautifulSoup), PDF (pypdf).

A file that cannot be read or parsed raises ``ParseError``: that document fails alone, with the reason
in the job's result.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchyard import egress, sandbox
from switchyard.errors import InputRefused, SwitchyardError
from switchyard.retrieval.chunking import Block, markdown_blocks, text_blocks
from switchyard.retrieval.schemas import DocumentIn, FileIn

MAX_FILE_BYTES = 64 * 1024 * 1024


class ParseError(SwitchyardError):
    """A document's file could not be read or parsed."""


@dataclass
class ParsedDocument:
    id: str
    text: str
    blocks: list[Block]
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def from_document(doc: DocumentIn, *, markdown: bool = True) -> ParsedDocument:
    """A document sent as text is read as Markdown (plain prose parses the same way)."""
    blocks = markdown_blocks(doc.text) if markdown else text_blocks(doc.text)
    source = str(doc.metadata.get("source") or doc.id)
    return ParsedDocument(doc.id, doc.text, blocks, dict(doc.metadata), source)


def from_file(file: FileIn) -> ParsedDocument:
    data, name = _read(file)
    kind = _kind(file, name)
    try:
        if kind == "pdf":
            text, blocks = _pdf(data)
        elif kind == "html":
            text = _html_to_markdown(data.decode("utf-8", errors="replace"))
            blocks = markdown_blocks(text)
        else:
            text = data.decode("utf-8")
            blocks = markdown_blocks(text) if kind == "markdown" else text_blocks(text)
    except UnicodeDecodeError as exc:
        raise ParseError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ParseError:
        raise
    except Exception as exc:  # a parser's own error (pypdf, bs4): this document fails, with the reason
        raise ParseError(f"{name}: cannot parse as {kind}: {type(exc).__name__}: {exc}") from None
    metadata = {"source": file.path or file.url or name, "content_type": kind, **file.metadata}
    doc_id = file.document_id or name
    return ParsedDocument(doc_id, text, blocks, metadata, str(metadata["source"]))


def _read(file: FileIn) -> tuple[bytes, str]:
    if file.content is not None:
        return file.content.encode(), file.name or file.id or "inline"
    if file.content_base64 is not None:
        return base64.b64decode(file.content_base64), file.name or file.id or "inline"
    if file.path is not None:
        # Only under the configured file roots, checked on the resolved path before any read; the
        # resolved path is what is read (switchyard.sandbox).
        try:
            path = sandbox.check_path(file.path)
        except InputRefused as exc:
            raise ParseError(str(exc)) from None
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ParseError(f"{file.path}: larger than {MAX_FILE_BYTES} bytes")
            return path.read_bytes(), file.path
        except OSError as exc:
            raise ParseError(f"{file.path}: cannot read: {exc.strerror or exc}") from None
    import httpx

    # Through the egress policy: allowlist, no private addresses, redirects checked hop by hop, size
    # and time limits (switchyard.egress).
    try:
        content, _final_url = egress.fetch(file.url or "", max_bytes=MAX_FILE_BYTES)
    except InputRefused as exc:
        raise ParseError(f"{file.url}: {exc}") from None
    except httpx.HTTPError as exc:
        raise ParseError(f"{file.url}: cannot fetch: {exc}") from None
    return content, str(file.url)


def _kind(file: FileIn, name: str) -> str:
    content_type = (file.content_type or mimetypes.guess_type(name)[0] or "").lower()
    suffix = Path(name.split("?")[0]).suffix.lower()
    if "pdf" in content_type or suffix == ".pdf":
        return "pdf"
    if "html" in content_type or suffix in (".html", ".htm"):
        return "html"
    if "markdown" in content_type or suffix in (".md", ".markdown", ".mdx"):
        return "markdown"
    return "text"


def _pdf(data: bytes) -> tuple[str, list[Block]]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    text = ""
    blocks: list[Block] = []
    for number, page in enumerate(reader.pages, start=1):
        page_text = (page.extract_text() or "").strip()
        if not page_text:
            continue
        offset = len(text)
        text += page_text + "\n\n"
        for b in text_blocks(page_text, (f"page {number}",)):
            blocks.append(Block(b.start + offset, b.end + offset, b.heading_path, b.kind))
    if not blocks:
        raise ParseError("PDF has no extractable text (scanned images need OCR)")
    return text, blocks


def _html_to_markdown(html: str) -> str:
    """Headings, paragraphs, list items and preformatted text, as Markdown, so structure survives."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer"]):
        tag.decompose()
    root = soup.body or soup
    parts = []
    for el in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "tr"]):
        if el.find_parent(["li", "pre", "blockquote", "p"]) is not None and el.name != "tr":
            continue
        text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name.startswith("h"):
            parts.append("#" * int(el.name[1]) + " " + text)
        elif el.name == "li":
            parts.append("- " + text)
        elif el.name == "pre":
            parts.append("```\n" + el.get_text() + "\n```")
        elif el.name == "tr":
            parts.append(" | ".join(c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])))
        else:
            parts.append(text)
    return "\n\n".join(parts)
