"""The typed records of `raftkit build-dataset`: a question on its way to an example, and the
example.

A `Record` is what a checkpoint batch stores (as JSON): a question, where its answer comes from, and
what became of it. A `RaftExample` is a record assembled with its oracle and distractor chunks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


# not StrEnum: str() and format() of a member would give its value instead of 'Status.NAME'
class Status(str, Enum):  # noqa: UP042
    PENDING = "pending"  # waiting for a grounded answer
    VERIFIED = "verified"  # every quote occurs in the oracle
    REPAIRED = "repaired"  # a quote or the answer line was repaired
    DROPPED = "dropped"  # the answer could not be grounded
    SKIPPED = "skipped"  # a QA line that cannot become an example (see `reason`)


@dataclass
class Record:
    """One question: its oracle chunk, its grounded chain of thought and its fate."""

    id: str
    question: str
    source: str  # generated | qa | spans
    oracle_id: str | None = None
    doc_id: str | None = None
    answer: str | None = None
    cot: str | None = None
    status: Status = Status.PENDING
    reason: str = ""  # why it was dropped or skipped
    choices: list[str] = field(default_factory=list)
    rejected: str | None = None  # a model-written ungrounded CoT (answers.rejected: generate)

    @property
    def usable(self) -> bool:
        return self.status in (Status.VERIFIED, Status.REPAIRED)

    def to_json(self) -> dict:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_json(cls, data: dict) -> Record:
        return cls(**{**data, "status": Status(data["status"])})


@dataclass
class RaftExample:
    """A RAFT training example: question, the shown chunks (oracle or not), target and rejected
    CoT."""

    id: str
    question: str
    answer: str  # the reference answer, also when the oracle is dropped
    # the `<ANSWER>` span of cot_answer: the refusal when the oracle is dropped and abstained on
    target_answer: str
    cot_answer: str
    doc_id: str
    oracle_id: str
    context_ids: list[str]
    context: list[str]
    titles: list[str]
    oracle_present: bool
    distractor_ids: list[str]
    quote_status: str
    rejected_cot: str
    choices: list[str]
    answer_index: int | None
