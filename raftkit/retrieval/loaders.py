"""Load a folder of documents (.txt .md .html .pdf, and .jsonl corpora) into Documents.

A file that cannot be read, a .jsonl line that is not a document and a document over the size limit
are reported (with the line number) and skipped; they never stop the run, and when nothing is left
the error says why each file was dropped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from raftkit.errors import RaftkitError
from raftkit.files import scan_jsonl
from raftkit.retrieval.config import LimitsConfig

SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".jsonl")


@dataclass
class Document:
    id: str  # path relative to the corpus root, or the `id` field of a .jsonl line
    title: str
    text: str
    date: str | None = None
    source: str = ""

    @property
    def hash(self) -> str:
        """Content hash over everything that ends up in chunks; it decides what an update
        re-embeds."""
        h = hashlib.sha256()
        for part in (self.title, self.date or "", self.text):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()


@dataclass
class LoadResult:
    documents: list[Document]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, plus its <title> (or first <h1>)."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in = ""

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("title", "h1"):
            self._in = tag
        if tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        if tag == self._in:
            self._in = ""

    def handle_data(self, data):
        if self._skip:
            return
        if self._in == "title" or (self._in == "h1" and not self.title):
            self.title = self.title or data.strip()
        if self._in != "title":
            self.parts.append(data)


def _markdown_title(text: str, fallback: str) -> str:
    m = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else fallback


def _read_file(path: Path, doc_id: str, skipped: list) -> list[Document]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, doc_id, skipped)
    if suffix == ".pdf":
        from pypdf import PdfReader

        reader = PdfReader(str(path))
        text = "\n\n".join((page.extract_text() or "") for page in reader.pages)
        title = (reader.metadata.title if reader.metadata else None) or path.stem
        return [Document(doc_id, title, text, source=str(path))]
    text = path.read_text(encoding="utf-8")
    if suffix in (".html", ".htm"):
        parser = _HTMLText()
        parser.feed(text)
        body = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
        return [Document(doc_id, parser.title or path.stem, body, source=str(path))]
    return [Document(doc_id, _markdown_title(text, path.stem), text, source=str(path))]


def _read_jsonl(path: Path, doc_id: str, skipped: list) -> list[Document]:
    """One Document per line with a `text` field; other lines are reported as skipped, by line
    number."""
    lines = scan_jsonl(path)
    skipped += [(f"{path}:{n}", why) for n, why in lines.bad]
    docs = []
    for n, row in lines.rows:
        if not isinstance(row.get("text"), str):
            skipped.append((f"{path}:{n}", "no text field"))
            continue
        docs.append(
            Document(
                id=str(row.get("id") or f"{doc_id}:{n}"),
                title=str(row.get("title") or ""),
                text=row["text"],
                date=row.get("date"),
                source=f"{path}:{n}",
            )
        )
    return docs


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _too_big(size_bytes: int, limits: LimitsConfig) -> str:
    mb = size_bytes / 1e6
    if mb <= limits.max_document_mb:
        return ""
    return (
        f"{mb:.1f} MB is over retrieval.limits.max_document_mb ({limits.max_document_mb:g}); "
        f"raise it to index this document"
    )


def _keep(doc: Document, seen: set[str], limits: LimitsConfig) -> str:
    """Why `doc` is skipped ('' to keep it)."""
    if not doc.text.strip():
        return "no text"
    if doc.id in seen:
        return f"duplicate document id '{doc.id}'"
    return _too_big(len(doc.text.encode("utf-8")), limits)


def load_documents(root: str | Path, limits: LimitsConfig | None = None) -> LoadResult:
    """Every readable document under `root` (a folder, searched recursively, or one file).

    Raises RaftkitError when `root` is missing or holds no readable document (naming why each was
    skipped).
    """
    root, limits = Path(root), limits or LimitsConfig()
    if not root.exists():
        raise RaftkitError(f"documents folder not found: {root}")
    files = _files(root)
    result = LoadResult([])
    seen: set[str] = set()
    for path in files:
        doc_id = path.name if root.is_file() else path.relative_to(root).as_posix()
        big = (
            _too_big(path.stat().st_size, limits)
            if path.suffix.lower() not in (".jsonl", ".pdf")
            else ""
        )
        if big:
            result.skipped.append((str(path), big))
            continue
        try:
            docs = _read_file(path, doc_id, result.skipped)
        except Exception as e:  # a bad file is reported and skipped, never fatal
            result.skipped.append((str(path), f"{type(e).__name__}: {e}".splitlines()[0][:200]))
            continue
        for doc in docs:
            why = _keep(doc, seen, limits)
            if why:
                result.skipped.append((doc.source, why))
            else:
                seen.add(doc.id)
                result.documents.append(doc)
    if not result.documents:
        if not files:
            raise RaftkitError(f"no documents ({' '.join(SUFFIXES)}) found in {root}")
        reasons = "; ".join(f"{p}: {why}" for p, why in result.skipped[:5])
        more = f" (and {len(result.skipped) - 5} more)" if len(result.skipped) > 5 else ""
        raise RaftkitError(f"no readable documents found in {root}: {reasons}{more}")
    return result
