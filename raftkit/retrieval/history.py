"""What each `raftkit index update` changed, kept in the index for `raftkit index diff` and
`raftkit probes`.

`history.jsonl` holds one line per update that changed something (the last
`retrieval.history.keep`): its number, time and source, and per document its id, status (added,
changed, deleted), title, old and new content hashes, and the old text of every changed or deleted
document, so the stale value can be quoted after the index forgot it. The file is written with the
rest of the index, through the same staged folder and crash-safe swap. An index built before
history existed, or never updated since, has none.

Texts are rebuilt from the chunks' character offsets: whitespace the splitter dropped between two
chunks that do not overlap comes back as a space or a line break (a guess that sentence splitting
cannot tell from the original).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from raftkit.errors import RaftkitError
from raftkit.provenance import now
from raftkit.retrieval.chunking import Chunk
from raftkit.retrieval.loaders import Document
from raftkit.retrieval.textdiff import SentenceChange, sentence_changes

HISTORY = "history.jsonl"
_STATUSES = ("added", "changed", "deleted")
_LINE_START = ("-", "*", "|", "#", ">")


def document_texts(chunks: list[Chunk]) -> dict[str, str]:
    """The text of each document, rebuilt from its chunks (see the module docstring)."""
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    return {doc_id: _text(cs) for doc_id, cs in by_doc.items()}


def _text(chunks: list[Chunk]) -> str:
    if any(c.start < 0 for c in chunks):  # offsets unknown: the chunks in order
        return "\n".join(c.text for c in chunks)
    buf = [" "] * max(c.end for c in chunks)
    covered = [False] * len(buf)
    for c in chunks:
        buf[c.start : c.end] = c.text
        covered[c.start : c.end] = [True] * (c.end - c.start)
    i = 0
    while i < len(buf):  # a gap: one space inside a sentence, else line breaks
        if covered[i]:
            i += 1
            continue
        j = i
        while j < len(buf) and not covered[j]:
            j += 1
        before, after = "".join(buf[max(0, i - 1) : i]), "".join(buf[j : j + 1])
        if j - i > 1 or before in ".:|" or after in _LINE_START:
            buf[i:j] = "\n" * (j - i)
        i = j
    return "".join(buf)


def read(path: str | Path) -> list[dict]:
    """The recorded updates of the index at `path`, oldest first ([] when it has none)."""
    file = Path(path) / HISTORY
    if not file.is_file():
        return []
    from raftkit.files import read_jsonl

    return read_jsonl(file)


def entry(old_manifest: dict, old_chunks: list[Chunk], docs: list[Document], source: str):
    """The record of an update from an index (its manifest and chunks) to `docs`; None when no
    document was added, changed or deleted."""
    known, new_ids = old_manifest["documents"], {d.id for d in docs}
    touched = [d for d in docs if known.get(d.id, {}).get("hash") != d.hash]
    gone = [doc_id for doc_id in known if doc_id not in new_ids]
    if not touched and not gone:
        return None
    wanted = {d.id for d in touched if d.id in known} | set(gone)
    old_texts = document_texts([c for c in old_chunks if c.doc_id in wanted])
    documents = []
    for d in touched:
        row = {"id": d.id, "status": "changed" if d.id in known else "added", "title": d.title}
        if d.id in known:
            row.update(old_hash=known[d.id]["hash"], old_text=old_texts.get(d.id, ""))
        documents.append({**row, "new_hash": d.hash})
    for doc_id in gone:
        old = known[doc_id]
        documents.append(
            {
                "id": doc_id,
                "status": "deleted",
                "title": old.get("title", ""),
                "old_hash": old["hash"],
                "old_text": old_texts.get(doc_id, ""),
            }
        )
    return {"time": now(), "source": source, "documents": documents}


def updated(path: Path, record: dict | None, keep: int) -> list[dict]:
    """The history of the index at `path` with `record` appended (numbered), the last `keep`
    updates of it."""
    past = read(path)
    if record is not None:
        number = (past[-1].get("update", len(past)) if past else 0) + 1
        past.append({"update": number, **record})
    return past[-keep:] if keep else []


# ----------------------------------------------------------------------------- reading it back
@dataclass
class DocumentChange:
    """One document across the selected updates: its status, title and both texts ('' where
    absent)."""

    id: str
    status: str  # added | changed | deleted
    title: str
    old_hash: str | None
    new_hash: str | None
    old_text: str
    new_text: str

    def sentences(self) -> list[SentenceChange]:
        """Its edited, added and removed sentences (none for an added or deleted document)."""
        if self.status != "changed":
            return []
        return sentence_changes(self.old_text, self.new_text)


@dataclass
class Changes:
    """What the last `since` updates of an index changed, per document, in update order."""

    index: str
    updates: list[dict]  # number, time, source and counts of each selected update
    documents: list[DocumentChange]

    def to_dict(self, with_sentences: bool = True) -> dict:
        docs = []
        for d in self.documents:
            row = {k: v for k, v in asdict(d).items() if k not in ("old_text", "new_text")}
            if with_sentences:
                row["sentences"] = [s.to_dict() for s in d.sentences()]
            docs.append(row)
        return {"index": self.index, "updates": self.updates, "documents": docs}


def changes(index, since: int = 1) -> Changes:
    """What the last `since` recorded updates of `index` (a FaissIndex) changed; the old side is
    the state before the first of them, the new side the index as it is now.

    Raises RaftkitError when the index has no recorded update or fewer than `since`.
    """
    past = read(index.path)
    if not past:
        raise RaftkitError(
            f"index '{index.name}' has no recorded changes: it was built before history was kept, "
            "or no `raftkit index update` since its build added, changed or deleted a document"
        )
    if since < 1 or since > len(past):
        raise RaftkitError(
            f"--since {since}: index '{index.name}' records {len(past)} update(s) "
            "(retrieval.history.keep bounds how many are kept)"
        )
    chosen, first = past[-since:], {}
    for upd in chosen:
        for d in upd["documents"]:
            first.setdefault(d["id"], d)  # the state before the first update that touched it
    current = index.manifest["documents"]
    texts = document_texts([c for c in index.chunks if c.doc_id in first])
    out = []
    for doc_id, d in first.items():
        was = d["status"] != "added"
        now_doc = current.get(doc_id)
        old_hash = d.get("old_hash") if was else None
        new_hash = now_doc["hash"] if now_doc else None
        if (not was and not now_doc) or (was and now_doc and old_hash == new_hash):
            continue  # added then deleted, or changed and changed back
        status = "changed" if was and now_doc else ("added" if now_doc else "deleted")
        title = now_doc.get("title", "") if now_doc else d.get("title", "")
        old_text = d.get("old_text", "") if was else ""
        out.append(
            DocumentChange(
                doc_id, status, title, old_hash, new_hash, old_text, texts.get(doc_id, "")
            )
        )
    updates = [
        {
            "update": u.get("update"),
            "time": u.get("time"),
            "source": u.get("source"),
            **counts(u),
        }
        for u in chosen
    ]
    return Changes(index.name, updates, out)


def counts(update: dict) -> dict[str, int]:
    """{added, changed, deleted: documents} of one recorded update."""
    return {s: sum(d["status"] == s for d in update["documents"]) for s in _STATUSES}


def format_changes(ch: Changes) -> str:
    """The text `raftkit index diff` prints: per document, its changed sentences old -> new and the
    differing spans."""
    lines = []
    for u in ch.updates:
        lines.append(
            f"index '{ch.index}' update {u['update']} ({u['time']}, from {u['source']}): "
            f"{u['added']} added, {u['changed']} changed, {u['deleted']} deleted"
        )
    for d in ch.documents:
        lines.append(f"{d.status} {d.id}" + (f" ({d.title})" if d.title else ""))
        for s in d.sentences():
            if s.old is not None:
                lines.append(f"  - {' '.join(s.old.split())}")
            if s.new is not None:
                lines.append(f"  + {' '.join(s.new.split())}")
            for e in s.edits:
                lines.append(
                    f"      {json.dumps(e.old, ensure_ascii=False)} -> "
                    f"{json.dumps(e.new, ensure_ascii=False)}"
                )
    return "\n".join(lines)
