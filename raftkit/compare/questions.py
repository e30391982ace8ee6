"""Questions to compare systems on: a QA .jsonl or the eval split of a `raftkit build-dataset`
output."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from raftkit.compare.config import CompareConfig
from raftkit.errors import RaftkitError
from raftkit.files import scan_jsonl

STATUSES = ("unchanged", "changed", "added", "unanswerable")


def status_from_period(period: str | None) -> str:
    """RealTimeQA-style `period`: v1 facts were known at training time (unchanged), v2 ones are
    added."""
    return {"v1": "unchanged", "v2": "added"}.get(period or "", "unchanged")


@dataclass
class Question:
    id: str
    question: str
    answer: str | None = None  # the current (v2) reference; None for unanswerable questions
    choices: list[str] = field(default_factory=list)
    answer_index: int | None = None
    doc_ids: list[str] = field(default_factory=list)
    status: str = "unchanged"  # unchanged | changed | added | unanswerable
    answer_v1: str | None = None
    answer_index_v1: int | None = None
    holdout: bool = False  # re-asked over an index copy without its documents: must be abstained on

    @property
    def answerable(self) -> bool:
        return self.status != "unanswerable" and not self.holdout

    def to_dict(self) -> dict:
        return asdict(self)


def _from_row(row: dict, n: int, cfg: CompareConfig, where: str) -> Question:
    fr, un = cfg.freshness, cfg.unanswerable
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        raise RaftkitError(f"{where}: line {n} has no 'question'")
    choices = row.get("choices") or []
    answer, index = row.get("answer"), row.get("answer_index")
    if answer is None and index is not None and 0 <= index < len(choices):
        answer = choices[index]
    status = row.get(fr.status_field) or status_from_period(row.get(fr.period_field))
    if status not in STATUSES:
        raise RaftkitError(
            f"{where}: line {n} has {fr.status_field} {status!r} (use {', '.join(STATUSES)})"
        )
    doc_ids = row.get("doc_ids")
    if doc_ids is None and row.get("doc_id"):
        doc_ids = [row["doc_id"]]
    doc_ids = list(doc_ids or [])
    if un.use_status and not doc_ids and "doc_ids" in row:
        status = "unanswerable"
    if status != "unanswerable" and answer is None:
        raise RaftkitError(
            f"{where}: line {n} has neither 'answer' nor 'choices' with 'answer_index'"
        )
    if not fr.enable and status in ("changed", "added"):
        status = "unchanged"
    if not un.use_status and status == "unanswerable":
        return None
    return Question(
        id=str(row.get("id", f"q{n:05d}")),
        question=row["question"].strip(),
        answer=None if status == "unanswerable" else str(answer),
        choices=[str(c) for c in choices],
        answer_index=None if status == "unanswerable" else index,
        doc_ids=doc_ids,
        status=status,
        answer_v1=row.get(fr.answer_v1_field),
        answer_index_v1=row.get(fr.answer_index_v1_field),
    )


def _rows(path: Path) -> tuple[list[tuple[int, dict]], str]:
    """(line number, row) pairs of a QA .jsonl, or of a build-dataset folder's eval split."""
    if path.is_dir():
        ds_path = path / "dataset" if (path / "dataset").is_dir() else path
        try:
            from datasets import load_from_disk

            split = load_from_disk(str(ds_path))["eval"]
        except Exception as e:
            raise RaftkitError(
                f"{path}: not a build-dataset output with an 'eval' split ({type(e).__name__})"
            ) from None
        return list(enumerate((dict(r) for r in split), 1)), f"{ds_path} (eval split)"
    if not path.is_file():
        raise RaftkitError(f"questions file not found: {path}")
    lines = scan_jsonl(path)
    if lines.bad:
        n, why = lines.bad[0]
        raise RaftkitError(f"{path}: line {n} is {why}")
    return lines.rows, str(path)


def load_questions(cfg: CompareConfig) -> list[Question]:
    """The questions of `cfg.questions`, seeded sample, plus holdout copies; raises RaftkitError on
    bad rows."""
    rows, where = _rows(Path(cfg.questions.path))
    questions = [q for n, r in rows if (q := _from_row(r, n, cfg, where)) is not None]
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise RaftkitError(f"{where}: question ids must be unique")
    if not questions:
        raise RaftkitError(f"{where}: no questions")
    qc = cfg.questions
    if qc.max_questions and qc.max_questions < len(questions):
        keep = set(random.Random(qc.seed).sample(range(len(questions)), qc.max_questions))
        questions = [q for i, q in enumerate(questions) if i in keep]
    return questions + holdout_questions(
        questions, cfg.unanswerable.holdout_docs, cfg.unanswerable.seed
    )


def holdout_questions(questions: list[Question], fraction: float, seed: int) -> list[Question]:
    """Copies (id '<id>::holdout') of a seeded `fraction` of the answerable questions with
    documents."""
    pool = [q for q in questions if q.answerable and q.doc_ids]
    n = round(fraction * len(pool))
    if not n:
        return []
    picked = sorted(random.Random(seed).sample(range(len(pool)), n))
    return [
        Question(**{**pool[i].to_dict(), "id": f"{pool[i].id}::holdout", "holdout": True})
        for i in picked
    ]
